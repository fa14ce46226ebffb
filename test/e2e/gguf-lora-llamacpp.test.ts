// The GGUF LoRA files we write, loaded into real llama.cpp (node-llama-cpp) on SmolLM2-135M-Instruct.
//  - A zero-B adapter leaves llama.cpp's log-probs unchanged; a non-zero one changes them.
//  - The q/k row permutation is right: an adapter with ΔW_q = −2·W_q (every query negated) and one
//    with ΔW_k = −2·W_k (every key negated) both negate the attention logits q·k, so llama.cpp must
//    give the same log-probs for both. Each ΔW is built in Hugging Face layout from our loader's
//    (un-permuted) weights and our writer permutes lora_B for the file: with 9 query heads and 3 key
//    heads, a mistake would make the two disagree — as writing q without the permutation shows.
//
// Noise floor: llama.cpp multiplies Q4_1 weights by activations quantized to Q8_1, so ANY
// perturbation, even a LoRA with B = 1e-6, moves its log-probs: by ~0.08 per token on average (max
// ~0.5 over this sequence) when measured. The floor is measured in beforeAll (a B = 1e-6 adapter)
// and the comparisons are made on the mean |Δ| per token with margins relative to it.
//
// Scoring is trainer/engine/testing/llama-reference.ts (two logits per position), itself checked
// here against the whole vocabulary's log-softmax. (Its predecessor asked node-llama-cpp for the max
// logit with `includeMax`, which node-llama-cpp 3.22 adds only when that token is already in the
// filter, so it scored log p of the argmax at every position, up to 22 nats off.)
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLoraAdapter, encodeGgufLora, loraKey, readGguf, readGgufLora, writeGgufLora, type LoraAdapter, type LoraConfig } from "../../adapters/index.js";
import { loadModel, type LoadedModel } from "../../trainer/engine/model/index.js";
import { getLlama, type Llama, type LlamaModel } from "node-llama-cpp";
import { openLlamaReference, type LlamaReference } from "../../trainer/engine/testing/llama-reference.js";
import { referenceLogprobs } from "../support/llama-reference.js";
import { runPython } from "../support/python-tools.js";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "gguf-lora-"));
let scorer: LlamaReference;
let model: LoadedModel;
let tokens: number[];
let base: number[];
/** Mean |Δ log p| per token that any perturbation causes in llama.cpp (see the top of this file). */
let noiseFloor: number;

beforeAll(async () => {
  const file = process.env.CLAWLOOP_TEST_MODEL!;
  model = await loadModel(file);
  scorer = await openLlamaReference(file);
  tokens = model.tokenizer.encodeChat(
    [
      { role: "user", content: "What is the capital of France? Answer in one sentence." },
      { role: "assistant", content: "The capital of France is Paris, a city known for the Eiffel Tower." },
    ],
    { addGenerationPrompt: false },
  );
  base = await scorer.logprobs(tokens);
  const tiny = createLoraAdapter(smolConfig(["q", "v", "down"], 8), 2);
  for (const b of tiny.b.values()) b.fill(1e-6);
  const tinyFile = path.join(tmp, "tiny.gguf");
  writeGgufLora(tinyFile, tiny, BASE);
  noiseFloor = meanAbsDiff(await scorer.logprobs(tokens, { loraFile: tinyFile }), base);
  console.log(`llama.cpp noise floor: mean |Δ log p| ${noiseFloor.toFixed(3)} per token for a B = 1e-6 adapter`);
  // A floor of 0 would make the margins below meaningless; one near the effects would too.
  expect(noiseFloor).toBeGreaterThan(0);
  expect(noiseFloor).toBeLessThan(0.2);
});

