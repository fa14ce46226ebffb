// Random models that implement ModelWeights, for tests and benchmarks: any architecture variant at
// any size, with Hugging Face names and PyTorch layout, values from a seeded generator.
import { seededRandom } from "../../../adapters/index.js";
import { modelWeightShapes as weightShapes } from "../decoder.js";
import type { ModelConfig, ModelWeights, WeightTensor } from "../model/types.js";

/** A tiny config of the given architecture, for gradient checks (sizes chosen to exercise GQA). */
export function tinyConfig(over: Partial<ModelConfig> = {}): ModelConfig {
  return {
    architecture: "llama",
    hiddenSize: 16,
    intermediateSize: 24,
    numLayers: 2,
    numHeads: 4,
    numKvHeads: 2,
    headDim: 4,
    vocabSize: 37,
    rmsNormEps: 1e-5,
    ropeTheta: 10000,
    ropeScaling: null,
    maxPositionEmbeddings: 512,
    tieWordEmbeddings: true,
    attentionBias: false,
    qkNorm: false,
    ...over,
  };
}

/** SmolLM2-135M's shape. */
export const SMOLLM2_135M: ModelConfig = {
  architecture: "llama",
  hiddenSize: 576,
  intermediateSize: 1536,
  numLayers: 30,
  numHeads: 9,
  numKvHeads: 3,
  headDim: 64,
  vocabSize: 49152,
  rmsNormEps: 1e-5,
  ropeTheta: 100000,
  ropeScaling: null,
  maxPositionEmbeddings: 8192,
  tieWordEmbeddings: true,
  attentionBias: false,
  qkNorm: false,
};

/** Qwen2.5-0.5B's shape. */
export const QWEN25_05B: ModelConfig = {
  architecture: "qwen2",
  hiddenSize: 896,
  intermediateSize: 4864,
  numLayers: 24,
  numHeads: 14,
  numKvHeads: 2,
  headDim: 64,
  vocabSize: 151936,
  rmsNormEps: 1e-6,
  ropeTheta: 1000000,
  ropeScaling: null,
  maxPositionEmbeddings: 32768,
  tieWordEmbeddings: true,
  attentionBias: true,
  qkNorm: false,
};

/**
 * Random weights: norms near 1, matrices U(−s, s) with s = 1/√in (so activations keep their scale
 * through depth), embeddings with unit-ish rows. Deterministic in `seed`.
 */
export function syntheticWeights(config: ModelConfig, seed = 1): ModelWeights {
  const shapes = weightShapes(config);
  const cache = new Map<string, WeightTensor>();
  const make = (name: string): WeightTensor => {
    const shape = shapes.get(name);
    if (!shape) throw new Error(`model has no weight named "${name}"`);
    let h = seed;
    for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x9e3779b1);
    const rand = seededRandom(h >>> 0);
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    const isNorm = name.endsWith("norm.weight");
    const isBias = name.endsWith(".bias");
    const scale = name.includes("embed_tokens") || name === "lm_head.weight" ? 1 : 1 / Math.sqrt(shape[shape.length - 1]!);
    for (let i = 0; i < n; i++) {
      const u = rand() * 2 - 1;
      data[i] = isNorm ? 1 + 0.2 * u : isBias ? 0.1 * u : scale * u;
    }
    return { name, shape, dtype: "f32", data };
  };
  return {
    config,
    names: () => [...shapes.keys()],
    tensor(name) {
      let t = cache.get(name);
      if (!t) cache.set(name, (t = make(name)));
      return t;
    },
    float32(name) {
      const t = this.tensor(name);
      if (!("data" in t)) throw new Error("synthetic weights are in memory");
      return t.data;
    },
  };
}
