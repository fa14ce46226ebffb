// Everything the train loop needs from the rest of clawloop, behind one interface: the model
// loader, the compute engine and its optimizer, and the adapter file formats.
import type { LoraAdapter, LoraTarget } from "../adapters/index.js";
import type { Config, Logger } from "../core/index.js";
import type { Optimizer, TrainEngine } from "./compute.js";
import type { LoadedModel, ModelIdentity } from "./engine/model/types.js";

export interface LoraShape {
  rank: number;
  alpha: number;
  targets: LoraTarget[];
}

export type TrainSettings = Config["train"];

export interface TrainBackend {
  /**
   * Name, content hash, config and tokenizer from the model's headers, without its weights: what
   * the train loop holds while it has nothing to train (it loads the model when a batch is due).
   */
  identify(source: string): Promise<ModelIdentity>;
  loadModel(source: string): Promise<LoadedModel>;
  /** `logger` hears about an execution provider that was not available (and the CPU fallback). */
  createEngine(model: LoadedModel, lora: LoraShape, train: TrainSettings, logger?: Logger): Promise<TrainEngine>;
  createOptimizer(train: TrainSettings): Optimizer;
  /** A fresh adapter (a no-op until trained). Adapters need the model's identity, not its weights. */
  newAdapter(model: ModelIdentity, lora: LoraShape, seed: number): LoraAdapter;
  /** Reads a PEFT adapter folder written for `model`. */
  readAdapter(dir: string, model: ModelIdentity): Promise<LoraAdapter>;
  /** Writes `adapter_config.json` + `adapter_model.safetensors`, and `adapter.gguf` when asked. */
  writeAdapter(dir: string, adapter: LoraAdapter, model: ModelIdentity, opts: { gguf: boolean }): Promise<void>;
}

/** Whether versions carry `adapter.gguf`: "auto" writes it when the base model is a GGUF file. */
export function wantsGguf(setting: TrainSettings["gguf"], modelSource: string): boolean {
  return setting === "always" || (setting === "auto" && modelSource.toLowerCase().endsWith(".gguf"));
}

/** The base model to train: train.model, else the embedded engine's serve.model. */
export function modelSourceOf(config: Config, flag?: string | null): string {
  const source = flag ?? config.train.model ?? config.serve.model;
  if (!source) {
    throw new Error("no base model to train: pass --model PATH (a .gguf file or a Hugging Face folder) or set train.model");
  }
  return source;
}
