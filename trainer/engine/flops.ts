// Floating-point operations of a forward pass and of a LoRA training step, counted as 2 per
// multiply-add of every matrix product (elementwise work is left out: it is memory-bound and
// small beside the products). Attention is counted over the full T × T score matrix, as the
// engine computes it.
import type { ModelConfig } from "./model/types.js";

export interface FlopShape {
  /** Sequences in the run and their (padded) length. */
  batch: number;
  tokens: number;
  /** Response tokens that reach the LM head. */
  headRows: number;
  /** LoRA rank and the number of adapted projections per layer (0 for none). */
  rank: number;
  loraTargets: number;
}

function perLayerLinear(c: ModelConfig): number {
  const D = c.hiddenSize;
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  return D * q + 2 * D * kv + q * D + 3 * D * c.intermediateSize;
}

/** Average in + out size of the adapted projections (all seven, an upper estimate for fewer). */
function loraWidth(c: ModelConfig): number {
  const D = c.hiddenSize;
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  const F = c.intermediateSize;
  return (D + q + (D + kv) * 2 + q + D + (D + F) * 3) / 7;
}

export function forwardFlops(c: ModelConfig, s: FlopShape): number {
  const tokens = s.batch * s.tokens;
  const linear = 2 * tokens * perLayerLinear(c);
  const attention = 2 * 2 * s.batch * s.tokens * s.tokens * c.numHeads * c.headDim;
  const lora = 2 * tokens * s.rank * loraWidth(c) * s.loraTargets;
  const head = 2 * s.headRows * c.hiddenSize * c.vocabSize;
  return c.numLayers * (linear + attention + lora) + head;
}

/**
 * A LoRA step's useful work: the forward pass, then the backward pass for activations (one
 * product per forward product; no weight gradients for frozen weights), twice the attention
 * products, and the LoRA gradients (less the first layer's q/k/v input gradient, which nothing
 * needs). Per-layer recomputation adds a forward pass of the layers
 * on top; that is overhead, not counted here.
 */
export function trainFlops(c: ModelConfig, s: FlopShape): number {
  const tokens = s.batch * s.tokens;
  const linear = 2 * tokens * perLayerLinear(c);
  const attention = 2 * 2 * s.batch * s.tokens * s.tokens * c.numHeads * c.headDim;
  const lora = 2 * tokens * s.rank * loraWidth(c) * s.loraTargets;
  const head = 2 * s.headRows * c.hiddenSize * c.vocabSize;
  const forward = c.numLayers * (linear + attention + lora) + head;
  // The first layer's q/k/v products need no input gradient (the embeddings are frozen), so the
  // backward skips them (their LoRA part, 2·tokens·rank·D each, is left in: under 0.01 %).
  const firstLayerInput = 2 * tokens * c.hiddenSize * (c.numHeads + 2 * c.numKvHeads) * c.headDim;
  const backward = c.numLayers * (linear + 2 * attention + 2 * lora) - firstLayerInput + head;
  return forward + backward;
}
