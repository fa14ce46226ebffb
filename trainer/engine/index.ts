// trainer/engine: LoRA training and scoring for Llama-family models on ONNX Runtime.
export {
  Engine,
  stepMetrics,
  parameterCount,
  memoryEstimate,
  type EngineOptions,
  type EngineMode,
  type ScoreItem,
  type TrainItem,
  type LossOptions,
  type Gradients,
  type TrainStepResult,
  type TrainMetrics,
  type TokenStats,
  type LoraValues,
} from "./engine.js";
export { AdamW, type AdamWOptions, type LoraGradients } from "./adamw.js";
export { Runtime, EXECUTION_PROVIDERS, type ExecutionProvider } from "./runtime.js";
export { bucketLength, planRuns } from "./batching.js";
export { loraDims, modelWeightShapes } from "./decoder.js";
export { identifyModel, loadModel } from "./model/index.js";
export type * from "./model/types.js";
