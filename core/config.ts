// Configuration: defaults < config file < environment (CLAWLOOP_*) < command-line flags.
// Every leaf has a default (null where unset), so the environment names can be derived from it:
// `train.batchSize` is CLAWLOOP_TRAIN_BATCH_SIZE, `sidecar.port` is CLAWLOOP_SIDECAR_PORT.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { z } from "zod";

/** `sidecar.upstreamKind`: "auto" (detected from its endpoints) or one of UPSTREAM_KINDS. */
export const upstreamKindSetting = z.enum(["auto", "vllm", "sglang", "llamacpp", "ollama", "openai", "clawloop"]);
const trainMode = z.enum(["rl", "opd", "combined"]);
const loraTarget = z.enum(["q", "k", "v", "o", "gate", "up", "down"]);

const sideRule = z.object({
  /** Regex on the request's `model`. */
  model: z.string().nullable().default(null),
  /** Regex on the first system message. */
  systemPrompt: z.string().nullable().default(null),
  /** `name: regex` on a request header. */
  header: z.string().nullable().default(null),
  /** Regex on the last user message (client decorations such as OpenClaw's timestamp prefix removed). */
  userPrompt: z.string().nullable().default(null),
});

export const configSchema = z.object({
  /** Where the store, adapters, logs and token live. */
  dataDir: z.string().default(() => process.env.CLAWLOOP_HOME || path.join(os.homedir(), ".clawloop")),
  logLevel: z.enum(["trace", "debug", "info", "warn", "error", "silent"]).default("info"),

  sidecar: z
    .object({
      host: z.string().default("127.0.0.1"),
      port: z.coerce.number().int().min(0).max(65535).default(11435),
      /** Base URL of the model server, e.g. http://127.0.0.1:8000 (with or without /v1). */
      upstream: z.string().nullable().default(null),
      upstreamKind: upstreamKindSetting.default("auto"),
      /** Key for the sidecar's own calls to the upstream (adapter loading, judging); never stored. */
      upstreamApiKey: z.string().nullable().default(null),
      /** Ask the upstream for token ids and log-probs, and hide them from clients that did not ask. */
      captureLogprobs: z.boolean().default(true),
      /** Mask strings that look like API keys or tokens in recorded text. */
      maskSecrets: z.boolean().default(true),
      /** Extra regexes (source strings) whose matches are masked. */
      secretPatterns: z.array(z.string()).default([]),
      /** Request bodies larger than this are forwarded but not recorded. */
      maxRecordBytes: z.coerce.number().int().positive().default(16 * 1024 * 1024),
      /** Time to wait for the upstream's response headers. */
      upstreamTimeoutMs: z.coerce.number().int().positive().default(600_000),
      /** How long an answer's last byte waits for its turn to reach the store's log (a store that is
       *  down never holds calls up longer; the turn is written when it is back). */
      recordWaitMs: z.coerce.number().int().min(0).default(2_000),
      /** Place untagged traffic into sessions by matching conversation prefixes. */
      inferSessions: z.boolean().default(true),
      /** Turns the session inference remembers (in memory and in `<data>/inference/`); older ones start new sessions. */
      inferIndexSize: z.coerce.number().int().min(100).default(20_000),
      /** Rules that mark requests as housekeeping (`side`). */
      sideRules: z.array(sideRule).default([]),
      /** Also apply the built-in rules for well-known housekeeping prompts (Open WebUI's titles, tags, follow-ups; OpenClaw's slugs, titles, compaction). */
      builtinSideRules: z.boolean().default(true),
      /** Where the sidecar's store runs: a child process (LanceDB's memory and any native crash kept
       *  apart from the proxy) or a worker thread in the proxy's process (one Node runtime less). */
      storeHost: z.enum(["process", "worker"]).default("process"),
      /** How much lower the store process's CPU priority is than the proxy's (nice, 0–19). The
       *  store catches up from the call journal, so a lower priority lets a burst of calls have the
       *  CPU first (19: +0.01–0.03 of lockstep throughput at 64 streams in bench:proxy); but the
       *  control API's reads go through the store too, and on a machine kept busy by other work
       *  (a CPU model server) they slow down with it. Off by default. */
      storeNice: z.coerce.number().int().min(0).max(19).default(0),
      /** How long the store process (or thread) may take to open LanceDB and report ready before it is
       *  stopped: the sidecar's start fails with the reason, or a restart is tried again (each try
       *  after a timeout given twice as long, up to 16×). Generous: a starved machine is slow. */
      storeStartTimeoutMs: z.coerce.number().int().positive().default(60_000),
      /** While a session's last seq cannot be read, its calls are recorded with the store's numbers and
       *  kept in memory (request and response) to be written again with the sidecar's: at most this
       *  many per session, and `seqRewritesMax` in all (~0.1 MB each at OpenClaw-sized calls, an
       *  estimate). Past them a call keeps the store's number (the order it was taken in, not the
       *  order calls started; still no gap or repeat). */
      seqRewritesPerSession: z.coerce.number().int().min(0).default(128),
      seqRewritesMax: z.coerce.number().int().min(0).default(512),
    })
    .prefault({}),

  judge: z
    .object({
      method: z.enum(["rules", "prm", "logprob"]).default("prm"),
      /** Run the rules first; a rule verdict skips the model. */
      rulesFirst: z.boolean().default(true),
      /** OpenAI-compatible endpoint of the judge; null: the sidecar's upstream. */
      endpoint: z.string().nullable().default(null),
      /** Judge model; null: the served base model (no adapter). */
      model: z.string().nullable().default(null),
      apiKey: z.string().nullable().default(null),
      votes: z.coerce.number().int().min(1).default(3),
      temperature: z.coerce.number().min(0).default(0.6),
      maxTokens: z.coerce.number().int().positive().default(512),
      concurrency: z.coerce.number().int().min(1).default(2),
      timeoutMs: z.coerce.number().int().positive().default(120_000),
      retries: z.coerce.number().int().min(0).default(3),
      /** A main turn whose session ended with no next state: leave it unscored or judge it from the end. */
      sessionEnd: z.enum(["skip", "judge"]).default("skip"),
      /** Extra regexes (case-insensitive) for the rules, added to the built-in multilingual ones. */
      patterns: z
        .object({
          correction: z.array(z.string()).default([]),
          reask: z.array(z.string()).default([]),
          thanks: z.array(z.string()).default([]),
          /** Change requests ("make it casual"): negative unless the message also accepts the answer. */
          change: z.array(z.string()).default([]),
          /** Follow-ups that continue from the answer ("and mergesort?"): positive, checked last. */
          followup: z.array(z.string()).default([]),
        })
        .prefault({}),
      pollMs: z.coerce.number().int().positive().default(1000),
      /** A turn with tool calls is judged once every call has a result, or once its last next state is this old. */
      settleMs: z.coerce.number().int().min(0).default(5000),
      /** Log-prob judge: the best answer must beat the runner-up by this many nats, else the verdict is 0. */
      logprobMargin: z.coerce.number().min(0).default(0.5),
      /** Log-prob judge prompt: the server's chat template via /tokenize ("auto" falls back to "text"). */
      logprobRender: z.enum(["auto", "tokenize", "text"]).default("auto"),
      /** Log-prob judge: exact answer probabilities from prompt log-probs, or one generated token's top log-probs (cheaper). */
      logprobScoring: z.enum(["continuation", "next-token"]).default("continuation"),
    })
    .prefault({}),

  train: z
    .object({
      mode: trainMode.default("combined"),
      /** Base model: a GGUF file or a Hugging Face model folder. */
      model: z.string().nullable().default(null),
      /** Step when this many samples are ready… */
      batchSize: z.coerce.number().int().min(1).default(4),
      /** …or this many seconds have passed with at least one. */
      maxWaitSec: z.coerce.number().min(0).default(60),
      lr: z.coerce.number().positive().default(5e-5),
      weightDecay: z.coerce.number().min(0).default(0),
      maxGradNorm: z.coerce.number().positive().default(1),
      rank: z.coerce.number().int().min(1).default(16),
      alpha: z.coerce.number().positive().default(32),
      targets: z.array(loraTarget).default(["q", "k", "v", "o", "gate", "up", "down"]),
      epsLow: z.coerce.number().min(0).default(0.2),
      epsHigh: z.coerce.number().min(0).default(0.28),
      /** Clip c of the distillation gap: A = clip(log π_teacher − log π_old, −c, c). */
      gapClip: z.coerce.number().positive().default(2),
      wRl: z.coerce.number().min(0).default(1),
      wOpd: z.coerce.number().min(0).default(1),
      /** Coefficient of the KL penalty toward the base model; 0 turns it off. */
      klCoef: z.coerce.number().min(0).default(0),
      teacher: z.enum(["policy", "base"]).default("policy"),
      /** Longest prompt + response trained on; longer samples are cut from the left of the prompt. */
      maxTokens: z.coerce.number().int().positive().default(2048),
      /** How often each sample is used. */
      epochs: z.coerce.number().int().min(1).default(1),
      executionProvider: z.enum(["cpu", "cuda", "webgpu", "dml"]).default("cpu"),
      seed: z.coerce.number().int().default(0),
      /**
       * π_old of the PPO ratio: "engine" recomputes it with the current adapter at the start of
       * each step; "server" uses the log-probs the model server sampled with (where it returned
       * them). The server's come from another numeric stack and often an older adapter, so the
       * ratio is off 1 before any update: llama.cpp on SmolLM2 Q4_1 vs the engine's fp32 on the
       * same dequantized weights differ by 0.067 nats per token on average (max 0.42), which
       * puts 5.4% of tokens outside the [0.8, 1.28] clip band at the first step
       * (test/e2e/train-learning.test.ts). Hence "engine": one gradient step per batch is then
       * the exact on-policy gradient. The trainer records the mismatch per step
       * (behaviourMismatch) either way.
       */
      oldLogprobs: z.enum(["engine", "server"]).default("engine"),
      /** Write `adapter.gguf` with each version: "auto" when the base model is a GGUF file (llama.cpp-based servers). */
      gguf: z.enum(["auto", "always", "never"]).default("auto"),
      /** How often the continuous loop looks for new judged turns. */
      pollMs: z.coerce.number().int().positive().default(2000),
      /** Compute threads of the engine; 0: all cores. */
      threads: z.coerce.number().int().min(0).default(0),
      /** Process priority of `clawloop train` (nice, 0–19): training yields the CPU to serving. */
      nice: z.coerce.number().int().min(0).max(19).default(10),
      /**
       * Pause training (`<data>/train.paused`) once the sidecar has rejected this many of the
       * trainer's versions in a row; 0: never. When every version fails the switchboard's check
       * (a check wrong for this server, a broken conversion, a model server that changed), each
       * further step spends samples on a version that will not be served; the pause stops that
       * and says why (trainer/reject-pause.ts).
       */
      pauseAfterRejections: z.coerce.number().int().min(0).default(3),
      /**
       * The trainer loads its base model and engine only when a batch is due, and lets them go
       * after this many seconds with no step due, so an idle trainer holds little memory
       * (SmolLM2-135M, measured: ~165 MB RSS before the first batch, ~1.6 GB training, ~195 MB
       * let go); the next batch loads them again (seconds). 0: keep them once loaded.
       */
      releaseAfterIdleS: z.coerce.number().min(0).default(600),
    })
    .prefault({}),

  adapters: z
    .object({
      /** Where versions are written; null: <dataDir>/adapters. */
      dir: z.string().nullable().default(null),
      /** Check each new version with a probe request before it goes live. */
      probe: z.boolean().default(true),
      /** Loaded versions kept in the server besides the live one (for rollback). */
      keepLoaded: z.coerce.number().int().min(0).default(1),
      /** Load each new version into the upstream and route requests to it (the sidecar's switchboard). */
      hotload: z.boolean().default(true),
      /** The base model's served name at the upstream; null: discovered (/v1/models, Ollama's only model). */
      baseModel: z.string().nullable().default(null),
      /** How often a version that could not be loaded yet (server down, llama-server not restarted) is tried again. */
      retrySec: z.coerce.number().positive().default(15),
      /** Longest a single load may take (Ollama builds a model; vLLM reads the adapter). */
      loadTimeoutSec: z.coerce.number().positive().default(300),
      /**
       * Version directories the trainer keeps: the newest this many, plus the live, the pinned and
       * the rolled-back-to (HEAD.json) version and the one it continues from; older ones are
       * deleted after each step. 0 keeps every version.
       */
      keepVersions: z.coerce.number().int().min(0).default(20),
      /**
       * A version is deleted only once it has been outside the kept set for this long, on two looks
       * at the adapters table: a pin the sidecar has not yet written to the store is seen first.
       */
      pruneGraceSec: z.coerce.number().min(0).default(30),
    })
    .prefault({}),

  serve: z
    .object({
      /** GGUF model of the embedded engine. */
      model: z.string().nullable().default(null),
      host: z.string().default("127.0.0.1"),
      port: z.coerce.number().int().min(0).max(65535).default(11436),
      contextSize: z.coerce.number().int().positive().default(4096),
      /** Concurrent sequences per context. */
      parallel: z.coerce.number().int().min(1).default(4),
      /** CPU threads of the engine; 0: the physical cores, or 1 under `clawloop up` on ≤ 2 cores (beside the trainer). */
      threads: z.coerce.number().int().min(0).default(0),
    })
    .prefault({}),
});

