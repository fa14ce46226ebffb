// The engine on tiny random models of every architecture variant, in float64:
//  - forward: per-token log-probs equal a naive loop-by-loop reference (testing/reference.ts);
//  - gradients: every LoRA tensor's gradient against central finite differences of the loss;
//  - the per-layer (recomputing) program gives the whole-model program's numbers;
//  - the loss equals the DESIGN.md formula computed independently from the log-probs.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { writeTinyHfModel } from "../../test/support/tiny-models.js";
import { LORA_TARGETS, seededRandom, type LoraAdapter, type LoraTarget } from "../../adapters/index.js";
import { Engine, type LoraValues, type LossOptions, type TrainItem } from "./engine.js";
import { loadModel } from "./model/index.js";
import type { ModelConfig } from "./model/types.js";
import { referenceLogprobs } from "./testing/reference.js";
import { syntheticWeights, tinyConfig } from "./testing/synthetic.js";

const VARIANTS: Record<string, Partial<ModelConfig>> = {
  "llama, tied, GQA": {},
  "llama, untied, MHA, linear RoPE scaling": { tieWordEmbeddings: false, numKvHeads: 4, ropeScaling: { type: "linear", factor: 2 } },
  "llama, Llama-3 RoPE scaling": {
    // Wavelengths 6.3, 32, 167, …: with an original context of 64 the first frequency is kept,
    // the second interpolated, the rest slowed by the factor: all three branches.
    headDim: 16,
    numHeads: 2,
    numKvHeads: 1,
    ropeTheta: 500000,
    ropeScaling: { type: "llama3", factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 64 },
  },
  "qwen2, q/k/v biases": { architecture: "qwen2", attentionBias: true, ropeTheta: 1000000 },
  "qwen3, q/k norm, headDim ≠ hidden/heads, untied": { architecture: "qwen3", qkNorm: true, headDim: 6, tieWordEmbeddings: false },
  "mistral": { architecture: "mistral", tieWordEmbeddings: false },
};

const LOSS: LossOptions = { epsLow: 0.2, epsHigh: 0.28, klCoef: 0.05 };

function randomAdapter(engine: Engine, seed: number): LoraAdapter {
  const adapter = engine.newAdapter(seed);
  const rand = seededRandom(seed + 100);
  // PEFT starts B at zero, which would make every A gradient zero; give B values to test them.
  for (const b of adapter.b.values()) for (let i = 0; i < b.length; i++) b[i] = (rand() * 2 - 1) * 0.5;
  return adapter;
}

function toFloat64(adapter: LoraAdapter): LoraValues & { a: Map<string, Float64Array>; b: Map<string, Float64Array> } {
  const conv = (m: Map<string, Float32Array>) => new Map([...m].map(([k, v]) => [k, Float64Array.from(v)]));
  return { scaling: adapter.config.alpha / adapter.config.rank, a: conv(adapter.a), b: conv(adapter.b) };
}

/** Samples of different lengths (so runs are padded), old log-probs near the current ones (so some are clipped). */
function trainItems(base: number[][], seed: number): TrainItem[] {
  const rand = seededRandom(seed);
  const prompts = [[1, 2, 3, 4, 5], [6, 7], [8, 9, 10, 11, 12, 13, 14, 15, 16]];
  const responses = [[17, 18, 19], [20, 21, 22, 23, 24, 25], [26, 27]];
  return prompts.map((promptIds, i) => {
    const responseIds = responses[i]!;
    const sign = i === 1 ? -1 : 1;
    return {
      promptIds,
      responseIds,
      advantages: responseIds.map(() => sign * (0.5 + rand())),
      oldLogprobs: base[i]!.map((lp) => lp + (rand() * 2 - 1) * 0.5),
      ...(i !== 2 ? { refLogprobs: base[i]!.map((lp) => lp + (rand() * 2 - 1) * 0.3) } : {}),
    };
  });
}

