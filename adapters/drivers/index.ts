// Drivers that load adapter versions into model servers, one per server kind.
import type { UpstreamKind } from "../../core/index.js";
import { LlamaCppDriver } from "./llamacpp.js";
import { OllamaDriver } from "./ollama.js";
import { SglangDriver } from "./sglang.js";
import type { AdapterDriver } from "./types.js";
import { VllmDriver, type DriverOptions } from "./vllm.js";

export { DriverError, type AdapterDriver, type DriverCapabilities, type ProbeResult } from "./types.js";
export { VllmDriver, type DriverOptions } from "./vllm.js";
export { SglangDriver } from "./sglang.js";
export { OllamaDriver } from "./ollama.js";
export { LlamaCppDriver } from "./llamacpp.js";
export { readHead, writeHead, HEAD_FILE, type Head } from "./lineage.js";
export { readPruned, appendPruned, prunedRecord, PRUNED_FILE, TRASH_PREFIX, type PrunedVersion } from "./pruned.js";
export { versionProblems, readVersionManifest, GGUF_ADAPTER, PEFT_FILES } from "./files.js";
export { sameVersion, type VersionIdentity } from "./identity.js";
export {
  PROBE_FILE,
  probeFileSchema,
  readProbeFile,
  compareProbe,
  NOISE_MEAN,
  NOISE_MAX,
  REL,
  STRONG_SHIFT,
  MIN_COSINE,
  DISCRIMINATIVE_SHIFT,
  type ProbeFile,
  type ProbeComparison,
} from "./probe.js";

/** The driver for a server kind; null for servers that cannot serve adapters (hosted OpenAI). */
export function createDriver(kind: UpstreamKind, opts: DriverOptions): AdapterDriver | null {
  switch (kind) {
    case "vllm":
      return new VllmDriver(opts, "vllm");
    case "clawloop":
      return new VllmDriver(opts, "clawloop");
    case "sglang":
      return new SglangDriver(opts);
    case "ollama":
      return new OllamaDriver(opts);
    case "llamacpp":
      return new LlamaCppDriver(opts);
    case "openai":
      return null;
  }
}
