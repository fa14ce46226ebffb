// ModelConfig from a Hugging Face config.json or from GGUF metadata, for the architectures the
// engine supports: Llama, Mistral, Qwen2 (q/k/v biases), Qwen3 (q/k RMSNorm, explicit head_dim).
import type { GgufFile } from "../../../adapters/index.js";
import { ggufNumber, ggufString, readGgufTensorFloat32 } from "../../../adapters/index.js";
import type { Architecture, ModelConfig, RopeScaling } from "./types.js";

const HF_TYPES: Record<string, Architecture> = { llama: "llama", mistral: "mistral", qwen2: "qwen2", qwen3: "qwen3" };

type Json = Record<string, unknown>;

function num(cfg: Json, key: string, fallback?: number): number {
  const v = cfg[key];
  if (typeof v === "number" && Number.isFinite(v)) return v;
  if (v === undefined || v === null) {
    if (fallback !== undefined) return fallback;
    throw new Error(`config.json: missing "${key}"`);
  }
  throw new Error(`config.json: "${key}" is not a number`);
}

function parseRopeScaling(raw: unknown, where: string): RopeScaling {
  if (raw === null || raw === undefined) return null;
  const r = raw as Json;
  const type = (r.rope_type ?? r.type) as string | undefined;
  if (type === undefined || type === "default") return null;
  const factor = num(r, "factor");
  if (type === "linear") return { type: "linear", factor };
  if (type === "llama3")
    return {
      type: "llama3",
      factor,
      lowFreqFactor: num(r, "low_freq_factor"),
      highFreqFactor: num(r, "high_freq_factor"),
      originalMaxPositionEmbeddings: num(r, "original_max_position_embeddings"),
    };
  throw new Error(`${where}: RoPE scaling type "${type}" is not supported (supported: linear, llama3)`);
}

/**
 * Parses a Hugging Face `config.json`. `hasLmHead` says whether the checkpoint stores
 * `lm_head.weight`, which decides tying when the config does not say.
 */
export function parseHfConfig(cfg: Json, hasLmHead?: boolean): ModelConfig {
  const modelType = String(cfg.model_type ?? "");
  const architecture = HF_TYPES[modelType];
  if (!architecture)
    throw new Error(`config.json: model_type "${modelType}" is not supported (supported: ${Object.keys(HF_TYPES).join(", ")})`);
  const hiddenSize = num(cfg, "hidden_size");
  const numHeads = num(cfg, "num_attention_heads");
  // transformers ≥ 5 moves RoPE settings into `rope_parameters`.
  const ropeParams = (cfg.rope_parameters ?? null) as Json | null;
  const ropeTheta = num(cfg, "rope_theta", ropeParams ? num(ropeParams, "rope_theta", 10000) : 10000);
  const tie = cfg.tie_word_embeddings;
  return {
    architecture,
    hiddenSize,
    intermediateSize: num(cfg, "intermediate_size"),
    numLayers: num(cfg, "num_hidden_layers"),
    numHeads,
    numKvHeads: num(cfg, "num_key_value_heads", numHeads),
    headDim: typeof cfg.head_dim === "number" ? cfg.head_dim : hiddenSize / numHeads,
    vocabSize: num(cfg, "vocab_size"),
    rmsNormEps: num(cfg, "rms_norm_eps", 1e-6),
    ropeTheta,
    ropeScaling: parseRopeScaling(cfg.rope_scaling ?? ropeParams, "config.json"),
    maxPositionEmbeddings: num(cfg, "max_position_embeddings", 2048),
    tieWordEmbeddings: typeof tie === "boolean" ? tie : hasLmHead === undefined ? false : !hasLmHead,
    // Qwen2 always has q/k/v biases; Llama/Qwen3 have them only when `attention_bias` says so.
    attentionBias: architecture === "qwen2" ? true : cfg.attention_bias === true,
    qkNorm: architecture === "qwen3",
  };
}

const GGUF_ARCHS: Record<string, Architecture> = { llama: "llama", qwen2: "qwen2", qwen3: "qwen3" };

/**
 * Llama-3 checkpoints in GGUF carry their RoPE scaling as a `rope_freqs.weight` tensor (one
 * divisor per frequency) rather than as parameters. The divisors fix only the ratios
 * original_max/low and original_max/high, so we take original_max from metadata (or 8192, the
 * Llama-3.1 value), solve for the rest, and check that the parameters reproduce every divisor;
 * a file they do not reproduce is rejected rather than silently mis-scaled.
 */
