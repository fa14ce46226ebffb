// Per-token advantages of DESIGN.md's learning signal, and the PPO surrogate used to report the
// loss of each term. The engine receives only the finished per-token advantages.
import type { Reward, TrainMode } from "../core/index.js";

export interface AdvantageWeights {
  /** Clip c of the distillation gap. */
  gapClip: number;
  wRl: number;
  wOpd: number;
}

/** Which signals a judged sample carries in a mode; none of them means the sample is skipped. */
export function signalsFor(mode: TrainMode, reward: Reward, hasHint: boolean): { rl: boolean; opd: boolean } {
  const rl = (mode === "rl" || mode === "combined") && reward !== 0;
  const opd = (mode === "opd" || mode === "combined") && hasHint;
  return { rl, opd };
}

export interface AdvantageParts {
  /** The binary-RL term per token (already weighted in combined mode). */
  rl: number[];
  /** The distillation term per token (already weighted in combined mode). */
  opd: number[];
  /** rl + opd: what the engine trains on. */
  total: number[];
}

/**
 * binary RL: A_t = r; distillation: A_t = clip(log π_teacher(a_t) − log π_old(a_t), −c, c);
 * combined: A_t = w_rl·r + w_opd·gap_t. `teacher` is null when the sample carries no usable hint,
 * and `student` must come from the same engine as `teacher`, so quantization differences between
 * the serving stack and the engine never show up as a gap.
 */
export function computeAdvantages(
  mode: TrainMode,
  reward: Reward,
  student: number[],
  teacher: number[] | null,
  w: AdvantageWeights,
): AdvantageParts {
  const n = student.length;
  if (teacher && teacher.length !== n) {
    throw new Error(`teacher scored ${teacher.length} response tokens, the student ${n}`);
  }
  const { rl: useRl, opd: useOpd } = signalsFor(mode, reward, teacher !== null);
  const rlWeight = mode === "combined" ? w.wRl : 1;
  const opdWeight = mode === "combined" ? w.wOpd : 1;
  const rl = new Array<number>(n).fill(useRl ? rlWeight * reward : 0);
  const opd = new Array<number>(n).fill(0);
  if (useOpd && teacher) {
    for (let t = 0; t < n; t++) opd[t] = opdWeight * clip(teacher[t]! - student[t]!, -w.gapClip, w.gapClip);
  }
  return { rl, opd, total: rl.map((v, t) => v + opd[t]!) };
}

export function clip(x: number, lo: number, hi: number): number {
  return x < lo ? lo : x > hi ? hi : x;
}

/**
 * PPO's clipped surrogate for one sample, averaged over its tokens:
 * mean_t max(−ρ_t A_t, −clip(ρ_t, 1−ε_low, 1+ε_high) A_t), ρ_t = exp(log π_θ − log π_old).
 */
export function ppoSurrogate(logRatio: number[], adv: number[], epsLow: number, epsHigh: number): number {
  if (adv.length === 0) return 0;
  let sum = 0;
  for (let t = 0; t < adv.length; t++) {
    const rho = Math.exp(logRatio[t]!);
    const a = adv[t]!;
    sum += Math.max(-rho * a, -clip(rho, 1 - epsLow, 1 + epsHigh) * a);
  }
  return sum / adv.length;
}

/** The low-variance (k3) estimate of KL(π_θ ‖ π_base) per token, averaged: exp(d) − d − 1, d = log π_base − log π_θ. */
export function k3Kl(policy: number[], base: number[]): number {
  if (policy.length === 0) return 0;
  let sum = 0;
  for (let t = 0; t < policy.length; t++) {
    const d = base[t]! - policy[t]!;
    sum += Math.exp(d) - d - 1;
  }
  return sum / policy.length;
}
