// What the switchboard needs from a model server to hot-load adapter versions: load a version
// under a new name, unload a name, run a short probe, and (where the server can) score a fixed
// token sequence. One driver per server kind; each follows its server's documented API.
import type { UpstreamKind } from "../../core/index.js";

export interface DriverCapabilities {
  /** The server loads adapters at run time (false: llama.cpp's server, which loads at start only). */
  runtimeLoad: boolean;
  /** The server returns log-probs of given tokens (prompt log-probs), so a load can be checked numerically. */
  score: boolean;
  /** The adapter file the server reads from a version directory. */
  format: "peft" | "gguf";
}

export interface ProbeResult {
  ok: boolean;
  /** HTTP status, or null when the server did not answer. */
  status: number | null;
  text: string;
  latencyMs: number;
  error: string | null;
}

export interface AdapterDriver {
  readonly kind: UpstreamKind;
  readonly capabilities: DriverCapabilities;
  /** The base model's served name (discovered from the server where not configured). */
  baseModel(): Promise<string>;
  /** The name a version is served under; unique per version, never reused for other weights. */
  servedName(version: string, base: string): string;
  /** What a request's `model` must say to reach the served name (SGLang: `<base>:<adapter>`). */
  requestModel(servedName: string, base: string): string;
  /** Loads the version directory `dir` under `servedName`. Resolves once requests can use it. */
  load(servedName: string, dir: string): Promise<void>;
  /** Unloads `servedName`. A name that is already gone is not an error. */
  unload(servedName: string): Promise<void>;
  /** Adapter names the server has loaded now (null: it cannot say). */
  loaded(): Promise<string[] | null>;
  /** A short generation under `model` (a request model name). */
  probe(model: string): Promise<ProbeResult>;
  /** log p(response_t | prompt, response_<t) under `model`; null when the server cannot score. */
  score(model: string, promptIds: number[], responseIds: number[]): Promise<number[] | null>;
}

/** A driver call the server refused or failed; `status` is the HTTP status where there was one. */
export class DriverError extends Error {
  constructor(
    message: string,
    readonly status: number | null = null,
    /** The server cannot do this at all (not a passing failure): don't retry. */
    readonly permanent = false,
  ) {
    super(message);
  }
}