export function llama3ScalingFromFreqs(factors: Float32Array, ropeTheta: number, headDim: number, originalMax: number): RopeScaling {
  const factor = Math.max(...factors);
  if (factor <= 1) return null;
  const wavelens = Array.from(factors, (_, i) => 2 * Math.PI * ropeTheta ** ((2 * i) / headDim));
  // Smooth region: 1/r = (1 - s)/factor + s with s = (originalMax/wavelen − low)/(high − low).
  const pts: [number, number][] = [];
  factors.forEach((r, i) => {
    if (r > 1 + 1e-6 && r < factor - 1e-6) pts.push([originalMax / wavelens[i]!, (1 / r - 1 / factor) / (1 - 1 / factor)]);
  });
  const candidates: [number, number][] = [];
  if (pts.length >= 2) {
    // s is linear in x = originalMax/wavelen: s = (x − low)/(high − low). Least squares.
    const n = pts.length;
    const mx = pts.reduce((a, p) => a + p[0], 0) / n;
    const my = pts.reduce((a, p) => a + p[1], 0) / n;
    const slope = pts.reduce((a, p) => a + (p[0] - mx) * (p[1] - my), 0) / pts.reduce((a, p) => a + (p[0] - mx) ** 2, 0);
    const intercept = my - slope * mx;
    candidates.push([-intercept / slope, (1 - intercept) / slope]);
  }
  // Too few interpolated frequencies to solve for both: try Llama-3's published values, then the
  // boundary between the last unscaled and the first fully scaled frequency.
  candidates.push([1, 4]);
  const firstScaled = factors.findIndex((r) => r >= factor - 1e-6);
  const lastUnscaled = factors.findLastIndex((r) => r <= 1 + 1e-6);
  if (firstScaled > 0 && lastUnscaled >= 0) candidates.push([originalMax / wavelens[firstScaled]!, originalMax / wavelens[lastUnscaled]!]);
  for (const [low, high] of candidates) {
    const scaling = { type: "llama3" as const, factor, lowFreqFactor: low, highFreqFactor: high, originalMaxPositionEmbeddings: originalMax };
    const again = llama3RopeDivisors(scaling, ropeTheta, headDim);
    if (again.every((v, i) => Math.abs(v - factors[i]!) <= 1e-3 * factors[i]!)) return scaling;
  }
  throw new Error("rope_freqs.weight: the divisors do not follow Llama-3 RoPE scaling");
}

/** The per-frequency divisors Llama-3 scaling applies (as transformers' `_compute_llama3_parameters`). */
export function llama3RopeDivisors(s: Extract<RopeScaling, { type: "llama3" }>, ropeTheta: number, headDim: number): Float64Array {
  const out = new Float64Array(headDim / 2);
  const lowWavelen = s.originalMaxPositionEmbeddings / s.lowFreqFactor;
  const highWavelen = s.originalMaxPositionEmbeddings / s.highFreqFactor;
  for (let i = 0; i < out.length; i++) {
    const wavelen = 2 * Math.PI * ropeTheta ** ((2 * i) / headDim);
    if (wavelen < highWavelen) out[i] = 1;
    else if (wavelen > lowWavelen) out[i] = s.factor;
    else {
      const smooth = (s.originalMaxPositionEmbeddings / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
      out[i] = 1 / ((1 - smooth) / s.factor + smooth);
    }
  }
  return out;
}

/** The shortest decimal that is the same float32 (GGUF stores 1e-5 as 9.999999747e-6). */
function shortestF32(v: number): number {
  for (let p = 1; p <= 9; p++) {
    const x = Number(v.toPrecision(p));
    if (Math.fround(x) === Math.fround(v)) return x;
  }
  return v;
}

/** ModelConfig from GGUF metadata (`{arch}.*` keys) and tensor list. */
export function ggufModelConfig(g: GgufFile): ModelConfig {
  const arch = ggufString(g, "general.architecture") ?? "";
  const architecture = GGUF_ARCHS[arch];
  if (!architecture)
    throw new Error(`${g.path}: GGUF architecture "${arch}" is not supported (supported: ${Object.keys(GGUF_ARCHS).join(", ")})`);
  const need = (key: string): number => {
    const v = ggufNumber(g, `${arch}.${key}`);
    if (v === undefined) throw new Error(`${g.path}: missing metadata ${arch}.${key}`);
    return v;
  };
  const opt = (key: string): number | undefined => ggufNumber(g, `${arch}.${key}`);
  const hiddenSize = need("embedding_length");
  const numHeads = need("attention.head_count");
  const headDim = opt("attention.key_length") ?? hiddenSize / numHeads;
  const ropeTheta = shortestF32(opt("rope.freq_base") ?? 10000);
  const tokens = g.metadata.get("tokenizer.ggml.tokens") as string[] | undefined;
  const embd = g.tensors.get("token_embd.weight");
  const vocabSize = opt("vocab_size") ?? embd?.dims[1] ?? tokens?.length;
  if (vocabSize === undefined) throw new Error(`${g.path}: cannot tell the vocabulary size`);
  let ropeScaling: RopeScaling = null;
  const scalingType = ggufString(g, `${arch}.rope.scaling.type`);
  if (scalingType === "linear") ropeScaling = { type: "linear", factor: need("rope.scaling.factor") };
  else if (scalingType && scalingType !== "none")
    throw new Error(`${g.path}: RoPE scaling type "${scalingType}" is not supported (supported: linear, llama3)`);
  if (g.tensors.has("rope_freqs.weight")) {
    const freqs = readGgufTensorFloat32(g, "rope_freqs.weight");
    ropeScaling = llama3ScalingFromFreqs(freqs, ropeTheta, headDim, opt("rope.scaling.original_context_length") ?? 8192);
  }
  return {
    architecture,
    hiddenSize,
    intermediateSize: need("feed_forward_length"),
    numLayers: need("block_count"),
    numHeads,
    numKvHeads: opt("attention.head_count_kv") ?? numHeads,
    headDim,
    vocabSize,
    rmsNormEps: shortestF32(need("attention.layer_norm_rms_epsilon")),
    ropeTheta,
    ropeScaling,
    maxPositionEmbeddings: opt("context_length") ?? 2048,
    tieWordEmbeddings: !g.tensors.has("output.weight"),
    attentionBias: g.tensors.has("blk.0.attn_q.bias"),
    qkNorm: g.tensors.has("blk.0.attn_q_norm.weight"),
  };
}
