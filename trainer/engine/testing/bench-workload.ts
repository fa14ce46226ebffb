// The workload bench:train measures and tools/profile-step profiles, in one place so the two always
// time the same thing: the model (SmolLM2-135M's real GGUF when cached, else random weights of its
// shape; a Qwen2.5-0.5B-shaped model with random weights), LoRA rank 16 on all seven projections,
// and one sequence of T tokens, a 3/4 prompt and a 1/4 response (agent turns have long prompts).
import fs from "node:fs";
import path from "node:path";
import type { Engine, TrainItem } from "../engine.js";
import type { LoraAdapter } from "../../../adapters/index.js";
import { loadModel } from "../model/index.js";
import type { ModelWeights } from "../model/types.js";
import { QWEN25_05B, SMOLLM2_135M, syntheticWeights } from "./synthetic.js";

export const BENCH_MODELS = ["SmolLM2-135M", "Qwen2.5-0.5B-shape"] as const;
export type BenchModel = (typeof BENCH_MODELS)[number];

export const BENCH_LORA = { rank: 16, alpha: 32, targets: ["q", "k", "v", "o", "gate", "up", "down"] as const };

/** The cached SmolLM2 GGUF (the test fixture), looked for under `root`. */
function cachedSmolLM2(root: string): string | null {
  const candidates = [process.env.CLAWLOOP_TEST_MODEL, path.join(root, ".cache/models/SmolLM2-135M-Instruct.Q4_1.gguf")];
  return candidates.find((p): p is string => !!p && fs.existsSync(p)) ?? null;
}

export async function benchWeights(name: BenchModel, root: string): Promise<{ weights: ModelWeights; label: string; close?: () => void }> {
  if (name === "SmolLM2-135M") {
    const file = cachedSmolLM2(root);
    if (file) {
      const m = await loadModel(file);
      return { weights: m.weights, label: "real Q4_1 (dequantized)", close: () => m.close() };
    }
    return { weights: syntheticWeights(SMOLLM2_135M, 1), label: "random, SmolLM2 shape" };
  }
  return { weights: syntheticWeights(QWEN25_05B, 1), label: "random, Qwen2.5-0.5B shape" };
}

/** One sequence of `tokens`, an adapter with B set (so the LoRA path does real work) and the loss. */
export function benchStep(engine: Engine, vocabSize: number, tokens: number): { item: TrainItem; adapter: LoraAdapter; loss: { epsLow: number; epsHigh: number; klCoef: number }; responseTokens: number } {
  const R = tokens / 4;
  const ids = Array.from({ length: tokens }, (_, i) => (i * 7919 + 13) % vocabSize);
  const item: TrainItem = {
    promptIds: ids.slice(0, tokens - R),
    responseIds: ids.slice(tokens - R),
    advantages: new Array(R).fill(1),
    oldLogprobs: new Array(R).fill(-8),
  };
  const adapter = engine.newAdapter(1);
  for (const b of adapter.b.values()) b.fill(0.01);
  return { item, adapter, loss: { epsLow: 0.2, epsHigh: 0.28, klCoef: 0 }, responseTokens: R };
}
