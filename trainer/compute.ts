// What the train loop needs from the compute engine (trainer/engine) and its optimizer, as narrow
// interfaces: the real engine satisfies them structurally, and bookkeeping tests can run against a
// small stand-in without building ONNX graphs.
import type { LoraAdapter } from "../adapters/index.js";

export interface ScoreItem {
  promptIds: number[];
  responseIds: number[];
}

export interface TrainItem extends ScoreItem {
  /** One per response token. */
  advantages: number[];
  /** log π_old of each response token (the PPO ratio's denominator). */
  oldLogprobs: number[];
  /** log π_base of each response token; given only when the KL penalty is on. */
  refLogprobs?: number[];
}

export interface LossOptions {
  epsLow: number;
  epsHigh: number;
  klCoef: number;
}

export interface Gradients {
  a: Map<string, Float32Array>;
  b: Map<string, Float32Array>;
}

export interface TrainStepResult {
  loss: number;
  gradients: Gradients;
  metrics: { tokens: number; kl?: number | null; [k: string]: unknown };
}

export interface TrainEngine {
  /** log π(response_t | prompt, response_<t) per response token; `adapter` null = the base model. */
  score(items: ScoreItem[], adapter: LoraAdapter | null): Promise<number[][]>;
  trainStep(items: TrainItem[], adapter: LoraAdapter, loss: LossOptions): Promise<TrainStepResult>;
  close?(): void | Promise<void>;
}

export interface Optimizer {
  /** Applies one update to `adapter` in place; returns the gradient norm before clipping. */
  step(adapter: LoraAdapter, gradients: Gradients): { gradNorm: number };
  /** Serialized moments and step count, so a restart continues exactly. */
  saveState(): Uint8Array;
  loadState(bytes: Uint8Array): void;
}
