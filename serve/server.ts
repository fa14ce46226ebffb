// The embedded engine's HTTP server: OpenAI's endpoints in vLLM's dialect.
//
//   POST /v1/chat/completions, /v1/completions    generation (streamed or not)
//   GET  /v1/models                               the base model and loaded adapters (`parent` = base)
//   POST /v1/load_lora_adapter {lora_name, lora_path[, load_inplace]}   vLLM's runtime LoRA API
//   POST /v1/unload_lora_adapter {lora_name}
//   POST /tokenize, /detokenize                   vLLM's tokenizer endpoints
//   GET  /health                                  200 {"status":"ok"} once the model is loaded
//   GET  /version                                 {"engine":"clawloop","version":…,"model":…}
//
// Identification (for the sidecar's upstream-kind detection): every response carries the header
// `X-Clawloop-Engine: <version>`, and `GET /version` answers with `"engine": "clawloop"` (vLLM's
// /version has only `version`).
import http from "node:http";
import type { AddressInfo } from "node:net";
import { z } from "zod";
import { silentLogger, type Logger } from "../core/index.js";
import { handleChat, type HandlerContext } from "./chat.js";
import { handleCompletion } from "./completions.js";
import { Engine, type AdapterInfo, type EngineOptions } from "./engine.js";
import { AbortedError, HttpError, notFound } from "./errors.js";
import { readJson, sendJson, sendText, SseStream, type Reply } from "./http.js";
import { parseBody } from "./params.js";
import { detokenize, tokenize } from "./tokenize.js";
import { engineVersion } from "./version.js";

export const ENGINE_HEADER = "X-Clawloop-Engine";

export interface ServeOptions extends EngineOptions {
  host?: string;
  /** 0: any free port. */
  port?: number;
  /** Adapters to load at start: `{name, path}` (path: a version directory or a .gguf file). */
  loras?: { name: string; path: string }[];
  /** How long `close()` lets running requests finish before cancelling them. */
  drainMs?: number;
}

export interface RunningServer {
  /** `http://host:port` (no `/v1`). */
  url: string;
  host: string;
  port: number;
  engine: Engine;
  loadAdapter(name: string, path: string, opts?: { replace?: boolean }): Promise<AdapterInfo>;
  unloadAdapter(name: string): void;
  /** Stops accepting requests, lets running ones finish (up to `drainMs`), frees the model. */
  close(): Promise<void>;
}

const loadSchema = z.looseObject({ lora_name: z.string().nullish(), lora_path: z.string().nullish(), load_inplace: z.boolean().nullish() });
const unloadSchema = z.looseObject({ lora_name: z.string().nullish() });

