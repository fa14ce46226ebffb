// trainer: judged turns → samples → LoRA steps → adapter versions. Other folders import only this.
export { startTrainLoop, defaultBackend, stepSettings, type TrainLoop, type TrainLoopOptions } from "./loop.js";
export { trainOffline, offlineBatches, type OfflineOptions, type OfflineResult } from "./offline.js";
export { exportSamples, type ExportResult } from "./export.js";
export { parseSampleLines, sampleLine, sampleLineSchema, type SampleLine, type LineError } from "./jsonl.js";
export { fallbackOf, fallbackText, readStatus, statusFile, weightsText, type Fallback, type TrainStatus, type WeightsStatus } from "./status.js";
export { createProgress, progressLine, sparkline, type Progress } from "./progress.js";
export { listVersions, readManifest, verifyAdapterDir, versionName, type VersionEntry } from "./versions.js";
export { buildSample, type SkipReason, type Exchange } from "./samples.js";
export { renderExchange, type RenderedExchange } from "./render.js";
export { computeAdvantages, signalsFor } from "./advantages.js";
export { appendHint, HINT_HEADER } from "./hint.js";
export { trainOnBatch, type StepSettings, type StepOutcome } from "./step.js";
export type { TrainBackend, LoraShape } from "./backend.js";
export type { TrainEngine, Optimizer, ScoreItem, TrainItem } from "./compute.js";
