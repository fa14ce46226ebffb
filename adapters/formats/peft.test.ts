import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { runPython } from "../../test/support/python-tools.js";
import { createLoraAdapter, loraKey, type LoraAdapter, type LoraConfig } from "../lora.js";
import { bf16ToFloat, floatToBf16 } from "./float16.js";
import { PEFT_CONFIG_FILE, PEFT_WEIGHTS_FILE, readPeftAdapter, writePeftAdapter } from "./peft.js";
import { writeSafetensors } from "./safetensors.js";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "peft-test-"));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const CONFIG: LoraConfig = {
  rank: 4,
  alpha: 8,
  targets: ["q", "k", "v", "o", "gate", "up", "down"],
  numLayers: 3,
  dims: { q: { in: 32, out: 32 }, k: { in: 32, out: 16 }, v: { in: 32, out: 16 }, o: { in: 32, out: 32 }, gate: { in: 32, out: 48 }, up: { in: 32, out: 48 }, down: { in: 48, out: 32 } },
  baseModel: "HuggingFaceTB/SmolLM2-135M-Instruct",
};

/** An adapter with non-zero, non-round B values (a fresh one has B = 0, which proves little). */
function trainedAdapter(config = CONFIG): LoraAdapter {
  const ad = createLoraAdapter(config, 3);
  let k = 0;
  for (const b of ad.b.values()) for (let i = 0; i < b.length; i++) b[i] = Math.sin(++k * 0.731) * 1e-2;
  return ad;
}

