// One optimizer step on a batch of samples: score the student (and the teacher, and the base model
// when the KL penalty is on) with the engine, turn that into per-token advantages, let the engine
// compute the clipped-surrogate gradients, and update the adapter in place.
import type { LoraAdapter } from "../adapters/index.js";
import type { Sample, TrainMode } from "../core/index.js";
import { computeAdvantages, k3Kl, ppoSurrogate, type AdvantageParts } from "./advantages.js";
import type { Optimizer, ScoreItem, TrainEngine, TrainItem } from "./compute.js";

export interface StepSettings {
  mode: TrainMode;
  epsLow: number;
  epsHigh: number;
  klCoef: number;
  gapClip: number;
  wRl: number;
  wOpd: number;
  /** Who teaches under the hint: the current policy (adapter on) or the frozen base model. */
  teacher: "policy" | "base";
  /**
   * π_old of the PPO ratio: "engine" recomputes it with the current adapter at the start of the
   * step (the ratio is then exactly 1 where the gradient is taken); "server" uses the log-probs
   * the model server returned when it sampled the reply (where it did). See train.oldLogprobs in
   * core/config.ts for the measured mismatch that makes "engine" the default.
   */
  oldLogprobs: "engine" | "server";
}

export interface StepOutcome {
  loss: number;
  lossRl: number;
  lossOpd: number;
  /** k3 KL(π_θ ‖ π_base) per token over the batch before the update; null when the KL penalty is off. */
  klToBase: number | null;
  meanReward: number;
  meanAbsAdvantage: number;
  gradNorm: number;
  /** Prompt + response tokens processed. */
  tokens: number;
  samples: number;
  /** Mean |log π_server − log π_engine| over response tokens that carry server log-probs, or null. */
  behaviourMismatch: number | null;
}

function checkLengths(what: string, got: number[][], items: ScoreItem[]): void {
  if (got.length !== items.length) throw new Error(`engine scored ${got.length} ${what} sequences for ${items.length} items`);
  got.forEach((lp, i) => {
    if (lp.length !== items[i]!.responseIds.length) {
      throw new Error(`engine returned ${lp.length} ${what} log-probs for ${items[i]!.responseIds.length} response tokens`);
    }
  });
}

export async function trainOnBatch(
  engine: TrainEngine,
  optimizer: Optimizer,
  adapter: LoraAdapter,
  samples: Sample[],
  s: StepSettings,
): Promise<StepOutcome> {
  if (samples.length === 0) throw new Error("a train step needs at least one sample");
  const student: ScoreItem[] = samples.map((x) => ({ promptIds: x.promptTokenIds, responseIds: x.responseTokenIds }));
  const teacherAt: number[] = [];
  const teacherItems: ScoreItem[] = [];
  samples.forEach((x, i) => {
    if (x.teacherPromptTokenIds && s.mode !== "rl") {
      teacherAt.push(i);
      teacherItems.push({ promptIds: x.teacherPromptTokenIds, responseIds: x.responseTokenIds });
    }
  });

  // The student's log-probs under the current adapter, by the same engine as the teacher's.
  // With a policy teacher both share one batched call.
  let current: number[][];
  let teacherScores: number[][] = [];
  if (s.teacher === "policy" && teacherItems.length) {
    const all = await engine.score([...student, ...teacherItems], adapter);
    checkLengths("student+teacher", all, [...student, ...teacherItems]);
    current = all.slice(0, student.length);
    teacherScores = all.slice(student.length);
  } else {
    current = await engine.score(student, adapter);
    checkLengths("student", current, student);
    if (teacherItems.length) {
      teacherScores = await engine.score(teacherItems, null);
      checkLengths("teacher", teacherScores, teacherItems);
    }
  }
  const teacher: (number[] | null)[] = samples.map(() => null);
  teacherAt.forEach((i, k) => (teacher[i] = teacherScores[k]!));

  let base: number[][] | null = null;
  if (s.klCoef > 0) {
    base = await engine.score(student, null);
    checkLengths("base", base, student);
  }

  let mismatchSum = 0;
  let mismatchN = 0;
  const old = samples.map((x, i) => {
    const b = x.behaviourLogprobs;
    if (b && b.length === current[i]!.length) {
      for (let t = 0; t < b.length; t++) mismatchSum += Math.abs(b[t]! - current[i]![t]!);
      mismatchN += b.length;
      if (s.oldLogprobs === "server") return b;
    }
    return current[i]!;
  });

  const parts: AdvantageParts[] = samples.map((x, i) =>
    computeAdvantages(s.mode, x.reward, current[i]!, teacher[i]!, { gapClip: s.gapClip, wRl: s.wRl, wOpd: s.wOpd }),
  );

  const items: TrainItem[] = samples.map((_, i) => ({
    ...student[i]!,
    advantages: parts[i]!.total,
    oldLogprobs: old[i]!,
    ...(base ? { refLogprobs: base[i]! } : {}),
  }));
  const result = await engine.trainStep(items, adapter, { epsLow: s.epsLow, epsHigh: s.epsHigh, klCoef: s.klCoef });
  const { gradNorm } = optimizer.step(adapter, result.gradients);

  // Each term's share of the loss: the clipped surrogate with that term's advantages alone, at the
  // parameters the gradient was taken at (ρ = π_θ / π_old, exactly 1 with engine-recomputed π_old).
  // Without clipping they add up to the total minus the KL term.
  const logRatio = samples.map((_, i) => current[i]!.map((lp, t) => lp - old[i]![t]!));
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  let absSum = 0;
  let advN = 0;
  for (const p of parts) {
    for (const a of p.total) absSum += Math.abs(a);
    advN += p.total.length;
  }
  return {
    loss: result.loss,
    lossRl: mean(parts.map((p, i) => ppoSurrogate(logRatio[i]!, p.rl, s.epsLow, s.epsHigh))),
    lossOpd: mean(parts.map((p, i) => ppoSurrogate(logRatio[i]!, p.opd, s.epsLow, s.epsHigh))),
    klToBase: base ? mean(current.map((lp, i) => k3Kl(lp, base![i]!))) : null,
    meanReward: mean(samples.map((x) => x.reward)),
    meanAbsAdvantage: advN ? absSum / advN : 0,
    gradNorm,
    tokens: samples.reduce((n, x) => n + x.promptTokenIds.length + x.responseTokenIds.length, 0),
    samples: samples.length,
    behaviourMismatch: mismatchN ? mismatchSum / mismatchN : null,
  };
}
