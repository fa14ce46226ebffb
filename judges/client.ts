// A small client for OpenAI-compatible servers (vLLM's dialect for the extras): every call has a
// timeout, and failures that may pass (network errors, timeouts, 408/429/5xx) are retried with
// exponential backoff and jitter, honouring Retry-After. Other 4xx are returned at once.
import type { ChatCompletionRequest, ChatCompletionResponse, CompletionRequest } from "../core/index.js";

export interface ClientOptions {
  /** Server base URL, with or without a trailing `/v1`. */
  baseUrl: string;
  apiKey?: string | null;
  /** Per request; Node's fetch caps the wait for response headers at 300 s. */
  timeoutMs: number;
  retries: number;
  /** First backoff delay; doubles per attempt, capped at `maxBackoffMs`. */
  backoffMs?: number;
  maxBackoffMs?: number;
  /** Stops waits and requests at once (shutdown). */
  signal?: AbortSignal;
}

export class EndpointError extends Error {
  constructor(
    message: string,
    readonly status: number | null,
    readonly retryable: boolean,
    /** From a Retry-After header. */
    readonly retryAfterMs: number | null = null,
  ) {
    super(message);
  }
}

/** `http://h:8000/v1/` → `http://h:8000`. */
export function normalizeBaseUrl(url: string): string {
  return url.trim().replace(/\/+$/, "").replace(/\/v1$/, "");
}

const RETRYABLE_STATUS = new Set([408, 425, 429, 500, 502, 503, 504]);
/** Node's fetch (undici) waits at most this long for response headers, whatever `timeoutMs` says. */
const FETCH_LIMIT_MS = 300_000;

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal!.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

export interface ModelInfo {
  id: string;
  /** vLLM lists LoRA adapters with the base model as `parent`. */
  parent?: string | null;
  [k: string]: unknown;
}

/** Completion choice fields the log-prob judge reads (vLLM's names). */
export interface CompletionChoice {
  index: number;
  text?: string;
  /** `[null, {"<token id>": {logprob, rank, decoded_token}}, …]` */
  prompt_logprobs?: (Record<string, { logprob: number; rank?: number | null; decoded_token?: string | null }> | null)[] | null;
  prompt_token_ids?: number[] | null;
  logprobs?: { tokens?: string[]; token_logprobs?: (number | null)[]; top_logprobs?: (Record<string, number> | null)[]; text_offset?: number[] } | null;
  [k: string]: unknown;
}

export interface CompletionResponse {
  choices: CompletionChoice[];
  usage?: { prompt_tokens: number; completion_tokens: number; total_tokens: number } | null;
  [k: string]: unknown;
}

export class OpenAIClient {
  readonly baseUrl: string;

  constructor(private readonly opts: ClientOptions) {
    this.baseUrl = normalizeBaseUrl(opts.baseUrl);
  }

  async models(): Promise<ModelInfo[]> {
    const body = (await this.call("GET", "/v1/models")) as { data?: ModelInfo[] };
    return Array.isArray(body?.data) ? body.data : [];
  }

  async chat(body: ChatCompletionRequest): Promise<ChatCompletionResponse> {
    return (await this.call("POST", "/v1/chat/completions", body)) as ChatCompletionResponse;
  }

  async completions(body: CompletionRequest): Promise<CompletionResponse> {
    return (await this.call("POST", "/v1/completions", body)) as CompletionResponse;
  }

  /** vLLM's `POST /tokenize` (no /v1); null when the server has no such endpoint. */
  async tokenize(body: Record<string, unknown>): Promise<{ tokens: number[] } | null> {
    try {
      return (await this.call("POST", "/tokenize", body, { retries: 0 })) as { tokens: number[] };
    } catch (err) {
      if (err instanceof EndpointError && err.status !== null && [400, 404, 405, 422, 501].includes(err.status)) return null;
      throw err;
    }
  }

  private async call(method: string, path: string, body?: unknown, over: { retries?: number } = {}): Promise<unknown> {
    const retries = over.retries ?? this.opts.retries;
    let lastError: EndpointError | null = null;
    for (let attempt = 0; attempt <= retries; attempt++) {
      if (attempt > 0) await sleep(this.backoff(attempt, lastError), this.opts.signal);
      try {
        return await this.once(method, path, body);
      } catch (err) {
        if (this.opts.signal?.aborted) throw err;
        lastError = err instanceof EndpointError ? err : new EndpointError(String(err), null, true);
        if (!lastError.retryable) throw lastError;
      }
    }
    throw lastError!;
  }

  private backoff(attempt: number, err: EndpointError | null): number {
    const base = this.opts.backoffMs ?? 500;
    const cap = this.opts.maxBackoffMs ?? 10_000;
    if (err?.retryAfterMs != null) return Math.min(err.retryAfterMs, 30_000);
    const exp = Math.min(cap, base * 2 ** (attempt - 1));
    return exp * (0.5 + Math.random() / 2);
  }

  private async once(method: string, path: string, body?: unknown): Promise<unknown> {
    const timeout = AbortSignal.timeout(this.opts.timeoutMs);
    const signal = this.opts.signal ? AbortSignal.any([timeout, this.opts.signal]) : timeout;
    const headers: Record<string, string> = { accept: "application/json" };
    if (body !== undefined) headers["content-type"] = "application/json";
    if (this.opts.apiKey) headers.authorization = `Bearer ${this.opts.apiKey}`;
    let res: Response;
    try {
      res = await fetch(this.baseUrl + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal });
    } catch (err) {
      if (this.opts.signal?.aborted) throw err;
      const cause = (err as { cause?: { code?: string } }).cause?.code;
      // Node's fetch also gives up on its own after 300 s without response headers.
      const timedOut = timeout.aborted || cause === "UND_ERR_HEADERS_TIMEOUT" || cause === "UND_ERR_BODY_TIMEOUT";
      const limit = timeout.aborted ? this.opts.timeoutMs : FETCH_LIMIT_MS;
      throw new EndpointError(
        timedOut ? `${method} ${path}: no answer within ${limit} ms` : `${method} ${path}: ${cause ?? (err as Error).message}`,
        null,
        true,
      );
    }
    let text: string;
    try {
      text = await res.text();
    } catch (err) {
      throw new EndpointError(`${method} ${path}: response cut (${(err as Error).message})`, null, true);
    }
    if (!res.ok) {
      const ra = Number(res.headers.get("retry-after") ?? NaN);
      const retryAfterMs = Number.isFinite(ra) && ra >= 0 ? ra * 1000 : null;
      let message = text.slice(0, 300);
      try {
        const parsed = JSON.parse(text) as { error?: { message?: string } | string; message?: string };
        message = (typeof parsed.error === "string" ? parsed.error : parsed.error?.message) ?? parsed.message ?? message;
      } catch {
        // Not JSON: keep the text.
      }
      throw new EndpointError(`${method} ${path}: HTTP ${res.status}: ${message}`, res.status, RETRYABLE_STATUS.has(res.status), retryAfterMs);
    }
    try {
      return JSON.parse(text);
    } catch {
      throw new EndpointError(`${method} ${path}: response is not JSON: ${text.slice(0, 120)}`, res.status, false);
    }
  }
}
