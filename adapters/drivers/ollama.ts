// Ollama has no runtime LoRA API: an adapter is baked into a new model at creation. So each
// version becomes its own model: the version's `adapter.gguf` is uploaded as a blob
// (`HEAD`/`POST /api/blobs/sha256:<hex>`), then `POST /api/create {model, from: <base>,
// adapters: {"adapter.gguf": "sha256:<hex>"}}` makes `<base>-clawloop:<version>`; an old version is
// unloaded from memory (`keep_alive: 0`) and deleted (`DELETE /api/delete`). Each such model runs
// its own runner with its own copy of the base weights, so a swap costs a model load.
// Ollama's API gives no log-probs of given tokens, so a load is checked by a probe only. Recent
// Ollama releases reportedly refuse to create models with adapters; that refusal is reported as is.
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { GGUF_ADAPTER } from "./files.js";
import { call, errorMessage, serverRoot } from "./http.js";
import { chatProbe } from "./openai.js";
import { DriverError, type AdapterDriver, type DriverCapabilities, type ProbeResult } from "./types.js";
import type { DriverOptions } from "./vllm.js";

const ADAPTER_REFUSED = /adapter/i;

export class OllamaDriver implements AdapterDriver {
  readonly kind = "ollama" as const;
  readonly capabilities: DriverCapabilities = { runtimeLoad: true, score: false, format: "gguf" };
  private readonly root: string;
  private base: string | null;

  constructor(private readonly opts: DriverOptions) {
    this.root = serverRoot(opts.url);
    this.base = opts.baseModel ?? null;
  }

  async baseModel(): Promise<string> {
    if (this.base) return this.base;
    const a = await call(this.root, "GET", "/api/tags", undefined, this.opts);
    const models = ((a.json as { models?: { name?: string; model?: string }[] } | null)?.models ?? [])
      .map((m) => m.model ?? m.name ?? "")
      .filter((n) => n && !n.includes("-clawloop:"));
    if (models.length === 1) return (this.base = models[0]!);
    throw new DriverError(
      `Ollama has ${models.length ? `several models (${models.join(", ")})` : "no model"}; set adapters.baseModel to the one clawloop trains (the model your agent uses)`,
      null,
      true,
    );
  }

  servedName(version: string, base: string): string {
    const repo = base.includes(":") ? base.slice(0, base.lastIndexOf(":")) : base;
    return `${repo}-${this.opts.prefix ?? "clawloop"}:${version}`;
  }

  requestModel(servedName: string): string {
    return servedName;
  }

  async load(servedName: string, dir: string): Promise<void> {
    const base = await this.baseModel();
    const file = path.join(dir, GGUF_ADAPTER);
    let bytes: Buffer;
    try {
      bytes = fs.readFileSync(file);
    } catch {
      throw new DriverError(`${file} is missing: Ollama needs a GGUF LoRA (train.gguf "auto" with a .gguf base, or "always")`, null, true);
    }
    const digest = `sha256:${crypto.createHash("sha256").update(bytes).digest("hex")}`;
    const timeoutMs = this.opts.loadTimeoutMs ?? 300_000;
    const head = await call(this.root, "HEAD", `/api/blobs/${digest}`, undefined, this.opts);
    if (head.status !== 200) {
      const up = await call(this.root, "POST", `/api/blobs/${digest}`, undefined, { ...this.opts, raw: bytes, timeoutMs });
      if (up.status !== 201 && up.status !== 200) throw new DriverError(`uploading ${file} to Ollama → ${up.status}: ${errorMessage(up)}`, up.status);
    }
    const created = await call(
      this.root,
      "POST",
      "/api/create",
      { model: servedName, from: base, adapters: { [GGUF_ADAPTER]: digest }, stream: false },
      { ...this.opts, timeoutMs },
    );
    if (created.status === 200 && !(created.json as { error?: unknown } | null)?.error) return;
    const message = errorMessage(created);
    if (ADAPTER_REFUSED.test(message)) {
      throw new DriverError(
        `Ollama refused to create ${servedName} with the adapter (${message}). Ollama releases from v0.34.1 reportedly no longer create ` +
          `models with ADAPTER; use clawloop's embedded engine (clawloop up --model <base>.gguf) or an Ollama release that still does.`,
        created.status,
        true,
      );
    }
    throw new DriverError(`creating ${servedName} from ${base} with ${file} → ${created.status}: ${message}`, created.status);
  }

  async unload(servedName: string): Promise<void> {
    // Free its runner now rather than after Ollama's keep-alive, then forget the model.
    await call(this.root, "POST", "/api/generate", { model: servedName, keep_alive: 0 }, this.opts).catch(() => undefined);
    const a = await call(this.root, "DELETE", "/api/delete", { model: servedName }, this.opts);
    if (a.status === 200 || a.status === 404) return;
    throw new DriverError(`deleting ${servedName} → ${a.status}: ${errorMessage(a)}`, a.status);
  }

  async loaded(): Promise<string[]> {
    const a = await call(this.root, "GET", "/api/tags", undefined, this.opts);
    const models = (a.json as { models?: { name?: string; model?: string }[] } | null)?.models ?? [];
    return models.map((m) => m.model ?? m.name ?? "").filter((n) => n.includes(`-${this.opts.prefix ?? "clawloop"}:`));
  }

  probe(model: string): Promise<ProbeResult> {
    return chatProbe(this.root, model, this.opts);
  }

  async score(): Promise<null> {
    return null;
  }
}
