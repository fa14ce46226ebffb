// The drivers' HTTP calls: JSON in, JSON or text out, bounded by a timeout, errors with the
// server's own message (vLLM/OpenAI `{"error":{"message"}}`, SGLang `error_message`, Ollama
// `{"error"}`, or the raw text).
import { DriverError } from "./types.js";

export interface HttpOptions {
  apiKey?: string | null;
  timeoutMs?: number;
}

export interface HttpAnswer {
  status: number;
  text: string;
  json: unknown;
}

/** The server root without a trailing slash or `/v1`. */
export function serverRoot(url: string): string {
  return url.replace(/\/+$/, "").replace(/\/v1$/, "");
}

export function errorMessage(a: HttpAnswer): string {
  const j = a.json as Record<string, unknown> | null;
  if (j && typeof j === "object") {
    const e = j.error;
    if (typeof e === "string") return e;
    if (e && typeof e === "object" && typeof (e as { message?: unknown }).message === "string") return (e as { message: string }).message;
    if (typeof j.error_message === "string" && j.error_message) return j.error_message;
    if (typeof j.message === "string") return j.message;
    if (typeof j.detail === "string") return j.detail;
  }
  return a.text.slice(0, 500) || `HTTP ${a.status}`;
}

export async function call(
  root: string,
  method: string,
  path: string,
  body: unknown,
  opts: HttpOptions & { raw?: Uint8Array; headers?: Record<string, string> } = {},
): Promise<HttpAnswer> {
  const headers: Record<string, string> = { accept: "application/json", ...opts.headers };
  if (opts.apiKey) headers.authorization = `Bearer ${opts.apiKey}`;
  let payload: RequestInit["body"];
  if (opts.raw) {
    payload = opts.raw as unknown as RequestInit["body"];
    headers["content-type"] ??= "application/octet-stream";
  } else if (body !== undefined) {
    payload = JSON.stringify(body);
    headers["content-type"] = "application/json";
  }
  const timeoutMs = opts.timeoutMs ?? 60_000;
  let res: Response;
  try {
    res = await fetch(`${root}${path}`, { method, headers, body: payload, signal: AbortSignal.timeout(timeoutMs) });
  } catch (err) {
    const e = err as Error;
    const why = e.name === "TimeoutError" ? `no answer within ${timeoutMs} ms` : ((e.cause as Error | undefined)?.message ?? e.message);
    throw new DriverError(`${method} ${root}${path}: ${why}`);
  }
  const text = await res.text();
  let json: unknown = null;
  try {
    json = text ? (JSON.parse(text) as unknown) : null;
  } catch {
    json = null;
  }
  return { status: res.status, text, json };
}

/** `call` that throws a DriverError (with the server's message) on a non-2xx status. */
export async function callOk(root: string, method: string, path: string, body: unknown, opts: Parameters<typeof call>[4] = {}): Promise<HttpAnswer> {
  const a = await call(root, method, path, body, opts);
  if (a.status < 200 || a.status >= 300) throw new DriverError(`${method} ${path} → ${a.status}: ${errorMessage(a)}`, a.status);
  return a;
}
