// llama.cpp's `llama-server` loads LoRA files only at start (`--lora FILE`); at run time it can only
// rescale them (`POST /lora-adapters`). clawloop does not manage the llama-server process (it may
// run under systemd, docker or another supervisor, with flags we cannot know), so this driver does
// not restart it. Instead a version counts as loaded when the running server reports its
// `adapter.gguf` in `GET /lora-adapters` with a non-zero scale; until then the version waits, and
// `clawloop status` says which command brings it in:
//   llama-server -m BASE.gguf --lora <data>/adapters/vNNNNNN/adapter.gguf …
// (For hot-loading without restarts, `clawloop up --model BASE.gguf` runs the same llama.cpp
// in-process with runtime loading.) llama-server applies its adapters to every request, so the
// request model is the base name, and it gives no prompt log-probs, so a load is checked by a probe.
import fs from "node:fs";
import path from "node:path";
import { GGUF_ADAPTER } from "./files.js";
import { call, errorMessage, serverRoot } from "./http.js";
import { chatProbe, discoverBase } from "./openai.js";
import { DriverError, type AdapterDriver, type DriverCapabilities, type ProbeResult } from "./types.js";
import type { DriverOptions } from "./vllm.js";

interface LoraEntry {
  id: number;
  path: string;
  scale: number;
}

function samePath(a: string, b: string): boolean {
  const real = (p: string) => {
    try {
      return fs.realpathSync(p);
    } catch {
      return path.resolve(p);
    }
  };
  return real(a) === real(b);
}

export class LlamaCppDriver implements AdapterDriver {
  readonly kind = "llamacpp" as const;
  readonly capabilities: DriverCapabilities = { runtimeLoad: false, score: false, format: "gguf" };
  private readonly root: string;
  private base: string | null;

  constructor(private readonly opts: DriverOptions) {
    this.root = serverRoot(opts.url);
    this.base = opts.baseModel ?? null;
  }

  async baseModel(): Promise<string> {
    this.base ??= await discoverBase(this.root, this.opts);
    return this.base;
  }

  servedName(version: string): string {
    return `${this.opts.prefix ?? "clawloop"}-${version}`;
  }

  /** llama-server applies its start-up adapters to every request, whatever `model` says. */
  requestModel(_servedName: string, base: string): string {
    return base;
  }

  private async adapters(): Promise<LoraEntry[]> {
    const a = await call(this.root, "GET", "/lora-adapters", undefined, this.opts);
    if (a.status !== 200 || !Array.isArray(a.json)) throw new DriverError(`GET /lora-adapters → ${a.status}: ${errorMessage(a)}`, a.status);
    return a.json as LoraEntry[];
  }

  async load(_servedName: string, dir: string): Promise<void> {
    const file = path.join(dir, GGUF_ADAPTER);
    const entries = await this.adapters();
    const mine = entries.find((e) => samePath(e.path, file));
    if (mine && mine.scale !== 0) {
      const others = entries.filter((e) => e !== mine && e.scale !== 0);
      if (!others.length) return;
      throw new DriverError(`llama-server also applies ${others.map((e) => e.path).join(", ")}; start it with this version's adapter only`, null, true);
    }
    throw new DriverError(
      `llama-server cannot load adapters at run time; restart it with --lora ${file} (or use the embedded engine: clawloop up --model <base>.gguf)`,
      null,
      true,
    );
  }

  async unload(): Promise<void> {
    // Nothing to do: the adapter leaves with the next restart of llama-server.
  }

  async loaded(): Promise<string[]> {
    return (await this.adapters()).filter((e) => e.scale !== 0).map((e) => e.path);
  }

  probe(model: string): Promise<ProbeResult> {
    return chatProbe(this.root, model, this.opts);
  }

  async score(): Promise<null> {
    return null;
  }
}
