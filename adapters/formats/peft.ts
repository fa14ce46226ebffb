// PEFT's on-disk LoRA format: adapter_config.json + adapter_model.safetensors, with PEFT's tensor
// names (`base_model.model.model.layers.{i}.self_attn.q_proj.lora_A.weight`, A [r, in],
// B [out, r]) and every config key vLLM, SGLang, PEFT and llama.cpp's converter read.
import fs from "node:fs";
import path from "node:path";
import { LORA_TARGETS, TARGET_MODULES, loraKey, type LoraAdapter, type LoraConfig, type LoraTarget } from "../lora.js";
import { readFloat32, readSafetensorsHeader, writeSafetensors, type TensorToWrite, type WritableDType } from "./safetensors.js";

export const PEFT_CONFIG_FILE = "adapter_config.json";
export const PEFT_WEIGHTS_FILE = "adapter_model.safetensors";

const MODULE_TO_TARGET = new Map<string, LoraTarget>(LORA_TARGETS.map((t) => [TARGET_MODULES[t].split(".")[1]!, t]));

export function peftTensorName(layer: number, target: LoraTarget, which: "A" | "B"): string {
  return `base_model.model.model.layers.${layer}.${TARGET_MODULES[target]}.lora_${which}.weight`;
}

/** adapter_config.json contents for a LoRA config (the keys of research §6, in PEFT's spelling). */
export function peftConfigJson(config: LoraConfig): Record<string, unknown> {
  return {
    peft_type: "LORA",
    task_type: "CAUSAL_LM",
    base_model_name_or_path: config.baseModel,
    r: config.rank,
    lora_alpha: config.alpha,
    lora_dropout: 0.0,
    bias: "none",
    fan_in_fan_out: false,
    use_rslora: false,
    use_dora: false,
    modules_to_save: null,
    inference_mode: true,
    init_lora_weights: true,
    target_modules: config.targets.map((t) => TARGET_MODULES[t].split(".")[1]),
    layers_to_transform: null,
    layers_pattern: null,
    rank_pattern: {},
    alpha_pattern: {},
    revision: null,
  };
}

/**
 * Writes `adapter_config.json` and `adapter_model.safetensors` into `dir` (created if needed).
 * Tensors are fp32 by default (bit-exact round trip); F16/BF16 halve the size.
 */
export function writePeftAdapter(dir: string, adapter: LoraAdapter, opts: { dtype?: WritableDType } = {}): void {
  const { config } = adapter;
  fs.mkdirSync(dir, { recursive: true });
  const tensors: TensorToWrite[] = [];
  for (let layer = 0; layer < config.numLayers; layer++) {
    for (const target of config.targets) {
      const dims = config.dims[target];
      if (!dims) throw new Error(`LoRA config has no dimensions for target "${target}"`);
      const a = adapter.a.get(loraKey(layer, target));
      const b = adapter.b.get(loraKey(layer, target));
      if (!a || !b) throw new Error(`LoRA adapter is missing layer ${layer} ${target}`);
      tensors.push({ name: peftTensorName(layer, target, "A"), shape: [config.rank, dims.in], data: a, dtype: opts.dtype });
      tensors.push({ name: peftTensorName(layer, target, "B"), shape: [dims.out, config.rank], data: b, dtype: opts.dtype });
    }
  }
  writeSafetensors(path.join(dir, PEFT_WEIGHTS_FILE), tensors);
  const cfgTmp = path.join(dir, `${PEFT_CONFIG_FILE}.tmp-${process.pid}`);
  fs.writeFileSync(cfgTmp, JSON.stringify(peftConfigJson(config), null, 2) + "\n");
  fs.renameSync(cfgTmp, path.join(dir, PEFT_CONFIG_FILE));
}

const KEY = /^base_model\.model\.model\.layers\.(\d+)\.(self_attn|mlp)\.([a-z_]+)\.lora_([AB])(?:\.default)?\.weight$/;

/**
 * Reads a PEFT LoRA folder into a LoraAdapter (fp32). rsLoRA is folded into alpha (so that
 * alpha/rank is its alpha/√r scaling); DoRA, biases, extra modules and per-layer rank/alpha
 * patterns are refused with an error naming them, since the engine does not model them.
 */