describe("PEFT adapter files", () => {
  it("round-trips bit-exactly in fp32", () => {
    const ad = trainedAdapter();
    const dir = path.join(tmp, "rt");
    writePeftAdapter(dir, ad);
    const back = readPeftAdapter(dir);
    expect(back.config).toEqual(CONFIG);
    for (const key of ad.a.keys()) {
      expect(back.a.get(key)).toEqual(ad.a.get(key));
      expect(back.b.get(key)).toEqual(ad.b.get(key));
    }
  });

  it("writes PEFT's names, shapes, metadata and every config key the servers read (checked with Python safetensors)", () => {
    const dir = path.join(tmp, "names");
    writePeftAdapter(dir, trainedAdapter());
    const cfg = JSON.parse(fs.readFileSync(path.join(dir, PEFT_CONFIG_FILE), "utf8"));
    expect(cfg).toMatchObject({
      peft_type: "LORA", task_type: "CAUSAL_LM", base_model_name_or_path: "HuggingFaceTB/SmolLM2-135M-Instruct", r: 4, lora_alpha: 8,
      lora_dropout: 0, bias: "none", fan_in_fan_out: false, use_rslora: false, use_dora: false, modules_to_save: null, inference_mode: true,
      target_modules: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"], layers_to_transform: null, rank_pattern: {}, alpha_pattern: {}, revision: null,
    });
    const out = runPython(
      `import sys, json
from safetensors import safe_open
with safe_open(sys.argv[1], "np") as f:
  print(json.dumps({"meta": f.metadata(), "shapes": {k: list(f.get_tensor(k).shape) for k in f.keys()}, "dtypes": sorted({str(f.get_tensor(k).dtype) for k in f.keys()})}))`,
      [path.join(dir, PEFT_WEIGHTS_FILE)],
    );
    const got = JSON.parse(out) as { meta: unknown; shapes: Record<string, number[]>; dtypes: string[] };
    expect(got.meta).toEqual({ format: "pt" });
    expect(got.dtypes).toEqual(["float32"]);
    expect(Object.keys(got.shapes)).toHaveLength(3 * 7 * 2);
    expect(got.shapes["base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"]).toEqual([4, 32]);
    expect(got.shapes["base_model.model.model.layers.0.self_attn.k_proj.lora_B.weight"]).toEqual([16, 4]);
    expect(got.shapes["base_model.model.model.layers.2.mlp.down_proj.lora_A.weight"]).toEqual([4, 48]);
    expect(got.shapes["base_model.model.model.layers.2.mlp.gate_proj.lora_B.weight"]).toEqual([48, 4]);
  });

  it("writes BF16 when asked, and reads it back as the rounded values", () => {
    const ad = trainedAdapter();
    const dir = path.join(tmp, "bf16");
    writePeftAdapter(dir, ad, { dtype: "BF16" });
    const back = readPeftAdapter(dir);
    const key = loraKey(1, "up");
    expect(back.b.get(key)).toEqual(Float32Array.from(ad.b.get(key)!, (v) => bf16ToFloat(floatToBf16(v))));
  });

  it("reads adapters written by PEFT's conventions: `.default.` names, rsLoRA, a subset of targets", () => {
    const dir = path.join(tmp, "foreign");
    fs.mkdirSync(dir);
    const A = Float32Array.from({ length: 2 * 8 }, (_, i) => i / 16);
    const B = Float32Array.from({ length: 6 * 2 }, (_, i) => -i / 12);
    writeSafetensors(path.join(dir, PEFT_WEIGHTS_FILE), [
      { name: "base_model.model.model.layers.0.self_attn.v_proj.lora_A.default.weight", shape: [2, 8], data: A },
      { name: "base_model.model.model.layers.0.self_attn.v_proj.lora_B.default.weight", shape: [6, 2], data: B },
    ]);
    fs.writeFileSync(path.join(dir, PEFT_CONFIG_FILE), JSON.stringify({ peft_type: "LORA", r: 2, lora_alpha: 4, use_rslora: true, target_modules: ["v_proj"], base_model_name_or_path: "x" }));
    const ad = readPeftAdapter(dir);
    expect(ad.config).toMatchObject({ rank: 2, targets: ["v"], numLayers: 1, dims: { v: { in: 8, out: 6 } } });
    expect(ad.config.alpha / ad.config.rank).toBeCloseTo(4 / Math.sqrt(2), 12); // rsLoRA scaling
    expect(ad.a.get(loraKey(0, "v"))).toEqual(A);
  });

  it("refuses what it cannot represent, naming it", () => {
    const base = path.join(tmp, "bad");
    const write = (name: string, cfg: Record<string, unknown>, tensors?: Parameters<typeof writeSafetensors>[1]) => {
      const dir = path.join(base, name);
      fs.mkdirSync(dir, { recursive: true });
      fs.writeFileSync(path.join(dir, PEFT_CONFIG_FILE), JSON.stringify(cfg));
      if (tensors) writeSafetensors(path.join(dir, PEFT_WEIGHTS_FILE), tensors);
      return dir;
    };
    const ok = { peft_type: "LORA", r: 2, lora_alpha: 4 };
    const a = (layer: number) => ({ name: `base_model.model.model.layers.${layer}.self_attn.q_proj.lora_A.weight`, shape: [2, 4], data: new Float32Array(8) });
    const b = (layer: number) => ({ name: `base_model.model.model.layers.${layer}.self_attn.q_proj.lora_B.weight`, shape: [4, 2], data: new Float32Array(8) });
    expect(() => readPeftAdapter(path.join(base, "missing"))).toThrow(/no adapter_config.json/);
    expect(() => readPeftAdapter(write("dora", { ...ok, use_dora: true }))).toThrow(/DoRA/);
    expect(() => readPeftAdapter(write("no-rank", { peft_type: "LORA", lora_alpha: 4 }))).toThrow(/"r" must be a positive integer/);
    expect(() => readPeftAdapter(write("no-weights", ok))).toThrow(/no adapter_model.safetensors/);
    expect(() => readPeftAdapter(write("embed", ok, [{ name: "base_model.model.model.embed_tokens.lora_A.weight", shape: [2, 4], data: new Float32Array(8) }]))).toThrow(/unsupported tensor/);
    expect(() => readPeftAdapter(write("partial", ok, [a(0), b(0), a(1)]))).toThrow(/missing .*layers\.1\.self_attn\.q_proj\.lora_B/);
    expect(() => readPeftAdapter(write("rank", { ...ok, r: 3 }, [a(0), b(0)]))).toThrow(/expected rank 3/);
    expect(() => writePeftAdapter(path.join(base, "w"), { ...trainedAdapter(), a: new Map() })).toThrow(/missing layer 0 q/);
  });
});