/** Loads the model and serves it; resolves once listening. */
export async function startServer(opts: ServeOptions): Promise<RunningServer> {
  const log = opts.logger ?? silentLogger;
  const engine = await Engine.load(opts);
  try {
    for (const l of opts.loras ?? []) await engine.loadAdapter(l.name, l.path);
  } catch (err) {
    await engine.close();
    throw err instanceof HttpError ? new Error(`--lora ${opts.loras?.map((l) => l.path).join(", ")}: ${err.message}`) : err;
  }
  const version = engineVersion();
  const active = new Set<AbortController>();
  let closing: Promise<void> | null = null;

  const server = http.createServer((req, res) => {
    res.setHeader(ENGINE_HEADER, version);
    const controller = new AbortController();
    active.add(controller);
    // The client going away (before we finished) cancels the generation.
    res.on("close", () => {
      if (!res.writableFinished) controller.abort();
      active.delete(controller);
    });
    route(req, res, controller.signal).catch((err: unknown) => {
      if (err instanceof AbortedError || controller.signal.aborted) {
        if (!res.headersSent) res.destroy();
        return;
      }
      const httpErr = err instanceof HttpError ? err : new HttpError(500, (err as Error).message ?? String(err));
      if (httpErr.status >= 500) log.error({ err, url: req.url }, "request failed");
      if (res.headersSent) res.end();
      else sendJson(res, httpErr.status, httpErr.body());
    });
  });
  server.keepAliveTimeout = 65_000;

  async function route(req: http.IncomingMessage, res: http.ServerResponse, signal: AbortSignal): Promise<void> {
    const url = new URL(req.url ?? "/", "http://localhost");
    const p = url.pathname.replace(/\/+$/, "") || "/";
    const method = req.method ?? "GET";
    const reply: Reply = { json: (status, body) => sendJson(res, status, body), stream: () => new SseStream(res) };
    const ctx: HandlerContext = { engine, signal, reply };
    if (closing && p !== "/health") throw new HttpError(503, "the server is shutting down", "ServiceUnavailableError");
    const post = async (fn: (body: unknown) => Promise<void> | void) => {
      if (method !== "POST") throw new HttpError(405, `${p} takes POST`, "MethodNotAllowed");
      await fn(await readJson(req));
    };
    const get = (fn: () => void) => {
      if (method !== "GET" && method !== "HEAD") throw new HttpError(405, `${p} takes GET`, "MethodNotAllowed");
      fn();
    };
    switch (p) {
      case "/v1/chat/completions":
        return post((body) => handleChat(ctx, body));
      case "/v1/completions":
        return post((body) => handleCompletion(ctx, body));
      case "/tokenize":
        return post((body) => sendJson(res, 200, tokenize(engine, body)));
      case "/detokenize":
        return post((body) => sendJson(res, 200, detokenize(engine, body)));
      case "/v1/load_lora_adapter":
        return post(async (body) => {
          const r = parseBody(loadSchema, body);
          await engine.loadAdapter(r.lora_name ?? "", r.lora_path ?? "", { replace: r.load_inplace ?? false });
          sendText(res, 200, `Success: LoRA adapter '${r.lora_name}' added successfully.`);
        });
      case "/v1/unload_lora_adapter":
        return post((body) => {
          const r = parseBody(unloadSchema, body);
          engine.unloadAdapter(r.lora_name ?? "");
          sendText(res, 200, `Success: LoRA adapter '${r.lora_name}' removed successfully.`);
        });
      case "/v1/models":
        return get(() => sendJson(res, 200, modelList(engine)));
      case "/health":
        return get(() => sendJson(res, closing ? 503 : 200, { status: closing ? "shutting_down" : "ok" }));
      case "/version":
        return get(() => sendJson(res, 200, { engine: "clawloop", version, model: engine.name }));
      default:
        throw notFound(`no route ${method} ${p}`);
    }
  }

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, opts.host ?? "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  const host = opts.host ?? "127.0.0.1";
  const urlHost = addr.family === "IPv6" ? `[${addr.address}]` : addr.address;
  const url = `http://${urlHost === "0.0.0.0" || urlHost === "[::]" ? "127.0.0.1" : urlHost}:${addr.port}`;
  log.info({ url, served: engine.name }, "serving");

  const close = (): Promise<void> => {
    closing ??= (async () => {
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const deadline = Date.now() + (opts.drainMs ?? 10_000);
      while (active.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      for (const c of active) c.abort();
      server.closeAllConnections();
      await stopped;
      await engine.close();
    })();
    return closing;
  };

  return {
    url,
    host,
    port: addr.port,
    engine,
    loadAdapter: (name, path, o) => engine.loadAdapter(name, path, o),
    unloadAdapter: (name) => engine.unloadAdapter(name),
    close,
  };
}

function modelList(engine: Engine) {
  const base = {
    id: engine.name,
    object: "model",
    created: engine.createdAt,
    owned_by: "clawloop",
    root: engine.modelPath,
    parent: null,
    max_model_len: engine.contextSize,
    permission: [],
  };
  const adapters = engine.adapters().map((a) => ({
    id: a.name,
    object: "model",
    created: Math.floor(Date.parse(a.loadedAt) / 1000),
    owned_by: "clawloop",
    root: a.path,
    parent: engine.name,
    max_model_len: engine.contextSize,
    permission: [],
  }));
  return { object: "list", data: [base, ...adapters] };
}
