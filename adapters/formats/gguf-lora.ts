// LoRA adapters in llama.cpp's GGUF format (what `convert_lora_to_gguf.py` writes and
// `llama_adapter_lora_init` loads): `general.type=adapter`, `adapter.type=lora`,
// `adapter.lora.alpha` (FLOAT32), and per module `blk.{i}.{attn_q,…}.weight.lora_a` with ne
// [in, r] and `.lora_b` with ne [r, out] — PEFT's A [r, in] and B [out, r] bytes as they are.
// For `llama`-architecture bases (Llama, Mistral) the rows of q/k lora_B are permuted as the
// converter permutes q/k weights (see gguf-names.ts), since ΔW's rows must match W's.
import { GgmlType, encodeGguf, readGguf, readGgufTensorFloat32, type GgufTensorToWrite } from "./gguf.js";
import { hfToGgufName, permuteRowsForGguf, unpermuteRowsFromGguf } from "./gguf-names.js";
import { encodeF16 } from "./float16.js";
import { LORA_TARGETS, TARGET_MODULES, loraKey, type LoraAdapter, type LoraConfig, type LoraTarget } from "../lora.js";
import fs from "node:fs";

/** What the GGUF LoRA needs to know about its base model. */
export interface GgufLoraBase {
  /** ModelConfig architecture: llama, mistral, qwen2, qwen3. */
  architecture: string;
  numHeads: number;
  numKvHeads: number;
}

/** GGUF `general.architecture` for a ModelConfig architecture (llama.cpp converts Mistral as llama). */
export function ggufArchitecture(architecture: string): string {
  if (architecture === "mistral") return "llama";
  if (architecture === "llama" || architecture === "qwen2" || architecture === "qwen3") return architecture;
  throw new Error(`no GGUF architecture for "${architecture}"`);
}

function permutedHeads(base: GgufLoraBase, target: LoraTarget): number | null {
  if (ggufArchitecture(base.architecture) !== "llama") return null;
  return target === "q" ? base.numHeads : target === "k" ? base.numKvHeads : null;
}

function moduleName(layer: number, target: LoraTarget): string {
  const name = hfToGgufName(`model.layers.${layer}.${TARGET_MODULES[target]}.weight`);
  if (!name) throw new Error(`no GGUF name for layer ${layer} ${target}`);
  return name;
}

export function encodeGgufLora(adapter: LoraAdapter, base: GgufLoraBase, opts: { dtype?: "F32" | "F16"; name?: string } = {}): Buffer {
  const { config } = adapter;
  const type = opts.dtype === "F16" ? GgmlType.F16 : GgmlType.F32;
  const bytes = (v: Float32Array): Uint8Array => {
    const enc = type === GgmlType.F16 ? encodeF16(v) : v;
    return new Uint8Array(enc.buffer, enc.byteOffset, enc.byteLength);
  };
  const tensors: GgufTensorToWrite[] = [];
  for (let layer = 0; layer < config.numLayers; layer++) {
    for (const target of config.targets) {
      const dims = config.dims[target];
      const a = adapter.a.get(loraKey(layer, target));
      let b = adapter.b.get(loraKey(layer, target));
      if (!dims || !a || !b) throw new Error(`LoRA adapter is missing layer ${layer} ${target}`);
      const heads = permutedHeads(base, target);
      if (heads !== null) b = permuteRowsForGguf(b, dims.out, config.rank, heads);
      const name = moduleName(layer, target);
      tensors.push({ name: `${name}.lora_a`, dims: [dims.in, config.rank], type, data: bytes(a) });
      tensors.push({ name: `${name}.lora_b`, dims: [config.rank, dims.out], type, data: bytes(b) });
    }
  }
  return encodeGguf({
    metadata: {
      "general.architecture": { type: "string", value: ggufArchitecture(base.architecture) },
      "general.type": { type: "string", value: "adapter" },
      "general.name": { type: "string", value: opts.name ?? "clawloop-lora" },
      "adapter.type": { type: "string", value: "lora" },
      "adapter.lora.alpha": { type: "f32", value: config.alpha },
    },
    tensors,
  });
}

/** Writes a GGUF LoRA atomically (temporary name, then rename). */
export function writeGgufLora(file: string, adapter: LoraAdapter, base: GgufLoraBase, opts: { dtype?: "F32" | "F16"; name?: string } = {}): void {
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, encodeGgufLora(adapter, base, opts));
  fs.renameSync(tmp, file);
}

const GGUF_PART = new Map<string, LoraTarget>(LORA_TARGETS.map((t) => [moduleName(0, t).split(".")[2]!, t]));

/** Reads a GGUF LoRA back into PEFT layout (q/k lora_B un-permuted for llama bases). */
export function readGgufLora(file: string, base: Omit<GgufLoraBase, "architecture">, baseModel = ""): LoraAdapter {
  const g = readGguf(file);
  if (g.metadata.get("general.type") !== "adapter" || g.metadata.get("adapter.type") !== "lora") throw new Error(`${file}: not a GGUF LoRA adapter`);
  const architecture = String(g.metadata.get("general.architecture"));
  const alpha = Number(g.metadata.get("adapter.lora.alpha") ?? 0);
  const a = new Map<string, Float32Array>();
  const b = new Map<string, Float32Array>();
  const dims: LoraConfig["dims"] = {};
  const targets = new Set<LoraTarget>();
  let rank = 0;
  let numLayers = 0;
  for (const [name, info] of g.tensors) {
    const m = /^blk\.(\d+)\.([a-z_]+)\.weight\.lora_([ab])$/.exec(name);
    const target = m ? GGUF_PART.get(m[2]!) : undefined;
    if (!m || !target) throw new Error(`${file}: unsupported tensor "${name}"`);
    const layer = Number(m[1]);
    numLayers = Math.max(numLayers, layer + 1);
    targets.add(target);
    const [d0, d1] = info.dims as [number, number];
    let data = readGgufTensorFloat32(g, name);
    if (m[3] === "a") {
      rank = d1;
      dims[target] = { in: d0, out: dims[target]?.out ?? -1 };
      a.set(loraKey(layer, target), data);
    } else {
      rank = d0;
      dims[target] = { in: dims[target]?.in ?? -1, out: d1 };
      const heads = permutedHeads({ ...base, architecture }, target);
      if (heads !== null) data = unpermuteRowsFromGguf(data, d1, d0, heads);
      b.set(loraKey(layer, target), data);
    }
  }
  return { config: { rank, alpha, targets: LORA_TARGETS.filter((t) => targets.has(t)), numLayers, dims, baseModel }, a, b };
}
