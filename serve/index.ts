// serve: clawloop's embedded llama.cpp engine, an OpenAI-compatible server in vLLM's dialect
// (token ids, raw log-probs, prompt log-probs, runtime LoRA loading). Other folders import only this.
export { startServer, ENGINE_HEADER, type ServeOptions, type RunningServer } from "./server.js";
export { Engine, type EngineOptions, type AdapterInfo, resolveAdapterFile } from "./engine.js";
export { engineVersion } from "./version.js";
export { defaultEngineThreads, SMALL_MACHINE_CORES } from "./threads.js";
export {
  KNOWN_MODELS,
  knownModel,
  modelsDir,
  resolveModelPath,
  ensureModel,
  fetchModel,
  ModelNotFoundError,
  type KnownModel,
  type FetchOptions,
  type FetchResult,
} from "./models.js";
