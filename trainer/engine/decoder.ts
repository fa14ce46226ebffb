// The Llama-family decoder as graph-building functions: one layer (attention + SwiGLU MLP, each
// projection optionally carrying LoRA) and the head (final norm, LM head, log-probs of chosen
// tokens). Weights arrive as graph values in PyTorch layout; who feeds them (one layer's session
// or the whole model's) is the caller's business.
import type { Graph, Value } from "./graph/index.js";
import type { ModelConfig } from "./model/types.js";
import type { LoraTarget } from "../../adapters/lora.js";

/** Hugging Face name of a layer weight, relative to `model.layers.{i}.`. */
export type LayerWeightKey =
  | "input_layernorm.weight"
  | "post_attention_layernorm.weight"
  | "self_attn.q_proj.weight"
  | "self_attn.k_proj.weight"
  | "self_attn.v_proj.weight"
  | "self_attn.o_proj.weight"
  | "self_attn.q_proj.bias"
  | "self_attn.k_proj.bias"
  | "self_attn.v_proj.bias"
  | "self_attn.q_norm.weight"
  | "self_attn.k_norm.weight"
  | "mlp.gate_proj.weight"
  | "mlp.up_proj.weight"
  | "mlp.down_proj.weight";

/** The weights one layer of this architecture has, with their shapes. */
export function layerWeightShapes(c: ModelConfig): Map<LayerWeightKey, number[]> {
  const D = c.hiddenSize;
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  const m = new Map<LayerWeightKey, number[]>([
    ["input_layernorm.weight", [D]],
    ["self_attn.q_proj.weight", [q, D]],
    ["self_attn.k_proj.weight", [kv, D]],
    ["self_attn.v_proj.weight", [kv, D]],
    ["self_attn.o_proj.weight", [D, q]],
    ["post_attention_layernorm.weight", [D]],
    ["mlp.gate_proj.weight", [c.intermediateSize, D]],
    ["mlp.up_proj.weight", [c.intermediateSize, D]],
    ["mlp.down_proj.weight", [D, c.intermediateSize]],
  ]);
  if (c.attentionBias) {
    m.set("self_attn.q_proj.bias", [q]);
    m.set("self_attn.k_proj.bias", [kv]);
    m.set("self_attn.v_proj.bias", [kv]);
  }
  if (c.qkNorm) {
    m.set("self_attn.q_norm.weight", [c.headDim]);
    m.set("self_attn.k_norm.weight", [c.headDim]);
  }
  return m;
}

/** Every weight of a model with this config, by Hugging Face name, with its shape. */
export function modelWeightShapes(c: ModelConfig): Map<string, number[]> {
  const m = new Map<string, number[]>();
  m.set("model.embed_tokens.weight", [c.vocabSize, c.hiddenSize]);
  for (let i = 0; i < c.numLayers; i++) {
    for (const [key, shape] of layerWeightShapes(c)) m.set(`model.layers.${i}.${key}`, shape);
  }
  m.set("model.norm.weight", [c.hiddenSize]);
  if (!c.tieWordEmbeddings) m.set("lm_head.weight", [c.vocabSize, c.hiddenSize]);
  return m;
}

/** Input and output size of each LoRA target for this architecture. */
export function loraDims(c: ModelConfig): Record<LoraTarget, { in: number; out: number }> {
  const D = c.hiddenSize;
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  const F = c.intermediateSize;
  return {
    q: { in: D, out: q },
    k: { in: D, out: kv },
    v: { in: D, out: kv },
    o: { in: q, out: D },
    gate: { in: D, out: F },
    up: { in: D, out: F },
    down: { in: F, out: D },
  };
}

export function validateConfig(c: ModelConfig): void {
  const bad = (msg: string) => {
    throw new Error(`unsupported model config: ${msg}`);
  };
  if (c.numHeads % c.numKvHeads !== 0) bad(`numHeads ${c.numHeads} is not a multiple of numKvHeads ${c.numKvHeads}`);
  if (c.headDim % 2 !== 0) bad(`headDim ${c.headDim} is odd`);
  for (const k of ["hiddenSize", "intermediateSize", "numLayers", "numHeads", "numKvHeads", "headDim", "vocabSize"] as const) {
    if (!Number.isInteger(c[k]) || c[k] <= 0) bad(`${k} = ${c[k]}`);
  }
}

export type LayerWeights = Partial<Record<LayerWeightKey, Value>>;
export type LayerLora = Partial<Record<LoraTarget, { a: Value; b: Value }>>;

