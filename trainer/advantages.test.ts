import { describe, expect, it } from "vitest";
import { clip, computeAdvantages, k3Kl, ppoSurrogate, signalsFor } from "./advantages.js";

const w = { gapClip: 2, wRl: 1, wOpd: 1 };

describe("signalsFor", () => {
  it("rl needs a non-zero reward, opd a hint, combined either", () => {
    expect(signalsFor("rl", 1, false)).toEqual({ rl: true, opd: false });
    expect(signalsFor("rl", 0, true)).toEqual({ rl: false, opd: false });
    expect(signalsFor("opd", 1, false)).toEqual({ rl: false, opd: false });
    expect(signalsFor("opd", 0, true)).toEqual({ rl: false, opd: true });
    expect(signalsFor("combined", -1, false)).toEqual({ rl: true, opd: false });
    expect(signalsFor("combined", 0, true)).toEqual({ rl: false, opd: true });
    expect(signalsFor("combined", 1, true)).toEqual({ rl: true, opd: true });
    expect(signalsFor("combined", 0, false)).toEqual({ rl: false, opd: false });
  });
});

describe("computeAdvantages", () => {
  const student = [-1, -2, -0.5, -3];
  const teacher = [-0.5, -5, -0.5, 1];

  it("binary RL puts r on every response token", () => {
    const a = computeAdvantages("rl", -1, student, null, w);
    expect(a.total).toEqual([-1, -1, -1, -1]);
    expect(a.opd).toEqual([0, 0, 0, 0]);
  });

  it("distillation is the teacher-student gap, clipped to ±c", () => {
    const a = computeAdvantages("opd", 1, student, teacher, w);
    expect(a.total).toEqual([0.5, -2, 0, 2]);
    expect(a.rl).toEqual([0, 0, 0, 0]);
  });

  it("combined weighs both terms; r = 0 leaves only the gap, no hint only r", () => {
    const both = computeAdvantages("combined", 1, student, teacher, { gapClip: 1, wRl: 0.5, wOpd: 2 });
    expect(both.rl).toEqual([0.5, 0.5, 0.5, 0.5]);
    expect(both.opd).toEqual([1, -2, 0, 2]);
    expect(both.total).toEqual([1.5, -1.5, 0.5, 2.5]);
    expect(computeAdvantages("combined", 0, student, teacher, w).total).toEqual([0.5, -2, 0, 2]);
    expect(computeAdvantages("combined", -1, student, null, w).total).toEqual([-1, -1, -1, -1]);
  });

  it("rejects a teacher scored on a different number of tokens", () => {
    expect(() => computeAdvantages("opd", 0, student, [-1], w)).toThrow(/teacher scored 1/);
  });
});

describe("ppoSurrogate", () => {
  it("is −A at ratio 1 and clips the ratio on the side that would over-reward", () => {
    expect(ppoSurrogate([0, 0], [1, -2], 0.2, 0.28)).toBeCloseTo((-1 + 2) / 2, 12);
    // ρ = e^1 with A > 0: capped at 1.28.
    expect(ppoSurrogate([1], [1], 0.2, 0.28)).toBeCloseTo(-1.28, 12);
    // ρ = e^−1 with A < 0: capped at 0.8 (the max takes the pessimistic side).
    expect(ppoSurrogate([-1], [-1], 0.2, 0.28)).toBeCloseTo(0.8, 12);
    // ρ = e^−1 with A > 0: the unclipped term is the larger loss.
    expect(ppoSurrogate([-1], [1], 0.2, 0.28)).toBeCloseTo(-Math.exp(-1), 12);
  });
});

describe("k3Kl", () => {
  it("is zero for identical policies and positive otherwise", () => {
    expect(k3Kl([-1, -2], [-1, -2])).toBe(0);
    expect(k3Kl([-1], [-2])).toBeCloseTo(Math.exp(-1) + 1 - 1, 12);
    expect(clip(5, -1, 1)).toBe(1);
  });
});
