// What a loaded base model looks like to the compute engine, whatever file it came from
// (a Hugging Face folder with safetensors, or a GGUF file). Tensor names and layouts follow
// Hugging Face/PyTorch conventions throughout, so LoRA matrices line up with PEFT's.
import type { ChatMessage } from "../../../core/index.js";

export type Architecture = "llama" | "qwen2" | "qwen3" | "mistral";

export type RopeScaling =
  | null
  | { type: "linear"; factor: number }
  | {
      type: "llama3";
      factor: number;
      lowFreqFactor: number;
      highFreqFactor: number;
      originalMaxPositionEmbeddings: number;
    };

export interface ModelConfig {
  architecture: Architecture;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  /** Per-head size; Qwen3 may set it explicitly (≠ hiddenSize / numHeads). */
  headDim: number;
  vocabSize: number;
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling: RopeScaling;
  maxPositionEmbeddings: number;
  tieWordEmbeddings: boolean;
  /** q/k/v projections carry biases (Qwen2). */
  attentionBias: boolean;
  /** RMSNorm on q and k per head before RoPE (Qwen3). */
  qkNorm: boolean;
}

export type WeightDType = "f32" | "f16" | "bf16";

/**
 * One frozen weight in PyTorch layout (`[out, in]` for linear layers). Either raw little-endian
 * bytes of a float type, located in a file (so the engine can hand ONNX Runtime external data
 * without copying), or values already in memory (dequantized from GGUF).
 */
export type WeightTensor =
  | { name: string; shape: number[]; dtype: WeightDType; file: string; offset: number; byteLength: number }
  | { name: string; shape: number[]; dtype: "f32"; data: Float32Array };

/** Names follow Hugging Face: `model.embed_tokens.weight`, `model.layers.{i}.self_attn.q_proj.weight`,
 *  `model.layers.{i}.mlp.gate_proj.weight`, `model.norm.weight`, `lm_head.weight` (absent when tied), … */
export interface ModelWeights {
  config: ModelConfig;
  names(): string[];
  /** Throws a clear error for an unknown name. */
  tensor(name: string): WeightTensor;
  /** Values as fp32, whatever the storage (for tests and small tensors). */
  float32(name: string): Float32Array;
}

export interface ChatRenderOptions {
  tools?: unknown[];
  addGenerationPrompt: boolean;
}

/** The model's own tokenizer and chat template, matching what its server does. */
export interface ChatTokenizer {
  bosTokenId: number | null;
  eosTokenIds: number[];
  /** `parseSpecial`: special-token text (`<|im_start|>`) becomes its id, as servers do for templates. */
  encode(text: string, opts?: { addSpecial?: boolean; parseSpecial?: boolean }): number[];
  decode(ids: number[], opts?: { skipSpecial?: boolean }): string;
  renderChat(messages: ChatMessage[], opts: ChatRenderOptions): string;
  /** Token ids of a rendered conversation, exactly as the server would feed them to the model. */
  encodeChat(messages: ChatMessage[], opts: ChatRenderOptions): number[];
}

/**
 * What a base model is, read from its headers without its weights (cheap: the trainer holds it
 * while idle): enough to check that adapters were trained on it and to tokenize samples.
 */
export interface ModelIdentity {
  /** Where it came from (folder or .gguf file). */
  source: string;
  /** A human name (`SmolLM2-135M-Instruct`) and a content hash that identifies the weights. */
  name: string;
  hash: string;
  config: ModelConfig;
  tokenizer: ChatTokenizer;
}

/** A base model ready to train on. */
export interface LoadedModel extends ModelIdentity {
  weights: ModelWeights;
  /** Release memory-mapped files or buffers. */
  close(): void;
}
