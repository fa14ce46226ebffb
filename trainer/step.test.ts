import { describe, expect, it } from "vitest";
import { createLoraAdapter } from "../adapters/index.js";
import type { Sample } from "../core/index.js";
import { trainOnBatch, type StepSettings } from "./step.js";
import { FakeEngine, FakeOptimizer } from "./testing/fake-backend.js";

const settings = (over: Partial<StepSettings> = {}): StepSettings => ({
  mode: "combined", epsLow: 0.2, epsHigh: 0.28, klCoef: 0, gapClip: 2, wRl: 1, wOpd: 1, teacher: "policy", oldLogprobs: "engine", ...over,
});

const adapter = () => createLoraAdapter({ rank: 2, alpha: 4, targets: ["q"], numLayers: 1, dims: { q: { in: 4, out: 4 } }, baseModel: "m" }, 1);

const rlSample: Sample = {
  id: "rl", turnId: "rl", promptTokenIds: [1, 2, 3], responseTokenIds: [14, 15], behaviourLogprobs: [-0.5, -1.5], reward: 1, hint: null, teacherPromptTokenIds: null,
};
const opdSample: Sample = {
  id: "opd", turnId: "opd", promptTokenIds: [1, 2], responseTokenIds: [16, 17, 18], behaviourLogprobs: null, reward: 0, hint: "h", teacherPromptTokenIds: [1, 2, 9, 9],
};

describe("trainOnBatch", () => {
  it("scores student and policy teacher in one call, trains on engine π_old, and updates the adapter", async () => {
    const engine = new FakeEngine();
    const a = adapter();
    const before = a.b.get("0.q")!.slice();
    const out = await trainOnBatch(engine, new FakeOptimizer(0.1), a, [rlSample, opdSample], settings());
    expect(engine.calls.score).toHaveLength(1);
    expect(engine.calls.score[0]!.withAdapter).toBe(true);
    expect(engine.calls.score[0]!.items.map((i) => i.promptIds)).toEqual([[1, 2, 3], [1, 2], [1, 2, 9, 9]]);
    const [rl, opd] = engine.calls.trainStep[0]!;
    // The fake engine scores the same tokens identically in both contexts: gap 0, so only r remains.
    expect(rl!.advantages).toEqual([1, 1]);
    expect(opd!.advantages).toEqual([0, 0, 0]);
    // The fake engine's log-probs at B = 0: −1 − 0.001·(x mod 7).
    expect(rl!.oldLogprobs).toEqual([-1, -1.001]);
    expect(rl!.refLogprobs).toBeUndefined();
    expect(a.b.get("0.q")).not.toEqual(before);
    // Engine π_old: ratio 1, so each term's surrogate is −mean A.
    expect(out.lossRl).toBeCloseTo(-0.5, 12);
    expect(out.lossOpd).toBe(0);
    expect(out.meanReward).toBe(0.5);
    expect(out.meanAbsAdvantage).toBeCloseTo(2 / 5, 12);
    expect(out.tokens).toBe(10);
    expect(out.klToBase).toBe(null);
    // Server said −0.5, −1.5; the engine −1, −1.001.
    expect(out.behaviourMismatch).toBeCloseTo((0.5 + 0.499) / 2, 12);
  });

  it("uses the base model as teacher when asked, and for the KL reference", async () => {
    const engine = new FakeEngine();
    const out = await trainOnBatch(engine, new FakeOptimizer(0.1), adapter(), [rlSample, opdSample], settings({ teacher: "base", klCoef: 0.1 }));
    expect(engine.calls.score.map((c) => [c.items.length, c.withAdapter])).toEqual([[2, true], [1, false], [2, false]]);
    const items = engine.calls.trainStep[0]!;
    expect(items.every((i) => i.refLogprobs?.length === i.responseIds.length)).toBe(true);
    expect(out.klToBase).toBe(0); // a fresh adapter (B = 0) is the base model
  });

  it("takes π_old from the server where it has log-probs when oldLogprobs = server", async () => {
    const engine = new FakeEngine();
    const out = await trainOnBatch(engine, new FakeOptimizer(0.1), adapter(), [rlSample, opdSample], settings({ oldLogprobs: "server", mode: "rl" }));
    const [rl, opd] = engine.calls.trainStep[0]!;
    expect(rl!.oldLogprobs).toEqual([-0.5, -1.5]);
    expect(opd!.oldLogprobs).toHaveLength(3); // no server log-probs: engine recompute
    expect(opd!.advantages).toEqual([0, 0, 0]); // rl mode: r = 0 and no distillation
    // ρ = exp(engine − server) = e^−0.5 (below 1 − ε with A > 0: unclipped) and e^0.499 (clipped at 1.28);
    // the rl sample's mean, averaged with the opd sample's 0.
    const expected = (-Math.exp(-0.5) - 1.28) / 2 / 2;
    expect(out.lossRl).toBeCloseTo(expected, 6);
  });

  it("rejects an engine that scores the wrong number of tokens, and an empty batch", async () => {
    const engine = new FakeEngine();
    engine.score = async (items) => items.map(() => [-1]);
    await expect(trainOnBatch(engine, new FakeOptimizer(0.1), adapter(), [opdSample], settings())).rejects.toThrow(/log-probs for 3 response tokens/);
    await expect(trainOnBatch(new FakeEngine(), new FakeOptimizer(0.1), adapter(), [], settings())).rejects.toThrow(/at least one/);
  });
});