/** The loss of DESIGN.md from log-probs, written out independently of the graph. */
function lossByHand(items: TrainItem[], logprobs: number[][], o: LossOptions): number {
  let total = 0;
  items.forEach((it, i) => {
    let s = 0;
    logprobs[i]!.forEach((lp, t) => {
      const ratio = Math.exp(lp - it.oldLogprobs[t]!);
      const A = it.advantages[t]!;
      const clipped = Math.min(Math.max(ratio, 1 - o.epsLow), 1 + o.epsHigh);
      let l = Math.max(-ratio * A, -clipped * A);
      if (it.refLogprobs) {
        const r = it.refLogprobs[t]! - lp;
        l += o.klCoef * (Math.exp(r) - r - 1);
      }
      s += l;
    });
    total += s / it.responseIds.length;
  });
  return total / items.length;
}

const lora = (targets: LoraTarget[] = [...LORA_TARGETS]) => ({ rank: 2, alpha: 5, targets });

describe.each(Object.entries(VARIANTS))("engine on a tiny %s model (float64)", (_name, over) => {
  const config = tinyConfig(over);
  const weights = syntheticWeights(config, 7);

  it.each(["whole", "layered"] as const)("scores like the reference forward pass, with and without an adapter (%s)", async (mode) => {
    const engine = await Engine.create({ model: { weights }, lora: lora(), float: "float64", threads: 1, mode });
    try {
      const adapter = randomAdapter(engine, 1);
      const items = [
        { promptIds: [3, 1, 4, 1, 5, 9], responseIds: [2, 6, 5, 3] },
        { promptIds: [2, 7], responseIds: [1, 8, 2, 8, 1, 8, 2, 8] },
      ];
      for (const a of [null, adapter]) {
        const got = await engine.score(items, a);
        const ref = a ? { scaling: a.config.alpha / a.config.rank, a: a.a, b: a.b } : null;
        items.forEach((it, i) => {
          const want = referenceLogprobs(weights, it.promptIds, it.responseIds, ref);
          expect(got[i]!.length).toBe(want.length);
          got[i]!.forEach((lp, t) => expect(Math.abs(lp - want[t]!)).toBeLessThan(1e-9));
        });
      }
    } finally {
      engine.close();
    }
  });

  it("has LoRA gradients that match central finite differences for every tensor, in both modes", async () => {
    const whole = await Engine.create({ model: { weights }, lora: lora(), float: "float64", threads: 1, mode: "whole" });
    const layered = await Engine.create({ model: { weights }, lora: lora(), float: "float64", threads: 1, mode: "layered" });
    try {
      const adapter = randomAdapter(whole, 2);
      const values = toFloat64(adapter);
      const base = await whole.score(trainItems([[0, 0, 0], [0, 0, 0, 0, 0, 0], [0, 0]], 0), adapter);
      const items = trainItems(base, 3);
      const step = await whole.lossAndGradients(items, values, LOSS);
      const other = await layered.lossAndGradients(items, values, LOSS);

      // The loss is the formula, and some tokens sit in each regime (clipped or not).
      expect(Math.abs(step.loss - lossByHand(items, step.logprobs, LOSS))).toBeLessThan(1e-12);
      expect(Math.abs(other.loss - step.loss)).toBeLessThan(1e-12);

      const rand = seededRandom(5);
      const eps = 1e-6;
      let checked = 0;
      for (const part of ["a", "b"] as const) {
        const grads = part === "a" ? step.gradA : step.gradB;
        const layeredGrads = part === "a" ? other.gradA : other.gradB;
        for (const [key, tensor] of values[part]) {
          const g = grads.get(key)!;
          // Per-layer recomputation gives the same gradient.
          const gl = layeredGrads.get(key)!;
          g.forEach((x, i) => expect(Math.abs(x - gl[i]!)).toBeLessThan(1e-10 * Math.max(1, Math.abs(x))));
          // Directional derivative along a random unit direction vs central differences.
          const u = Float64Array.from(tensor, () => rand() * 2 - 1);
          const norm = Math.hypot(...u);
          u.forEach((x, i) => (u[i] = x / norm));
          const keep = tensor.slice();
          tensor.forEach((x, i) => (tensor[i] = keep[i]! + eps * u[i]!));
          const up = (await whole.lossAndGradients(items, values, LOSS)).loss;
          tensor.forEach((x, i) => (tensor[i] = keep[i]! - eps * u[i]!));
          const down = (await whole.lossAndGradients(items, values, LOSS)).loss;
          tensor.set(keep);
          const fd = (up - down) / (2 * eps);
          let analytic = 0; // (reduce is not callable on a Float32Array | Float64Array union)
          g.forEach((x, i) => (analytic += x * u[i]!));
          expect(Math.abs(fd - analytic), `${part} ${key}: fd ${fd} vs ${analytic}`).toBeLessThan(1e-6 * Math.max(1, Math.abs(fd)));
          expect(Math.abs(analytic)).toBeGreaterThan(1e-8);
          checked++;
        }
      }
      expect(checked).toBe(2 * config.numLayers * LORA_TARGETS.length);
    } finally {
      whole.close();
      layered.close();
    }
  });
});

