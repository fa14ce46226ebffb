// `clawloop serve`: the embedded llama.cpp engine, an OpenAI-compatible server (vLLM's dialect for
// token ids, log-probs and LoRA loading) for users who run no model server of their own.
import path from "node:path";
import { Command } from "commander";
import { createLogger, type ConfigOverrides } from "../../core/index.js";
import { ensureModel, startServer } from "../../serve/index.js";
import { configFrom, onShutdown, withCommonOptions, type CommonFlags } from "../shared.js";

interface ServeFlags extends CommonFlags {
  model?: string;
  port?: string;
  host?: string;
  lora: string[];
  ctxSize?: string;
  parallel?: string;
  threads?: string;
  servedModelName?: string;
  cpu?: boolean;
}

/** `name=path` or a path (named after its directory or file: `v000003`, `adapter` …). */
export function parseLoraFlag(value: string): { name: string; path: string } {
  const eq = value.indexOf("=");
  if (eq > 0 && !value.slice(0, eq).includes(path.sep)) return { name: value.slice(0, eq), path: value.slice(eq + 1) };
  const resolved = path.resolve(value);
  const base = path.basename(resolved);
  const name = base === "adapter.gguf" ? path.basename(path.dirname(resolved)) : base.replace(/\.gguf$/i, "");
  return { name, path: value };
}

export function register(program: Command): void {
  withCommonOptions(
    program
      .command("serve")
      .description("Serve a GGUF model with the embedded llama.cpp engine (OpenAI-compatible, on /v1).")
      .option("--model <path|name>", "GGUF file, or a known model name (smollm2), fetched when missing")
      .option("--port <port>", "port to listen on (default 11436; 0 picks a free one)")
      .option("--host <host>", "address to listen on (default 127.0.0.1)")
      .option("--lora <dir|file|name=path>", "load a LoRA adapter at start (repeatable)", (v: string, all: string[]) => [...all, v], [])
      .option("--ctx-size <n>", "context tokens per parallel request (default 4096)")
      .option("--parallel <n>", "requests generated at once per model or adapter; more wait in line (default 4)")
      .option("--threads <n>", "CPU threads (default: the physical cores)")
      .option("--served-model-name <name>", "the model name clients send (default: the file name)")
      .option("--cpu", "never use a GPU"),
  ).action(async (flags: ServeFlags) => {
    const serve: NonNullable<ConfigOverrides["serve"]> = {};
    if (flags.model) serve.model = flags.model;
    if (flags.port !== undefined) serve.port = Number(flags.port);
    if (flags.host) serve.host = flags.host;
    if (flags.ctxSize !== undefined) serve.contextSize = Number(flags.ctxSize);
    if (flags.parallel !== undefined) serve.parallel = Number(flags.parallel);
    if (flags.threads !== undefined) serve.threads = Number(flags.threads);
    const config = configFrom(flags, { serve });
    const log = createLogger("serve", config.logLevel);
    if (!config.serve.model) throw new Error("no model: pass --model PATH.gguf (or --model smollm2)");
    const modelPath = await ensureModel(config.serve.model, { dataDir: config.dataDir, logger: log });
    const server = await startServer({
      model: modelPath,
      servedModelName: flags.servedModelName ?? (modelPath === path.resolve(config.serve.model) ? null : config.serve.model),
      host: config.serve.host,
      port: config.serve.port,
      contextSize: config.serve.contextSize,
      parallel: config.serve.parallel,
      threads: config.serve.threads,
      gpu: flags.cpu ? false : "auto",
      loras: flags.lora.map(parseLoraFlag),
      logger: log,
    });
    process.stdout.write(`clawloop serve: ${server.engine.name} on ${server.url}/v1\n`);
    onShutdown(() => server.close());
  });
}
