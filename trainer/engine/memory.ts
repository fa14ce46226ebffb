// Memory estimates that decide between the whole-model and the per-layer program. They count
// activations per token and layer plus the T × T attention tensors, and are calibrated against peak
// RSS measured with bench-style runs (a train step and a score pass in one process, fp32):
//   SmolLM2-135M  whole 512: 3.06 GiB · whole 2,048: 16.8 GiB · layered 512: 1.05 GiB · layered 2,048: 3.22 GiB
//   Qwen2.5-0.5B-shaped  layered 2,048: 6.85 GiB (before scoring shared the per-layer program)
// Each ONNX Runtime session keeps its own memory arena at its peak, so the per-layer estimate sums
// the sessions' peaks rather than taking the largest.
import { modelWeightShapes } from "./decoder.js";
import type { ModelConfig } from "./model/types.js";

export const GiB = 1024 ** 3;
/** Node, ONNX Runtime and the graphs themselves. */
const BASE_BYTES = 0.3 * GiB;
/** Temporaries ONNX Runtime holds beside what the backward pass keeps (measured 1.7–1.8). */
const WHOLE_SLACK = 1.9;

export function weightBytes(c: ModelConfig, bytesPerFloat: number): number {
  let n = 0;
  for (const shape of modelWeightShapes(c).values()) n += shape.reduce((a, b) => a * b, 1);
  return n * bytesPerFloat;
}

/** Floats per token one layer keeps for its backward pass (inputs of its products and norms). */
function perTokenFloats(c: ModelConfig): number {
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  return 4 * c.hiddenSize + 5 * q + 4 * kv + 5 * c.intermediateSize;
}

/** Floats of one [B, heads, T, T] attention tensor. */
function attentionFloats(c: ModelConfig, B: number, T: number): number {
  return B * c.numHeads * T * T;
}

/** Logits, softmax and their product with the upstream gradient for `rows` head rows. */
export function headBytes(c: ModelConfig, rows: number, bytesPerFloat: number): number {
  return 3 * rows * c.vocabSize * bytesPerFloat;
}

/** Peak bytes of a whole-model training run, weights excluded. */
export function wholeTrainBytes(c: ModelConfig, B: number, T: number, bytesPerFloat: number): number {
  const perLayer = B * T * perTokenFloats(c) + attentionFloats(c, B, T);
  return BASE_BYTES + WHOLE_SLACK * (c.numLayers * perLayer * bytesPerFloat + headBytes(c, B * T, bytesPerFloat));
}

/**
 * Peak bytes of per-layer training, weights excluded: the layer-forward session's arena (about
 * three attention tensors live at once), the layer fwd+bwd session's (seven, plus twice the
 * per-token activations), the two head sessions' (one row chunk each) and the layer inputs kept.
 */
export function layeredTrainBytes(c: ModelConfig, B: number, T: number, headRows: number, bytesPerFloat: number): number {
  const forward = 3 * attentionFloats(c, B, T) + B * T * perTokenFloats(c);
  const train = 7 * attentionFloats(c, B, T) + 2 * B * T * perTokenFloats(c);
  const checkpoints = (c.numLayers + 1) * B * T * c.hiddenSize;
  return BASE_BYTES + (forward + train + checkpoints) * bytesPerFloat + 2 * headBytes(c, headRows, bytesPerFloat);
}