describe("engine on Hugging Face folders", () => {
  // bf16 and f16 checkpoints reach the engine as fp32 (the loader decodes them exactly), sharded
  // or not; the reference runs on the same decoded weights.
  it.each([
    ["qwen2", "BF16", true],
    ["qwen3", "F16", false],
    ["llama", "F32", false],
  ] as const)("scores a %s %s folder (sharded: %s) like the reference", async (modelType, dtype, sharded) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "clawloop-hf-"));
    try {
      writeTinyHfModel(dir, { modelType, dtype, sharded, ...(modelType === "qwen3" ? { headDim: 12 } : {}) });
      const model = await loadModel(dir);
      const engine = await Engine.create({ model, lora: lora(), float: "float64", threads: 1 });
      try {
        const adapter = randomAdapter(engine, 6);
        const item = { promptIds: [5, 9, 14, 3], responseIds: [7, 1, 2] };
        const [got] = await engine.score([item], adapter);
        const want = referenceLogprobs(model.weights, item.promptIds, item.responseIds, { scaling: 2.5, a: adapter.a, b: adapter.b });
        got!.forEach((lp, t) => expect(Math.abs(lp - want[t]!)).toBeLessThan(1e-9));
      } finally {
        engine.close();
        model.close();
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("engine behaviour (float32)", () => {
  const config = tinyConfig({ numLayers: 2, hiddenSize: 32, intermediateSize: 48, headDim: 8, vocabSize: 64 });
  const weights = syntheticWeights(config, 11);

  it("scores a batch exactly as each item alone (padding and batching change nothing)", async () => {
    const engine = await Engine.create({ model: { weights }, lora: lora(), threads: 1, batchTokens: 256 });
    try {
      const adapter = randomAdapter(engine, 3);
      const rand = seededRandom(9);
      const items = Array.from({ length: 6 }, (_, i) => ({
        promptIds: Array.from({ length: 3 + i * 7 }, () => Math.floor(rand() * 64)),
        responseIds: Array.from({ length: 1 + ((i * 5) % 9) }, () => Math.floor(rand() * 64)),
      }));
      const together = await engine.score(items, adapter);
      for (let i = 0; i < items.length; i++) {
        const [alone] = await engine.score([items[i]!], adapter);
        alone!.forEach((lp, t) => expect(Math.abs(lp - together[i]![t]!)).toBeLessThan(2e-5));
      }
    } finally {
      engine.close();
    }
  });

  it("treats a fresh adapter (B = 0) as the base model, and scales the update by alpha / rank", async () => {
    const engine = await Engine.create({ model: { weights }, lora: lora(["q", "v", "down"]), threads: 1 });
    try {
      const items = [{ promptIds: [1, 2, 3], responseIds: [4, 5, 6, 7] }];
      const [base] = await engine.score(items, null);
      const [fresh] = await engine.score(items, engine.newAdapter(0));
      fresh!.forEach((lp, t) => expect(lp).toBeCloseTo(base![t]!, 5));

      const adapter = randomAdapter(engine, 4);
      const doubled = { ...adapter, config: { ...adapter.config, alpha: adapter.config.alpha * 2 } };
      const twiceB = { ...adapter, b: new Map([...adapter.b].map(([k, v]) => [k, v.map((x) => 2 * x)])) };
      const [x] = await engine.score(items, doubled);
      const [y] = await engine.score(items, twiceB);
      x!.forEach((lp, t) => expect(lp).toBeCloseTo(y![t]!, 4));
      expect(Math.max(...x!.map((lp, t) => Math.abs(lp - base![t]!)))).toBeGreaterThan(1e-3);
    } finally {
      engine.close();
    }
  });

  it("returns float32 gradients, per-token log-probs and honest metrics from trainStep", async () => {
    const engine = await Engine.create({ model: { weights }, lora: lora(), threads: 1 });
    try {
      const adapter = randomAdapter(engine, 5);
      const items: TrainItem[] = [
        { promptIds: [1, 2, 3], responseIds: [4, 5], advantages: [1, 1], oldLogprobs: [0, 0] },
        { promptIds: [6, 7], responseIds: [8, 9, 10], advantages: [-1, -1, -1], oldLogprobs: [-50, -50, -50], refLogprobs: [-4, -4, -4] },
      ];
      const r = await engine.trainStep(items, adapter, LOSS);
      expect(r.gradients.a.get("0.q")).toBeInstanceOf(Float32Array);
      expect(r.logprobs.map((l) => l.length)).toEqual([2, 3]);
      expect(r.metrics.tokens).toBe(5);
      expect(r.metrics.samples).toBe(2);
      // Item 0: log π < 0 = old, so ρ < 1 with A > 0: not clipped. Item 1: ρ ≫ 1 + ε with A < 0:
      // ratio is not clipped on that side either (only ρ < 1 − ε clips a negative advantage).
      expect(r.metrics.clipFraction).toBe(0);
      expect(r.metrics.kl).toBeGreaterThan(0);
      expect(Math.abs(r.loss - lossByHand(items, r.logprobs, LOSS))).toBeLessThan(1e-3 * Math.abs(r.loss));
    } finally {
      engine.close();
    }
  });

  it("rejects bad input with errors that name the item", async () => {
    const engine = await Engine.create({ model: { weights }, lora: lora(["q"]), threads: 1, maxTokens: 16 });
    try {
      const adapter = engine.newAdapter(0);
      await expect(engine.score([{ promptIds: [], responseIds: [1] }], null)).rejects.toThrow(/item 0: promptIds is empty/);
      await expect(engine.score([{ promptIds: [1], responseIds: [1] }, { promptIds: [1], responseIds: [64] }], null)).rejects.toThrow(
        /item 1: token id 64 is outside the vocabulary/,
      );
      await expect(engine.score([{ promptIds: new Array(17).fill(1), responseIds: [] }], null)).rejects.toThrow(/exceed maxTokens 16/);
      const item = { promptIds: [1], responseIds: [2, 3], advantages: [1], oldLogprobs: [0, 0] };
      await expect(engine.trainStep([item], adapter, LOSS)).rejects.toThrow(/advantages must have one number per response token/);
      await expect(engine.trainStep([{ ...item, advantages: [1, NaN] }], adapter, LOSS)).rejects.toThrow(/advantages contains NaN/);
      await expect(engine.trainStep([{ ...item, advantages: [1, 1] }], adapter, { ...LOSS, epsLow: -1 })).rejects.toThrow(/epsLow/);
      await expect(Engine.create({ model: { weights }, lora: lora(["q", "x" as LoraTarget]), threads: 1 })).rejects.toThrow(/unknown LoRA target "x"/);
      await expect(Engine.create({ model: { weights }, lora: { rank: 0, alpha: 1, targets: ["q"] } })).rejects.toThrow(/rank/);
      const other = await Engine.create({ model: { weights }, lora: lora(["k"]), threads: 1 });
      await expect(engine.score([{ promptIds: [1], responseIds: [2] }], other.newAdapter(0))).rejects.toThrow(/targets/);
      other.close();
      // Nothing broke: the engine still scores.
      const [ok] = await engine.score([{ promptIds: [1], responseIds: [2] }], adapter);
      expect(ok).toHaveLength(1);
      expect(await engine.score([{ promptIds: [1, 2], responseIds: [] }], null)).toEqual([[]]);
    } finally {
      engine.close();
    }
  });
});
