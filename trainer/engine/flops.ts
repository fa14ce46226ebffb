// Floating-point operations of a forward pass and of a LoRA training step, counted as 2 per
// multiply-add of every matrix product (elementwise work is left out: it is memory-bound and
// small beside the products). Attention is counted over the full T × T score matrix, as the
// engine computes it. RoPE's rotate_half, which the engine runs as a product with a constant ±1
// matrix, is a permutation and not counted. flops.test.ts checks both counts against the
// products in the engine's graphs: they agree exactly.
import type { LoraTarget } from "../../adapters/index.js";
import { loraDims } from "./decoder.js";
import type { ModelConfig } from "./model/types.js";

export interface FlopShape {
  /** Sequences in the run and their (padded) length. */
  batch: number;
  tokens: number;
  /** Response tokens that reach the LM head. */
  headRows: number;
  /** LoRA rank. */
  rank: number;
  /** The adapted projections of every layer, or their count when that says which: 0 (none) or 7 (all). */
  loraTargets: readonly LoraTarget[] | number;
}

function targetsOf(c: ModelConfig, s: FlopShape): Set<LoraTarget> {
  const all = Object.keys(loraDims(c)) as LoraTarget[];
  if (typeof s.loraTargets !== "number") {
    for (const t of s.loraTargets) if (!all.includes(t)) throw new Error(`unknown LoRA target "${String(t)}"`);
    return new Set(s.loraTargets);
  }
  if (s.loraTargets === 0) return new Set();
  if (s.loraTargets === all.length) return new Set(all);
  // Projections differ in size (and in how far the first layer's backward reaches), so a count
  // between 0 and 7 leaves the work unknown.
  throw new Error(`FlopShape.loraTargets: a count must be 0 or ${all.length}; pass the list of targets instead of ${s.loraTargets}`);
}

/** Multiply-adds of one layer's frozen projections, per token. */
function perLayerLinear(c: ModelConfig): number {
  return Object.values(loraDims(c)).reduce((n, d) => n + d.in * d.out, 0);
}

/** Σ (in + out) over the adapted projections: a LoRA pair costs rank · (in + out) multiply-adds per token. */
function loraWidth(c: ModelConfig, targets: Set<LoraTarget>): number {
  const dims = loraDims(c);
  let w = 0;
  for (const t of targets) w += dims[t].in + dims[t].out;
  return w;
}

/** Multiply-adds of one of attention's four kinds of T × T product (QKᵀ, PV, and their gradients), one layer. */
function attentionProduct(c: ModelConfig, s: FlopShape): number {
  return s.batch * s.tokens * s.tokens * c.numHeads * c.headDim;
}

export function forwardFlops(c: ModelConfig, s: FlopShape): number {
  const tokens = s.batch * s.tokens;
  const layer = tokens * perLayerLinear(c) + 2 * attentionProduct(c, s) + tokens * s.rank * loraWidth(c, targetsOf(c, s));
  const head = s.headRows * c.hiddenSize * c.vocabSize;
  return 2 * (c.numLayers * layer + head);
}

/**
 * Multiply-adds the first layer's backward leaves out: the embeddings are frozen, so no gradient
 * is needed upstream of the first adapted projection. Always the q/k/v input gradient (frozen and
 * LoRA parts); of attention's four backward products those that no adapted q, k or v needs; and,
 * when the first target sits later in the layer, the o, gate/up or down input gradients before it.
 */
function firstLayerSkipped(c: ModelConfig, s: FlopShape, t: Set<LoraTarget>): number {
  const dims = loraDims(c);
  const tokens = s.batch * s.tokens;
  const count = (...xs: LoraTarget[]) => xs.filter((x) => t.has(x)).length;
  // The input gradient of projections: the frozen product, and of an adapted one the LoRA A part (rank · in).
  const inputGradient = (...ps: LoraTarget[]) => tokens * ps.reduce((n, p) => n + dims[p].in * dims[p].out + (t.has(p) ? s.rank * dims[p].in : 0), 0);
  const qkv = count("q", "k", "v");
  let skipped = inputGradient("q", "k", "v");
  // Backward products of attention: dP = dO·Vᵀ (for dQ and dK), dQ, dK, dV.
  const needed = (t.has("q") || t.has("k") ? 1 : 0) + qkv;
  skipped += (4 - needed) * attentionProduct(c, s);
  if (qkv === 0) skipped += inputGradient("o");
  if (qkv + count("o") === 0) skipped += inputGradient("gate", "up");
  if (qkv + count("o", "gate", "up") === 0) skipped += inputGradient("down");
  return skipped;
}

/**
 * A LoRA step's useful work: the forward pass, then the backward pass for activations (one
 * product per forward product; no weight gradients for frozen weights), twice the attention
 * products, and the LoRA gradients (two per LoRA product: its input's and its matrix's), less what
 * the first layer's backward skips (firstLayerSkipped). Per-layer recomputation (layered mode)
 * adds a forward pass of the layers and computes the first layer's input gradient; that is
 * overhead, not counted here.
 */
export function trainFlops(c: ModelConfig, s: FlopShape): number {
  const targets = targetsOf(c, s);
  if (targets.size === 0) throw new Error("trainFlops: a training step needs LoRA targets");
  const tokens = s.batch * s.tokens;
  const layer = tokens * perLayerLinear(c) + 4 * attentionProduct(c, s) + 2 * tokens * s.rank * loraWidth(c, targets);
  const head = s.headRows * c.hiddenSize * c.vocabSize;
  const backward = c.numLayers * layer - firstLayerSkipped(c, s, targets) + head;
  return forwardFlops(c, s) + 2 * backward;
}
