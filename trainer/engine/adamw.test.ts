import { describe, expect, it } from "vitest";
import { createLoraAdapter, seededRandom, type LoraAdapter, type LoraConfig } from "../../adapters/index.js";
import { AdamW } from "./adamw.js";
import { Engine } from "./engine.js";
import { syntheticWeights, tinyConfig } from "./testing/synthetic.js";

const CONFIG: LoraConfig = { rank: 2, alpha: 4, targets: ["q", "v"], numLayers: 2, dims: { q: { in: 3, out: 4 }, v: { in: 3, out: 2 } }, baseModel: "" };

function gradsLike(adapter: LoraAdapter, seed: number, scale = 1) {
  const rand = seededRandom(seed);
  const fill = (m: Map<string, Float32Array>) => new Map([...m].map(([k, v]) => [k, Float32Array.from(v, () => (rand() * 2 - 1) * scale)]));
  return { a: fill(adapter.a), b: fill(adapter.b) };
}

const snapshot = (a: LoraAdapter) => [...a.a.values(), ...a.b.values()].map((x) => Array.from(x));

describe("AdamW", () => {
  it("moves each weight by about lr against its gradient's sign on the first step", () => {
    const adapter = createLoraAdapter(CONFIG, 1);
    const before = snapshot(adapter);
    const g = gradsLike(adapter, 2);
    new AdamW({ lr: 0.01, maxGradNorm: Infinity }).step(adapter, g);
    const grads = [...g.a.values(), ...g.b.values()];
    snapshot(adapter).forEach((after, t) =>
      after.forEach((x, i) => expect(x - before[t]![i]!).toBeCloseTo(-0.01 * Math.sign(grads[t]![i]!), 5)),
    );
  });

  it("clips the global gradient norm before the update", () => {
    const a1 = createLoraAdapter(CONFIG, 1);
    const a2 = createLoraAdapter(CONFIG, 1);
    const g = gradsLike(a1, 3, 10);
    const norm = Math.hypot(...[...g.a.values(), ...g.b.values()].flatMap((x) => Array.from(x)));
    // β = 0 and a large ε make the update proportional to the (clipped) gradient itself.
    const opts = { lr: 1, beta1: 0, beta2: 0, eps: 1e6 };
    const r = new AdamW({ ...opts, maxGradNorm: 1 }).step(a1, g);
    expect(r.gradNorm).toBeCloseTo(norm, 3);
    expect(r.clipped).toBe(true);
    const scaled = { a: new Map([...g.a].map(([k, v]) => [k, v.map((x) => x / norm)])), b: new Map([...g.b].map(([k, v]) => [k, v.map((x) => x / norm)])) };
    expect(new AdamW({ ...opts, maxGradNorm: 1e9 }).step(a2, scaled).clipped).toBe(false);
    snapshot(a1).forEach((x, t) => x.forEach((v, i) => expect(v).toBeCloseTo(snapshot(a2)[t]![i]!, 6)));
  });

  it("decays weights decoupled from the gradient", () => {
    const adapter = createLoraAdapter(CONFIG, 1);
    const before = snapshot(adapter);
    const zero = gradsLike(adapter, 4, 0);
    new AdamW({ lr: 0.1, weightDecay: 0.5 }).step(adapter, zero);
    snapshot(adapter).forEach((x, t) => x.forEach((v, i) => expect(v).toBeCloseTo(before[t]![i]! * 0.95, 7)));
  });

  it("resumes from saved state bit for bit", () => {
    const steps = [5, 6, 7].map((s) => gradsLike(createLoraAdapter(CONFIG, 1), s));
    const straight = createLoraAdapter(CONFIG, 1);
    const opt = new AdamW({ lr: 0.01, weightDecay: 0.1 });
    for (const g of steps) opt.step(straight, g);

    const resumed = createLoraAdapter(CONFIG, 1);
    const first = new AdamW({ lr: 0.01, weightDecay: 0.1 });
    first.step(resumed, steps[0]!);
    const bytes = first.saveState();
    const second = new AdamW({ lr: 0.01, weightDecay: 0.1 });
    second.loadState(bytes);
    expect(second.stepCount).toBe(1);
    second.step(resumed, steps[1]!);
    second.step(resumed, steps[2]!);
    expect(snapshot(resumed)).toEqual(snapshot(straight));
  });

  it("refuses bad gradients and bad state, changing nothing", () => {
    const adapter = createLoraAdapter(CONFIG, 1);
    const before = snapshot(adapter);
    const opt = new AdamW({ lr: 0.01 });
    const g = gradsLike(adapter, 8);
    g.b.get("1.v")![0] = Number.NaN;
    expect(() => opt.step(adapter, g)).toThrow(/B 1.v contains NaN; the adapter was not changed/);
    g.b.delete("1.v");
    expect(() => opt.step(adapter, g)).toThrow(/no gradient for LoRA B 1.v/);
    expect(snapshot(adapter)).toEqual(before);
    expect(opt.stepCount).toBe(0);
    expect(() => opt.loadState(new Uint8Array([1, 2, 3]))).toThrow(/not valid/);
    const bytes = opt.saveState();
    bytes[9] = 0x7b; // break the JSON header
    expect(() => opt.loadState(bytes)).toThrow(/AdamW state/);
    expect(() => new AdamW({ lr: -1 })).toThrow(/invalid lr/);
  });
});

describe("engine + AdamW", () => {
  it("raises the log-probability of a rewarded response over a few steps", async () => {
    const weights = syntheticWeights(tinyConfig({ hiddenSize: 32, intermediateSize: 48, headDim: 8, vocabSize: 64 }), 5);
    const engine = await Engine.create({ model: { weights }, lora: { rank: 4, alpha: 8, targets: ["q", "k", "v", "o", "gate", "up", "down"] }, threads: 1 });
    try {
      const adapter = engine.newAdapter(0);
      const opt = new AdamW({ lr: 0.02 });
      const item = { promptIds: [1, 2, 3, 4], responseIds: [10, 20, 30] };
      const [start] = await engine.score([item], adapter);
      const loss = { epsLow: 0.2, epsHigh: 0.28, klCoef: 0 };
      for (let step = 0; step < 6; step++) {
        // On-policy each step: the old log-probs are the current ones, so ρ = 1 and the update is
        // the plain policy gradient with A = +1.
        const [old] = await engine.score([item], adapter);
        const r = await engine.trainStep([{ ...item, advantages: [1, 1, 1], oldLogprobs: old! }], adapter, loss);
        expect(r.metrics.meanRatio).toBeCloseTo(1, 4);
        opt.step(adapter, r.gradients);
      }
      const [end] = await engine.score([item], adapter);
      const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
      expect(sum(end!)).toBeGreaterThan(sum(start!) + 0.5);
    } finally {
      engine.close();
    }
  });
});
