// Small HTTP helpers: bounded JSON bodies, JSON replies, and Server-Sent Events framed exactly as
// OpenAI and vLLM frame them (`data: <json>\n\n` per event, flushed at once, `data: [DONE]\n\n`).
import type { IncomingMessage, ServerResponse } from "node:http";
import { HttpError, badRequest } from "./errors.js";

export const MAX_BODY_BYTES = 32 * 1024 * 1024;

export async function readJson(req: IncomingMessage, limit = MAX_BODY_BYTES): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const buf = chunk as Buffer;
    size += buf.length;
    if (size > limit) throw new HttpError(413, `request body exceeds ${limit} bytes`, "BadRequestError");
    chunks.push(buf);
  }
  const text = Buffer.concat(chunks).toString("utf8");
  if (!text.trim()) throw badRequest("the request body is empty; send a JSON object");
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw badRequest(`the request body is not valid JSON: ${(err as Error).message}`);
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const data = JSON.stringify(body);
  res.writeHead(status, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(data) });
  res.end(data);
}

export function sendText(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, { "Content-Type": "text/plain; charset=utf-8", "Content-Length": Buffer.byteLength(text) });
  res.end(text);
}

/** One SSE response. Events are written (and so flushed) one by one; nothing is buffered here. */
export class SseStream {
  private started = false;
  private ended = false;

  constructor(private readonly res: ServerResponse) {}

  private start(): void {
    if (this.started) return;
    this.started = true;
    this.res.writeHead(200, { "Content-Type": "text/event-stream", "Cache-Control": "no-cache", Connection: "keep-alive" });
    this.res.flushHeaders();
  }

  send(event: unknown): void {
    if (this.ended || this.res.destroyed) return;
    this.start();
    this.res.write(`data: ${JSON.stringify(event)}\n\n`);
  }

  /** An error after the stream began: vLLM's in-band error event, then [DONE]. */
  error(err: HttpError): void {
    this.send(err.body());
    this.done();
  }

  done(): void {
    if (this.ended || this.res.destroyed) return;
    this.start();
    this.ended = true;
    this.res.end("data: [DONE]\n\n");
  }

  get isStarted(): boolean {
    return this.started;
  }
}

/** What a handler answers with: a JSON body, or a stream. */
export interface Reply {
  json(status: number, body: unknown): void;
  stream(): SseStream;
}