export type Config = z.infer<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type DeepPartial<T> = { [K in keyof T]?: T[K] extends object ? (T[K] extends unknown[] ? T[K] : DeepPartial<T[K]>) : T[K] };
export type ConfigOverrides = DeepPartial<Config>;

export interface LoadConfigOptions {
  /** An explicit config file; otherwise `<dataDir>/config.json` when it exists. */
  file?: string | null;
  /** Values from command-line flags (already nested, e.g. `{sidecar: {port: 9000}}`). */
  flags?: ConfigOverrides;
  env?: NodeJS.ProcessEnv;
}

export function envName(pathParts: string[]): string {
  return "CLAWLOOP_" + pathParts.map((p) => p.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()).join("_");
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function deepMerge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    if (v === undefined) continue;
    out[k] = isPlainObject(v) && isPlainObject(out[k]) ? deepMerge(out[k] as Record<string, unknown>, v) : v;
  }
  return out;
}

/** Env values are JSON where they parse as JSON (numbers, booleans, arrays), else plain strings. */
function parseEnvValue(raw: string): Json {
  try {
    return JSON.parse(raw) as Json;
  } catch {
    return raw;
  }
}

function fromEnv(defaults: Record<string, unknown>, env: NodeJS.ProcessEnv, prefix: string[] = []): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(defaults)) {
    const parts = [...prefix, k];
    if (isPlainObject(v)) {
      const nested = fromEnv(v, env, parts);
      if (Object.keys(nested).length) out[k] = nested;
      continue;
    }
    const raw = env[envName(parts)];
    if (raw !== undefined) out[k] = typeof v === "string" || v === null ? coerceString(raw) : parseEnvValue(raw);
  }
  return out;
}