export function readPeftAdapter(dir: string): LoraAdapter {
  const cfgFile = path.join(dir, PEFT_CONFIG_FILE);
  if (!fs.existsSync(cfgFile)) throw new Error(`${dir}: no ${PEFT_CONFIG_FILE}`);
  let cfg: Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  try {
    cfg = JSON.parse(fs.readFileSync(cfgFile, "utf8"));
  } catch (e) {
    throw new Error(`${cfgFile}: not valid JSON (${(e as Error).message})`);
  }
  if (cfg.peft_type !== undefined && cfg.peft_type !== "LORA") throw new Error(`${cfgFile}: peft_type ${cfg.peft_type} is not LORA`);
  const rank = cfg.r;
  const loraAlpha = cfg.lora_alpha;
  if (!Number.isInteger(rank) || rank <= 0) throw new Error(`${cfgFile}: "r" must be a positive integer`);
  if (typeof loraAlpha !== "number") throw new Error(`${cfgFile}: "lora_alpha" must be a number`);
  if (cfg.use_dora) throw new Error(`${cfgFile}: DoRA adapters are not supported`);
  if (cfg.bias && cfg.bias !== "none") throw new Error(`${cfgFile}: bias "${cfg.bias}" is not supported (only "none")`);
  if (cfg.modules_to_save?.length) throw new Error(`${cfgFile}: modules_to_save is not supported`);
  if (Object.keys(cfg.rank_pattern ?? {}).length || Object.keys(cfg.alpha_pattern ?? {}).length)
    throw new Error(`${cfgFile}: per-module rank_pattern/alpha_pattern is not supported`);
  const alpha = cfg.use_rslora ? loraAlpha * Math.sqrt(rank) : loraAlpha;

  const weights = path.join(dir, PEFT_WEIGHTS_FILE);
  if (!fs.existsSync(weights)) throw new Error(`${dir}: no ${PEFT_WEIGHTS_FILE}`);
  const header = readSafetensorsHeader(weights);
  const a = new Map<string, Float32Array>();
  const b = new Map<string, Float32Array>();
  const dims: LoraConfig["dims"] = {};
  const targets = new Set<LoraTarget>();
  let numLayers = 0;
  for (const [name, entry] of header.tensors) {
    const m = KEY.exec(name);
    const target = m ? MODULE_TO_TARGET.get(m[3]!) : undefined;
    if (!m || !target || TARGET_MODULES[target] !== `${m[2]}.${m[3]}`) throw new Error(`${weights}: unsupported tensor "${name}"`);
    const layer = Number(m[1]);
    numLayers = Math.max(numLayers, layer + 1);
    targets.add(target);
    const [rows, cols] = entry.shape as [number, number];
    if (entry.shape.length !== 2) throw new Error(`${weights}: "${name}" is not a matrix`);
    const isA = m[4] === "A";
    if ((isA ? rows : cols) !== rank) throw new Error(`${weights}: "${name}" has shape [${entry.shape}], expected rank ${rank}`);
    const prev = dims[target] ?? { in: -1, out: -1 };
    const next = isA ? { ...prev, in: cols } : { ...prev, out: rows };
    if ((isA && prev.in !== -1 && prev.in !== cols) || (!isA && prev.out !== -1 && prev.out !== rows))
      throw new Error(`${weights}: "${name}" has a different size than the same module in other layers`);
    dims[target] = next;
    (isA ? a : b).set(loraKey(layer, target), readFloat32(entry));
  }
  if (targets.size === 0) throw new Error(`${weights}: no LoRA tensors`);
  const ordered = LORA_TARGETS.filter((t) => targets.has(t));
  for (let layer = 0; layer < numLayers; layer++)
    for (const t of ordered)
      for (const [which, map] of [["A", a], ["B", b]] as const)
        if (!map.has(loraKey(layer, t))) throw new Error(`${weights}: missing ${peftTensorName(layer, t, which)} (partial adapters are not supported)`);
  return {
    config: { rank, alpha, targets: ordered, numLayers, dims, baseModel: String(cfg.base_model_name_or_path ?? "") },
    a,
    b,
  };
}