afterAll(async () => {
  await scorer?.close();
  model?.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

const maxAbsDiff = (a: number[], b: number[]) => Math.max(...a.map((v, i) => Math.abs(v - b[i]!)));
const meanAbsDiff = (a: number[], b: number[]) => a.reduce((s, v, i) => s + Math.abs(v - b[i]!), 0) / a.length;

function smolConfig(targets: LoraConfig["targets"], rank: number, numLayers = 30): LoraConfig {
  return {
    rank, alpha: rank, targets, numLayers, baseModel: "SmolLM2-135M-Instruct",
    dims: { q: { in: 576, out: 576 }, k: { in: 576, out: 192 }, v: { in: 576, out: 192 }, o: { in: 576, out: 576 }, gate: { in: 576, out: 1536 }, up: { in: 576, out: 1536 }, down: { in: 1536, out: 576 } },
  };
}
const BASE = { architecture: "llama", numHeads: 9, numKvHeads: 3 };

/** Full-rank adapter (A = I, B = c·W, scale 1) on one projection of the first `layers` layers. */
function scaleProjection(target: "q" | "k", c: number, layers: number): LoraAdapter {
  const cfg = smolConfig([target], 576, layers);
  const a = new Map<string, Float32Array>();
  const b = new Map<string, Float32Array>();
  for (let layer = 0; layer < layers; layer++) {
    const I = new Float32Array(576 * 576);
    for (let i = 0; i < 576; i++) I[i * 576 + i] = 1;
    a.set(loraKey(layer, target), I);
    const W = model.weights.float32(`model.layers.${layer}.self_attn.${target}_proj.weight`);
    b.set(loraKey(layer, target), Float32Array.from(W, (w) => c * w));
  }
  return { config: cfg, a, b };
}

describe("GGUF LoRA in llama.cpp", () => {
  it("the scorer gives log p of each next token (the full-vocabulary log-softmax, computed independently)", async () => {
    // The scorer reads two logits per position; this reads the whole vocabulary on its own model.
    let llama: Llama | null = null;
    let lm: LlamaModel | null = null;
    try {
      llama = await getLlama({ build: "never", gpu: false });
      lm = await llama.loadModel({ modelPath: process.env.CLAWLOOP_TEST_MODEL! });
      const full = (await referenceLogprobs(lm, tokens)).map((p) => p.logprob);
      expect(base).toHaveLength(full.length);
      expect(maxAbsDiff(base, full)).toBeLessThan(1e-3);
      // Not a degenerate sequence: the target is not always llama.cpp's first choice.
      expect(full.filter((lp) => lp < Math.log(0.5)).length).toBeGreaterThan(5);
    } finally {
      await lm?.dispose();
      await llama?.dispose();
    }
  });

  it("is read by gguf-py with llama.cpp's metadata and shapes", () => {
    const ad = createLoraAdapter(smolConfig(["q", "k", "v", "o", "gate", "up", "down"], 8, 2), 1);
    const file = path.join(tmp, "meta.gguf");
    writeGgufLora(file, ad, BASE, { dtype: "F16" });
    const out = runPython(
      `import sys, json, gguf
r = gguf.GGUFReader(sys.argv[1])
print(json.dumps({"meta": {k: [f.types[0].name, f.contents()] for k, f in r.fields.items() if not k.startswith("GGUF.")},
  "tensors": {t.name: [t.tensor_type.name, [int(x) for x in t.shape]] for t in r.tensors}}))`,
      [file],
    );
    const got = JSON.parse(out) as { meta: Record<string, [string, unknown]>; tensors: Record<string, [string, number[]]> };
    expect(got.meta["general.type"]).toEqual(["STRING", "adapter"]);
    expect(got.meta["general.architecture"]).toEqual(["STRING", "llama"]);
    expect(got.meta["adapter.type"]).toEqual(["STRING", "lora"]);
    expect(got.meta["adapter.lora.alpha"]).toEqual(["FLOAT32", 8]);
    expect(got.tensors["blk.0.attn_q.weight.lora_a"]).toEqual(["F16", [576, 8]]);
    expect(got.tensors["blk.0.attn_k.weight.lora_b"]).toEqual(["F16", [8, 192]]);
    expect(got.tensors["blk.1.ffn_down.weight.lora_a"]).toEqual(["F16", [1536, 8]]);
    expect(got.tensors["blk.1.ffn_down.weight.lora_b"]).toEqual(["F16", [8, 576]]);
    expect(Object.keys(got.tensors)).toHaveLength(2 * 7 * 2);
  });

  it("round-trips through our reader, un-permuting q/k lora_B", () => {
    const ad = createLoraAdapter(smolConfig(["q", "k", "v"], 4, 2), 5);
    for (const b of ad.b.values()) for (let i = 0; i < b.length; i++) b[i] = Math.cos(i * 0.37);
    const file = path.join(tmp, "rt.gguf");
    writeGgufLora(file, ad, BASE);
    const back = readGgufLora(file, BASE, ad.config.baseModel);
    const { q, k, v } = ad.config.dims;
    expect(back.config).toEqual({ ...ad.config, dims: { q, k, v } });
    for (const k of ad.a.keys()) {
      expect(back.a.get(k)).toEqual(ad.a.get(k));
      expect(back.b.get(k)).toEqual(ad.b.get(k));
    }
    // In the file, q's lora_B rows really are in llama.cpp's order (different from ours).
    const raw = readGguf(file);
    expect(raw.tensors.get("blk.0.attn_q.weight.lora_b")!.dims).toEqual([4, 576]);
  });

  it("a zero-B adapter (PEFT's initialization) leaves llama.cpp's log-probs unchanged", async () => {
    const file = path.join(tmp, "zero.gguf");
    writeGgufLora(file, createLoraAdapter(smolConfig(["q", "k", "v", "o", "gate", "up", "down"], 8), 1), BASE);
    const lp = await scorer.logprobs(tokens, { loraFile: file });
    expect(lp).toHaveLength(tokens.length - 1);
    expect(maxAbsDiff(lp, base)).toBeLessThan(1e-5);
  });

  it("a non-zero adapter changes them", async () => {
    const ad = createLoraAdapter(smolConfig(["q", "v", "down"], 8), 2);
    for (const b of ad.b.values()) for (let i = 0; i < b.length; i++) b[i] = Math.sin(i) * 0.5;
    const file = path.join(tmp, "nonzero.gguf");
    writeGgufLora(file, ad, BASE);
    // Well above llama.cpp's own noise floor (see the top of this file).
    expect(meanAbsDiff(await scorer.logprobs(tokens, { loraFile: file }), base)).toBeGreaterThan(5 * noiseFloor);
  });

  it("negating queries and negating keys through LoRA give the same log-probs (q/k permutation is right)", async () => {
    const layers = 8;
    const c = -2;
    const qFile = path.join(tmp, "neg-q.gguf");
    const kFile = path.join(tmp, "neg-k.gguf");
    writeGgufLora(qFile, scaleProjection("q", c, layers), BASE);
    writeGgufLora(kFile, scaleProjection("k", c, layers), BASE);
    const lq = await scorer.logprobs(tokens, { loraFile: qFile });
    const lk = await scorer.logprobs(tokens, { loraFile: kFile });
    const effect = meanAbsDiff(lq, base);
    const mismatch = meanAbsDiff(lq, lk);
    // The same q adapter written WITHOUT the permutation (bytes as for a Qwen base, relabelled llama
    // so llama.cpp accepts it for this base) must disagree with the k one.
    const wrongFile = path.join(tmp, "neg-q-unpermuted.gguf");
    const wrong = encodeGgufLora(scaleProjection("q", c, layers), { ...BASE, architecture: "qwen2" });
    fs.writeFileSync(wrongFile, Buffer.from(wrong.toString("latin1").replace("qwen2", "llama"), "latin1"));
    const wrongMismatch = meanAbsDiff(await scorer.logprobs(tokens, { loraFile: wrongFile }), lk);
    console.log(`negate q vs k, mean |Δ| per token: effect ${effect.toFixed(3)}, q-vs-k ${mismatch.toFixed(3)}, unpermuted-q vs k ${wrongMismatch.toFixed(3)}, noise floor ${noiseFloor.toFixed(3)}`);
    expect(effect).toBeGreaterThan(0.5);
    expect(mismatch).toBeLessThan(2 * noiseFloor);
    expect(mismatch).toBeLessThan(effect / 5);
    expect(wrongMismatch).toBeGreaterThan(mismatch * 5);
  });
});