/** Per-sequence inputs shared by every layer. */
export interface AttentionInputs {
  /** [T, headDim] each. */
  cos: Value;
  sin: Value;
  /** Additive causal mask [T, T]. */
  mask: Value;
}

function need(w: LayerWeights, key: LayerWeightKey): Value {
  const v = w[key];
  if (!v) throw new Error(`layer weight ${key} is missing`);
  return v;
}

/** A LoRA pair on the way through a projection: z = A x (already computed) and B. */
interface LoraPath {
  z: Value;
  b: Value;
}

/**
 * z = A x for every LoRA target that reads the same x, as one product with the A matrices stacked
 * ([Σr, in], a copy of a few KiB): one skinny GEMM over x instead of one per target, in the forward
 * and both backward products (dA and the LoRA part of dx, which then needs no adds).
 */
function loraDown(g: Graph, x: Value, pairs: ({ a: Value; b: Value } | undefined)[]): (LoraPath | undefined)[] {
  const present = pairs.filter((p): p is { a: Value; b: Value } => !!p);
  if (present.length === 0) return pairs.map(() => undefined);
  if (present.length === 1) return pairs.map((p) => p && { z: g.linear(x, p.a), b: p.b });
  const z = g.linear(x, g.concat(present.map((p) => p.a), 0));
  let at = 0;
  return pairs.map((p) => {
    if (!p) return undefined;
    const r = p.a.shape[0] as number;
    at += r;
    return { z: g.slice(z, -1, at - r, at), b: p.b };
  });
}

/**
 * y = W x (+ bias) + s · B (A x): the frozen projection plus its LoRA update, with the scaling s
 * folded into B ([out, r]) rather than applied to z ([tokens, r]) forward and backward.
 */
function project(g: Graph, x: Value, w: Value, bias: Value | undefined, lora: LoraPath | undefined, scaling: Value): Value {
  let y = g.linear(x, w);
  if (bias) y = g.add(y, bias);
  if (lora) y = g.add(y, g.linear(lora.z, g.mul(lora.b, scaling)));
  return y;
}

/**
 * rotate_half(x) = [−x₂, x₁] over the last axis, as a product with a constant ±1 permutation
 * matrix: one pass forward and one backward, where slicing and concatenating take four each.
 */
function rotateHalf(g: Graph, x: Value, hd: number): Value {
  let R = rotations.get(g);
  if (!R) {
    const half = hd / 2;
    const m = new Array<number>(hd * hd).fill(0);
    for (let i = 0; i < half; i++) {
      m[(i + half) * hd + i] = -1; // out[i] = −x[i + half]
      m[i * hd + i + half] = 1; // out[i + half] = x[i]
    }
    R = g.constant(m, [hd, hd]);
    rotations.set(g, R);
  }
  return g.matmul(x, R);
}

/** One rotation matrix per graph (every layer shares it). */
const rotations = new WeakMap<Graph, Value>();

/** x·cos + rotate_half(x)·sin, with the tables times `scale` (folding a constant in costs nothing). */
function rope(g: Graph, x: Value, at: AttentionInputs, hd: number, scale = 1): Value {
  const cos = scale === 1 ? at.cos : g.mul(at.cos, g.scalar(scale));
  const sin = scale === 1 ? at.sin : g.mul(at.sin, g.scalar(scale));
  return g.add(g.mul(x, cos), g.mul(rotateHalf(g, x, hd), sin));
}

