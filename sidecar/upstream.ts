// The model server behind the sidecar: where it is, a keep-alive connection pool to it, what kind
// of server it is (detected from its endpoints, or configured), and whether it answers.
import { EventEmitter } from "node:events";
import http from "node:http";
import https from "node:https";
import type { Logger, UpstreamKind } from "../core/index.js";

export interface UpstreamOptions {
  /** Configured kind; "auto" (or null) detects it. */
  kind?: UpstreamKind | "auto" | null;
  /** Key for the sidecar's own probes; never stored. */
  apiKey?: string | null;
  probeTimeoutMs?: number;
  logger?: Logger;
}

export interface UpstreamHealth {
  ok: boolean;
  status: number | null;
  latencyMs: number | null;
  error: string | null;
  checkedAt: string;
}

interface Probe {
  status: number;
  json: unknown;
  text: string;
}

/** How long an unknown kind waits before detection is tried again. */
const REDETECT_MS = 5_000;

export class Upstream {
  /** The server's root (any `/v1` suffix removed), without a trailing slash. */
  readonly root: URL;
  readonly agent: http.Agent;
  private readonly client: typeof http | typeof https;
  private readonly basePath: string;
  private kindValue: UpstreamKind | null;
  readonly kindConfigured: boolean;
  private detecting: Promise<UpstreamKind | null> | null = null;
  private lastDetectAt = 0;
  /** Outcome of the last exchange (proxied or probe): 1 answered, 0 did not. */
  healthy = 1;
  lastError: string | null = null;

