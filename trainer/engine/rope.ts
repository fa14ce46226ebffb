// Rotary position tables, computed in float64 in TypeScript and fed to the graph as inputs, so
// RoPE variants (theta, linear and Llama-3 scaling) are plain arithmetic here rather than graph
// plumbing. Layout follows Hugging Face's rotate_half convention: cos/sin are [T, headDim] with
// the frequency vector repeated twice.
import type { ModelConfig } from "./model/types.js";

/** Inverse frequencies (headDim / 2 of them), with the config's scaling applied. */
export function inverseFrequencies(config: Pick<ModelConfig, "headDim" | "ropeTheta" | "ropeScaling">): Float64Array {
  const half = config.headDim / 2;
  const inv = new Float64Array(half);
  for (let i = 0; i < half; i++) inv[i] = 1 / Math.pow(config.ropeTheta, (2 * i) / config.headDim);
  const s = config.ropeScaling;
  if (!s) return inv;
  if (s.type === "linear") return inv.map((f) => f / s.factor);
  // Llama 3 (transformers' _compute_llama3_parameters): long wavelengths are slowed by `factor`,
  // short ones kept, the band in between interpolated.
  const lowWavelen = s.originalMaxPositionEmbeddings / s.lowFreqFactor;
  const highWavelen = s.originalMaxPositionEmbeddings / s.highFreqFactor;
  return inv.map((f) => {
    const wavelen = (2 * Math.PI) / f;
    if (wavelen < highWavelen) return f;
    if (wavelen > lowWavelen) return f / s.factor;
    const smooth = (s.originalMaxPositionEmbeddings / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
    return (1 - smooth) * (f / s.factor) + smooth * f;
  });
}

export interface RopeTables {
  cos: Float64Array;
  sin: Float64Array;
}

/** cos/sin for positions 0…T−1, each [T, headDim]. */
export function ropeTables(config: Pick<ModelConfig, "headDim" | "ropeTheta" | "ropeScaling">, T: number): RopeTables {
  const inv = inverseFrequencies(config);
  const hd = config.headDim;
  const half = hd / 2;
  const cos = new Float64Array(T * hd);
  const sin = new Float64Array(T * hd);
  for (let t = 0; t < T; t++) {
    for (let i = 0; i < half; i++) {
      const angle = t * inv[i]!;
      const c = Math.cos(angle);
      const s = Math.sin(angle);
      cos[t * hd + i] = c;
      cos[t * hd + half + i] = c;
      sin[t * hd + i] = s;
      sin[t * hd + half + i] = s;
    }
  }
  return { cos, sin };
}

/** Additive causal mask [T, T]: 0 where key ≤ query, a large negative number elsewhere. */
export function causalMask(T: number): Float64Array {
  const m = new Float64Array(T * T);
  for (let q = 0; q < T; q++) for (let k = q + 1; k < T; k++) m[q * T + k] = MASKED;
  return m;
}

/** Finite rather than −∞, so masked scores stay finite in every float type and in gradients. */
export const MASKED = -1e9;