/** One decoder layer on h [B, T, D]; returns the new residual stream. */
export function decoderLayer(g: Graph, c: ModelConfig, h: Value, at: AttentionInputs, w: LayerWeights, lora: LayerLora, scaling: Value): Value {
  const hd = c.headDim;
  const KV = c.numKvHeads;
  const G = c.numHeads / KV;
  const eps = c.rmsNormEps;

  const x = g.rmsNorm(h, need(w, "input_layernorm.weight"), eps);
  const [lq, lk, lv] = loraDown(g, x, [lora.q, lora.k, lora.v]);
  let q = project(g, x, need(w, "self_attn.q_proj.weight"), w["self_attn.q_proj.bias"], lq, scaling);
  let k = project(g, x, need(w, "self_attn.k_proj.weight"), w["self_attn.k_proj.bias"], lk, scaling);
  let v = project(g, x, need(w, "self_attn.v_proj.weight"), w["self_attn.v_proj.bias"], lv, scaling);

  // Heads: q [B, T, KV, G, hd] (G query heads per key/value head), k and v [B, T, KV, 1, hd].
  q = g.reshape(q, ["B", "T", KV, G, hd]);
  k = g.reshape(k, ["B", "T", KV, 1, hd]);
  v = g.reshape(v, ["B", "T", KV, 1, hd]);
  if (c.qkNorm) {
    q = g.rmsNorm(q, need(w, "self_attn.q_norm.weight"), eps);
    k = g.rmsNorm(k, need(w, "self_attn.k_norm.weight"), eps);
  }
  const toHeads = [0, 2, 3, 1, 4];
  // The attention scale 1/√hd rides on q's RoPE tables ([T, hd]) instead of a pass over q.
  q = rope(g, g.transpose(q, toHeads), at, hd, 1 / Math.sqrt(hd));
  k = rope(g, g.transpose(k, toHeads), at, hd);
  v = g.transpose(v, toHeads);

  // The query heads of a group become rows: [B, KV, G·T, hd] against [B, KV, T, hd]. The products
  // are then plain batched GEMMs (no broadcasting), and dK's sum over the group happens inside one.
  const q2 = g.reshape(q, ["B", KV, "GT", hd]);
  const k2 = g.reshape(k, ["B", KV, "T", hd]);
  const v2 = g.reshape(v, ["B", KV, "T", hd]);
  const ctx = g.reshape(g.attention(q2, k2, v2, at.mask, G), ["B", KV, G, "T", hd]);
  const merged = g.reshape(g.transpose(ctx, [0, 3, 1, 2, 4]), ["B", "T", c.numHeads * hd]);
  const [lo] = loraDown(g, merged, [lora.o]);
  h = g.add(h, project(g, merged, need(w, "self_attn.o_proj.weight"), undefined, lo, scaling));

  const x2 = g.rmsNorm(h, need(w, "post_attention_layernorm.weight"), eps);
  const [lgate, lup] = loraDown(g, x2, [lora.gate, lora.up]);
  const gate = project(g, x2, need(w, "mlp.gate_proj.weight"), undefined, lgate, scaling);
  const up = project(g, x2, need(w, "mlp.up_proj.weight"), undefined, lup, scaling);
  const act = g.swiglu(gate, up);
  const [ldown] = loraDown(g, act, [lora.down]);
  const down = project(g, act, need(w, "mlp.down_proj.weight"), undefined, ldown, scaling);
  return g.add(h, down);
}

/**
 * log π(target | context) for N chosen positions: x [N, D] is the last layer's output at the
 * positions that predict each target. Only these N rows meet the LM head, and the target's logit
 * is a row dot product, so the [N, vocab] logits are needed only for the log-sum-exp.
 */
export function headLogprobs(g: Graph, c: ModelConfig, x: Value, normW: Value, lmW: Value, targets: Value): Value {
  const xn = g.rmsNorm(x, normW, c.rmsNormEps);
  const lse = g.reduceLogSumExp(g.linear(xn, lmW), [-1], false);
  const chosen = g.reduceSum(g.mul(xn, g.gather(lmW, targets)), [-1], false);
  return g.sub(chosen, lse);
}

/** Per-token inputs of the policy loss, all [N]. */
export interface LossInputs {
  advantages: Value;
  oldLogprobs: Value;
  /** Each token's weight in the loss: 1 / (its sample's token count × samples in the step). */
  weights: Value;
  epsLow: Value;
  epsHigh: Value;
  /** Reference log-probs and the per-token KL weight (klCoef × weight, 0 where no reference). */
  kl?: { refLogprobs: Value; weights: Value };
}

/**
 * The clipped policy-gradient loss of DESIGN.md, summed with per-token weights:
 * L_t = max(−ρ_t A_t, −clip(ρ_t, 1−ε_low, 1+ε_high) A_t), ρ_t = exp(log π − log π_old),
 * plus klCoef · k3(π ‖ π_ref), k3 = exp(r) − r − 1 with r = log π_ref − log π.
 */
export function policyLoss(g: Graph, logprobs: Value, l: LossInputs): Value {
  const ratio = g.exp(g.sub(logprobs, l.oldLogprobs));
  const one = g.scalar(1);
  const clipped = g.min(g.max(ratio, g.sub(one, l.epsLow)), g.add(one, l.epsHigh));
  const surrogate = g.max(g.neg(g.mul(ratio, l.advantages)), g.neg(g.mul(clipped, l.advantages)));
  let loss = g.reduceSum(g.mul(surrogate, l.weights), [0], false);
  if (l.kl) {
    const r = g.sub(l.kl.refLogprobs, logprobs);
    const k3 = g.sub(g.sub(g.exp(r), r), one);
    loss = g.add(loss, g.reduceSum(g.mul(k3, l.kl.weights), [0], false));
  }
  return loss;
}