  constructor(
    url: string,
    private readonly opts: UpstreamOptions = {},
  ) {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new Error(`upstream "${url}" is not a URL (expected e.g. http://127.0.0.1:8000 or http://127.0.0.1:8000/v1)`);
    }
    if (parsed.protocol !== "http:" && parsed.protocol !== "https:") throw new Error(`upstream "${url}" must be http:// or https://`);
    parsed.pathname = parsed.pathname.replace(/\/+$/, "").replace(/\/v1$/, "");
    parsed.search = "";
    parsed.hash = "";
    this.root = parsed;
    this.basePath = parsed.pathname === "/" ? "" : parsed.pathname;
    this.client = parsed.protocol === "https:" ? https : http;
    const agentOpts = { keepAlive: true, keepAliveMsecs: 10_000, maxSockets: Infinity, maxFreeSockets: 256, scheduling: "lifo" as const };
    this.agent = parsed.protocol === "https:" ? new https.Agent(agentOpts) : new http.Agent(agentOpts);
    const k = opts.kind ?? null;
    this.kindConfigured = k !== null && k !== "auto";
    this.kindValue = this.kindConfigured ? (k as UpstreamKind) : null;
  }

  get url(): string {
    return this.root.toString().replace(/\/$/, "");
  }

  /** The kind, or null while unknown. Never waits: an unknown kind is looked for in the background. */
  get kind(): UpstreamKind | null {
    if (this.kindValue === null && !this.detecting && Date.now() - this.lastDetectAt > REDETECT_MS) void this.detect();
    return this.kindValue;
  }

  /** Where a client path (`/v1/…?q`) goes on the upstream. */
  path(clientPath: string): string {
    return this.basePath + clientPath;
  }

  /** A request through the keep-alive pool, or (`pooled` false) on a connection of its own. */
  request(method: string, clientPath: string, headers: http.OutgoingHttpHeaders, pooled = true): http.ClientRequest {
    const req = this.client.request({
      protocol: this.root.protocol,
      hostname: this.root.hostname,
      port: this.root.port || undefined,
      method,
      path: this.path(clientPath),
      headers,
      agent: pooled ? this.agent : false,
    });
    req.setNoDelay(true);
    return req;
  }

  /**
   * `request` for a body in hand, sent once more (on a connection of its own) when a kept-alive
   * connection turns out to be closed: the request failed on a reused socket before any answer.
   * llama-server closes its connection after every streamed answer while its headers announce
   * keep-alive, so the call after a stream would otherwise often fail.
   */
  send(method: string, clientPath: string, headers: http.OutgoingHttpHeaders, body: Buffer): UpstreamCall {
    return new UpstreamCall((fresh) => this.request(method, clientPath, headers, !fresh), body);
  }

  /** The `host` header the upstream expects. */
  get host(): string {
    return this.root.host;
  }

  noteAnswer(): void {
    this.healthy = 1;
    this.lastError = null;
  }

  noteFailure(err: string): void {
    this.healthy = 0;
    this.lastError = err;
  }

  private probe(path: string, timeoutMs = this.opts.probeTimeoutMs ?? 2_000): Promise<Probe | null> {
    return new Promise((resolve) => {
      const headers: http.OutgoingHttpHeaders = { accept: "application/json" };
      if (this.opts.apiKey) headers.authorization = `Bearer ${this.opts.apiKey}`;
      const req = this.send("GET", path, headers, Buffer.alloc(0));
      const timer = setTimeout(() => req.destroy(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
      req.on("response", (res) => {
        const parts: Buffer[] = [];
        let size = 0;
        res.on("data", (c: Buffer) => {
          size += c.length;
          if (size <= 1 << 20) parts.push(c);
        });
        res.on("end", () => {
          clearTimeout(timer);
          const text = Buffer.concat(parts).toString("utf8");
          let json: unknown = null;
          try {
            json = JSON.parse(text);
          } catch {
            json = null;
          }
          resolve({ status: res.statusCode ?? 0, json, text });
        });
        res.on("error", () => {
          clearTimeout(timer);
          resolve(null);
        });
      });
      req.on("error", () => {
        clearTimeout(timer);
        resolve(null);
      });
    });
  }

  /**
   * Looks at the server's endpoints: clawloop's engine names itself in `/version`; SGLang answers
   * `/get_model_info`; llama-server `/props`; Ollama `/api/version`; vLLM `/version` and
   * `owned_by:"vllm"` in `/v1/models`. A server that answers but is none of these is `openai`
   * (any OpenAI-compatible API); one that does not answer stays unknown and is asked again later.
   */
  detect(): Promise<UpstreamKind | null> {
    if (this.kindConfigured) return Promise.resolve(this.kindValue);
    if (this.detecting) return this.detecting;
    this.detecting = (async () => {
      const [models, version, sglang, props, ollama] = await Promise.all([
        this.probe("/v1/models"),
        this.probe("/version"),
        this.probe("/get_model_info"),
        this.probe("/props"),
        this.probe("/api/version"),
      ]);
      const ok = (p: Probe | null): p is Probe => p !== null && p.status >= 200 && p.status < 300;
      const obj = (p: Probe | null): Record<string, unknown> | null =>
        ok(p) && p.json && typeof p.json === "object" && !Array.isArray(p.json) ? (p.json as Record<string, unknown>) : null;
      const owners = new Set<string>();
      const data = obj(models)?.data;
      if (Array.isArray(data)) for (const m of data) if (m && typeof m.owned_by === "string") owners.add(m.owned_by);
      const v = obj(version);
      let kind: UpstreamKind | null = null;
      if (v?.engine === "clawloop" || owners.has("clawloop")) kind = "clawloop";
      else if (obj(sglang)?.model_path !== undefined || owners.has("sglang")) kind = "sglang";
      else if (obj(props)?.default_generation_settings !== undefined || owners.has("llamacpp")) kind = "llamacpp";
      else if (typeof obj(ollama)?.version === "string" || owners.has("ollama")) kind = "ollama";
      else if (owners.has("vllm") || (typeof v?.version === "string" && ok(models))) kind = "vllm";
      else if ([models, version, sglang, props, ollama].some((p) => p !== null)) kind = "openai";
      this.lastDetectAt = Date.now();
      if (kind) {
        this.kindValue = kind;
        this.noteAnswer();
        this.opts.logger?.info({ upstream: this.url, kind }, "upstream kind detected");
      } else {
        this.noteFailure("upstream did not answer kind detection");
        this.opts.logger?.warn({ upstream: this.url }, "upstream not reachable; kind unknown (no token capture until it answers)");
      }
      return kind;
    })().finally(() => {
      this.detecting = null;
    });
    return this.detecting;
  }

  /** A quick look: does `/v1/models` answer? */
  async health(timeoutMs = 1_500): Promise<UpstreamHealth> {
    const t0 = performance.now();
    const p = await this.probe("/v1/models", timeoutMs);
    const latencyMs = Math.round((performance.now() - t0) * 100) / 100;
    const checkedAt = new Date().toISOString();
    if (!p) {
      this.noteFailure("no answer from /v1/models");
      return { ok: false, status: null, latencyMs: null, error: this.lastError, checkedAt };
    }
    this.noteAnswer();
    return { ok: p.status < 500, status: p.status, latencyMs, error: p.status < 500 ? null : p.text.slice(0, 500), checkedAt };
  }

  close(): void {
    this.agent.destroy();
  }
}

/** What a stale kept-alive socket fails with: the server had closed it. */
const STALE_SOCKET = new Set(["ECONNRESET", "EPIPE"]);

/**
 * One upstream call, as `Upstream.send` makes it: emits `response` and `error` like a
 * `ClientRequest`, and tries a second time when the first died on a reused socket before any
 * answer (nothing reached the model then, so nothing is sent twice).
 */
export class UpstreamCall extends EventEmitter<{ response: [http.IncomingMessage]; error: [Error] }> {
  private current: http.ClientRequest;
  private destroyed = false;

  constructor(
    private readonly start: (fresh: boolean) => http.ClientRequest,
    private readonly body: Buffer,
  ) {
    super();
    this.current = this.attempt(false);
  }

  private attempt(fresh: boolean): http.ClientRequest {
    const req = this.start(fresh);
    let answered = false;
    req.on("response", (res) => {
      answered = true;
      this.emit("response", res);
    });
    req.on("error", (err: NodeJS.ErrnoException) => {
      if (!fresh && !answered && !this.destroyed && req.reusedSocket && STALE_SOCKET.has(err.code ?? "")) {
        this.current = this.attempt(true);
        return;
      }
      this.emit("error", err);
    });
    req.end(this.body);
    return req;
  }

  destroy(err?: Error): this {
    this.destroyed = true;
    this.current.destroy(err);
    return this;
  }
}
