// Rough memory estimates that decide between the whole-model and the per-layer program. They
// count the activations a backward pass keeps per token and layer, times a slack factor for ONNX
// Runtime's temporaries and arena; bench/train.ts prints measured peak RSS beside them.
import type { ModelConfig } from "./model/types.js";
import { modelWeightShapes } from "./decoder.js";

export const GiB = 1024 ** 3;
const SLACK = 1.6;

export function weightBytes(c: ModelConfig, bytesPerFloat: number): number {
  let n = 0;
  for (const shape of modelWeightShapes(c).values()) n += shape.reduce((a, b) => a * b, 1);
  return n * bytesPerFloat;
}

/** Floats one layer keeps for its backward pass, for a run of B sequences of T tokens. */
function layerActivationFloats(c: ModelConfig, B: number, T: number): number {
  const D = c.hiddenSize;
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  const perToken = 4 * D + 5 * q + 4 * kv + 5 * c.intermediateSize;
  return B * T * perToken + B * c.numHeads * T * T;
}

/** The LM head for N rows: logits, their softmax and its product with the upstream gradient. */
export function headBytes(c: ModelConfig, rows: number, bytesPerFloat: number): number {
  return 3 * rows * c.vocabSize * bytesPerFloat;
}

/** Peak bytes of a whole-model training run, weights excluded. */
export function wholeTrainBytes(c: ModelConfig, B: number, T: number, bytesPerFloat: number): number {
  return SLACK * (c.numLayers * layerActivationFloats(c, B, T) * bytesPerFloat + headBytes(c, B * T, bytesPerFloat));
}

/** Peak bytes of a per-layer training run (one layer at a time, plus the layer inputs kept). */
export function layeredTrainBytes(c: ModelConfig, B: number, T: number, headRows: number, bytesPerFloat: number): number {
  const checkpoints = (c.numLayers + 1) * B * T * c.hiddenSize * bytesPerFloat;
  return SLACK * Math.max(layerActivationFloats(c, B, T) * 2 * bytesPerFloat, headBytes(c, headRows, bytesPerFloat)) + checkpoints;
}
