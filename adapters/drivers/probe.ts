// The numeric check of a loaded adapter version.
//
// The trainer writes `probe.json` into each version directory: a token sequence (prompt ids and
// response ids of a sample the step trained on, where the adapter moved the model most) and the
// engine's log-probs of the response tokens under the base model and under this version. After
// loading the version, the sidecar asks the server for the same log-probs under the base and
// under the version, and compares the SHIFTS, not the values:
//
//   predicted δ_t = engine(version)_t − engine(base)_t,   measured δ'_t = server(version)_t − server(base)_t
//
// Differences cancel what the two numeric stacks disagree on for the base itself (a Q4 server vs
// the engine's f32 dequantized weights). What remains is the adapter's effect, plus the server's
// rounding noise: llama.cpp on Q4_1 quantizes activations to 8 bits, which moves log-probs for ANY
// non-zero LoRA. Measured on SmolLM2-135M Q4_1 with random rank-8 adapters (q, v, up) on a 20-token
// response: mean |measured − predicted| 0.09 / 0.11 / 0.14 and max 0.42 / 0.60 / 0.59 for predicted
// mean shifts 0.04 / 0.13 / 0.41 (cosine 0.44 / 0.78 / 0.96). So a version passes when
//
//   mean_t |δ'_t − δ_t| ≤ NOISE_MEAN + REL · mean_t |δ_t|    and
//   max_t  |δ'_t − δ_t| ≤ NOISE_MAX  + REL · max_t |δ_t|     and
//   cos(δ', δ) ≥ MIN_COSINE                                   when mean |δ| ≥ STRONG_SHIFT,
//
// and every value is finite. What this catches, and from which size of adapter effect:
// - a corrupted file: caught before loading, by the manifest's sha256 (any size);
// - weights not applied at all (wrong name routed, scale 0): err = −δ, caught once mean |δ| > 0.19;
// - wrong scaling by k (alpha/r mix-up): err ≈ (k−1)·δ while the shift is linear in the weights,
//   caught once mean |δ| > 0.15/(|k−1| − 0.2) (k = 2: 0.19; k = 4: 0.05); a sign flip: once > 0.08.
//   (Where log-probs saturate near 0, doubling moves them less; a ×2 of a trained adapter with
//   mean |δ| 1.1 still measured 0.46 off, against an allowance of 0.37.)
// - wrong q/k permutation or layer mapping: the shift lands on other directions and tokens, so δ'
//   and δ decorrelate: caught by the cosine test once mean |δ| ≥ 0.25, and by the mean test once
//   the misplaced shift exceeds the noise;
// - NaN/inf weights, a wrong base model: non-finite values, or large shifts where none are predicted.
// Below those sizes a broken adapter cannot be told from noise — and cannot move the model more
// than the noise either: the check then guarantees that the served model moved no more than
// predicted plus the noise floor. The report says which regime a check was in (`discriminative`).
import fs from "node:fs";
import path from "node:path";
import { z } from "zod";

export const PROBE_FILE = "probe.json";
export const NOISE_MEAN = 0.15;
export const NOISE_MAX = 0.75;
export const REL = 0.2;
export const STRONG_SHIFT = 0.25;
export const MIN_COSINE = 0.7;
/** Mean predicted shift above which a scale-by-2 or unapplied adapter fails the mean test. */
export const DISCRIMINATIVE_SHIFT = NOISE_MEAN / (1 - REL);

export const probeFileSchema = z.object({
  format: z.literal(1),
  promptIds: z.array(z.number().int().nonnegative()).min(1),
  responseIds: z.array(z.number().int().nonnegative()).min(1),
  /** Engine log-probs of each response token. */
  base: z.array(z.number()),
  version: z.array(z.number()),
  /** Where the sequence came from (a sample id), for people reading the file. */
  source: z.string().nullish(),
});
export type ProbeFile = z.infer<typeof probeFileSchema>;

/** The version's probe, null when it has none; throws with the reason when it is malformed. */
export function readProbeFile(dir: string): ProbeFile | null {
  const file = path.join(dir, PROBE_FILE);
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch {
    return null;
  }
  const parsed = probeFileSchema.safeParse(JSON.parse(text));
  if (!parsed.success) throw new Error(`${file} is malformed: ${parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`);
  const p = parsed.data;
  if (p.base.length !== p.responseIds.length || p.version.length !== p.responseIds.length) {
    throw new Error(`${file} is malformed: ${p.responseIds.length} response tokens but ${p.base.length} base and ${p.version.length} version log-probs`);
  }
  return p;
}

export interface ProbeComparison {
  ok: boolean;
  reason: string | null;
  tokens: number;
  /** mean |δ| predicted by the engine */
  predictedShift: number;
  /** mean |δ'| measured on the server */
  measuredShift: number;
  meanError: number;
  maxError: number;
  cosine: number | null;
  /** True when the predicted shift is large enough for the check to tell a broken adapter from noise. */
  discriminative: boolean;
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);

export function compareProbe(probe: Pick<ProbeFile, "base" | "version">, server: { base: number[]; version: number[] }): ProbeComparison {
  const n = probe.base.length;
  const pred = probe.version.map((v, i) => v - probe.base[i]!);
  const meas = server.version.map((v, i) => v - server.base[i]!);
  const out: ProbeComparison = {
    ok: false,
    reason: null,
    tokens: n,
    predictedShift: mean(pred.map(Math.abs)),
    measuredShift: mean(meas.map(Math.abs)),
    meanError: NaN,
    maxError: NaN,
    cosine: null,
    discriminative: false,
  };
  if (server.base.length !== n || server.version.length !== n) {
    out.reason = `the server scored ${server.version.length} tokens, the probe has ${n}`;
    return out;
  }
  if (![...server.base, ...server.version].every(Number.isFinite)) {
    out.reason = "the server returned non-finite log-probs under this version";
    return out;
  }
  const err = meas.map((m, i) => Math.abs(m - pred[i]!));
  out.meanError = mean(err);
  out.maxError = Math.max(...err);
  out.discriminative = out.predictedShift >= DISCRIMINATIVE_SHIFT;
  const dot = pred.reduce((a, p, i) => a + p * meas[i]!, 0);
  const norm = Math.sqrt(pred.reduce((a, p) => a + p * p, 0) * meas.reduce((a, m) => a + m * m, 0));
  out.cosine = norm > 0 ? dot / norm : null;
  const maxPred = Math.max(...pred.map(Math.abs));
  const fmt = (x: number) => x.toFixed(3);
  if (out.meanError > NOISE_MEAN + REL * out.predictedShift) {
    out.reason = `mean |measured − predicted| log-prob shift ${fmt(out.meanError)} exceeds ${fmt(NOISE_MEAN + REL * out.predictedShift)} (predicted mean shift ${fmt(out.predictedShift)}, measured ${fmt(out.measuredShift)})`;
  } else if (out.maxError > NOISE_MAX + REL * maxPred) {
    out.reason = `largest |measured − predicted| shift ${fmt(out.maxError)} exceeds ${fmt(NOISE_MAX + REL * maxPred)}`;
  } else if (out.predictedShift >= STRONG_SHIFT && (out.cosine ?? 0) < MIN_COSINE) {
    out.reason = `measured shifts point elsewhere than predicted (cosine ${out.cosine === null ? "n/a" : fmt(out.cosine)} < ${MIN_COSINE})`;
  } else {
    out.ok = true;
  }
  return out;
}