function coerceString(raw: string): Json {
  return raw === "null" ? null : raw;
}

export class ConfigError extends Error {}

export function loadConfig(opts: LoadConfigOptions = {}): Config {
  const env = opts.env ?? process.env;
  const defaults = configSchema.parse({}) as unknown as Record<string, unknown>;
  const envValues = fromEnv(defaults, env);
  if (env.CLAWLOOP_HOME && !env[envName(["dataDir"])]) envValues.dataDir = env.CLAWLOOP_HOME;
  const flags = (opts.flags ?? {}) as Record<string, unknown>;
  const dataDir = String(flags.dataDir ?? envValues.dataDir ?? defaults.dataDir);
  const file = opts.file ?? path.join(dataDir, "config.json");
  let fileValues: Record<string, unknown> = {};
  if (fs.existsSync(file)) {
    try {
      fileValues = JSON.parse(fs.readFileSync(file, "utf8")) as Record<string, unknown>;
    } catch (err) {
      throw new ConfigError(`config file ${file} is not valid JSON: ${(err as Error).message}`);
    }
  } else if (opts.file) {
    throw new ConfigError(`config file ${opts.file} does not exist`);
  }
  const merged = deepMerge(deepMerge(fileValues, envValues), flags);
  const parsed = configSchema.safeParse(merged);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join(".") || "(root)"}: ${i.message}`);
    throw new ConfigError(`invalid configuration:\n${lines.join("\n")}`);
  }
  return parsed.data;
}

/** Writes `values` into `<dataDir>/config.json`, merged with what is there (used by installers). */
export function updateConfigFile(dataDir: string, values: ConfigOverrides): string {
  const file = path.join(dataDir, "config.json");
  const current = fs.existsSync(file) ? (JSON.parse(fs.readFileSync(file, "utf8")) as Record<string, unknown>) : {};
  const next = deepMerge(current, values as Record<string, unknown>);
  configSchema.parse(next);
  fs.mkdirSync(dataDir, { recursive: true });
  const tmp = `${file}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(next, null, 2) + "\n");
  fs.renameSync(tmp, file);
  return file;
}
