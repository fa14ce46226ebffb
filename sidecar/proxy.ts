// The transparent proxy. Everything is forwarded as it arrives; `POST /v1/chat/completions` and
// `POST /v1/completions` are also recorded:
//
//   * the request body is read whole (it must be, to tag the call and to ask for token ids), up to
//     `sidecar.maxRecordBytes`; a larger body is streamed through unrecorded;
//   * capture fields are added to the body's text without re-serializing it (sidecar/capture.ts);
//   * a streamed answer goes to the client event by event as it arrives: unchanged bytes when
//     nothing had to be hidden, otherwise each event with only the added fields undone in its text;
//   * the call is journaled in the proxy (sidecar/journal.ts) and the store host builds the row;
//   * the turn is logged before the client gets the stream's `[DONE]` (or the last byte of a
//     non-streamed answer), so a client that saw the answer end can rely on it being recorded;
//   * errors, cuts and aborts are mirrored to the other side and recorded with their status.
import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders, ServerResponse } from "node:http";
import { randomUUID } from "node:crypto";
import zlib from "node:zlib";
import type { Config, Logger, TurnRequest, TurnStatus } from "../core/index.js";
import { ResponseAssembler, errorText } from "./assembler.js";
import { applyStrip, injectFieldsRaw, planCapture, type StripSpec } from "./capture.js";
import type { EndpointLabel, SidecarMetrics } from "./metrics.js";
import type { Placer, Placement } from "./placement.js";
import type { Recorder, Ticket } from "./recorder.js";
import type { SessionBook } from "./sessions.js";
import { DONE, SseSplitter, isDone, parseEvent, replaceData } from "./sse.js";
import type { Route, Switchboard } from "./switchboard.js";
import { stripEvents } from "./strip-text.js";
import { OPENCLAW_RL_BODY_KEYS, readTags, type Tags } from "./tagging.js";
import { turnRequest } from "./turns.js";
import type { Upstream } from "./upstream.js";

type Obj = Record<string, unknown>;

export interface ProxyDeps {
  config: Config["sidecar"];
  upstream: Upstream;
  recorder: Recorder;
  placer: Placer;
  book: SessionBook;
  switchboard: Switchboard;
  metrics: SidecarMetrics;
  logger: Logger;
}

const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-authenticate",
  "proxy-authorization",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
]);

/** Headers for the upstream: the client's, minus hop-by-hop ones, with the upstream's host. */
function upstreamHeaders(headers: IncomingHttpHeaders, host: string, drop: readonly string[] = []): OutgoingHttpHeaders {
  const listed = new Set(
    String(headers.connection ?? "")
      .split(",")
      .map((s) => s.trim().toLowerCase())
      .filter(Boolean),
  );
  const out: OutgoingHttpHeaders = {};
  for (const [k, v] of Object.entries(headers)) {
    if (v === undefined || HOP_BY_HOP.has(k) || listed.has(k) || drop.includes(k)) continue;
    out[k] = v;
  }
  out.host = host;
  return out;
}

/** The upstream's response headers for the client, as a raw list (case, order and repeats kept). */
function clientHeaders(raw: string[], drop: readonly string[] = [], set: Record<string, string> = {}): string[] {
  const out: string[] = [];
  let listed: Set<string> | null = null;
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.toLowerCase() === "connection") {
      listed = new Set(raw[i + 1]!.split(",").map((s) => s.trim().toLowerCase()));
    }
  }
  for (let i = 0; i < raw.length; i += 2) {
    const k = raw[i]!.toLowerCase();
    if (HOP_BY_HOP.has(k) || listed?.has(k) || drop.includes(k) || k in set) continue;
    out.push(raw[i]!, raw[i + 1]!);
  }
  for (const [k, v] of Object.entries(set)) out.push(k, v);
  return out;
}

function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off("drain", done);
      res.off("close", done);
      resolve();
    };
    res.on("drain", done);
    res.on("close", done);
  });
}

/** Lets written bytes reach the socket (http corks writes until the next tick) before a cut. */
function flushed(): Promise<void> {
  return new Promise((r) => setImmediate(r));
}

function isObj(v: unknown): v is Obj {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** The sidecar's own error answer, in OpenAI's error shape. */
function sendProxyError(res: ServerResponse, status: number, message: string, type: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify({ error: { message: `clawloop sidecar: ${message}`, type, param: null, code: status } });
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
  res.end(body);
}

interface BodyRead {
  chunks: Buffer[];
  size: number;
  /** The body is larger than the limit: the rest is still unread. */
  overflow: boolean;
  /** The client went away before the body was complete. */
  aborted: boolean;
}

function readBody(req: IncomingMessage, limit: number): Promise<BodyRead> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const finish = (r: Omit<BodyRead, "chunks" | "size">) => {
      if (settled) return;
      settled = true;
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onAbort);
      req.off("close", onClose);
      resolve({ chunks, size, ...r });
    };
    const onData = (c: Buffer) => {
      chunks.push(c);
      size += c.length;
      if (size > limit) {
        req.pause();
        finish({ overflow: true, aborted: false });
      }
    };
    const onEnd = () => finish({ overflow: false, aborted: false });
    const onAbort = () => finish({ overflow: false, aborted: true });
    const onClose = () => {
      if (!req.complete) onAbort();
    };
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onAbort);
    req.on("close", onClose);
  });
}

function shapeError(json: Obj, endpoint: "chat" | "completions"): string | null {
  if (endpoint === "chat") {
    if (!Array.isArray(json.messages)) return "request has no messages array";
    if (!json.messages.every((m) => isObj(m) && typeof m.role === "string")) return "request messages are not {role, content} objects";
  } else if (json.prompt === undefined) {
    return "request has no prompt";
  }
  return null;
}

/** One recorded call in flight. */
interface Call {
  turnId: string;
  endpoint: "chat" | "completions";
  tags: Tags;
  model: string;
  route: Route;
  /** The client's body as it arrived (the recorded request is built from it off this thread). */
  raw: Buffer;
  requestError: string | null;
  startedAt: string;
  t0: number;
  ttfb: number | null;
  upstreamStatus: number | null;
  assembler: ResponseAssembler;
  /**
   * Streamed events written to the client and not yet read by the assembler. They are read once the
   * event loop's I/O turn is over (see `readLater`), and always before anything reads the assembler.
   */
  unread: Buffer[];
  ticket: Promise<Ticket>;
  recorded: Promise<void> | null;
  clientGone: boolean;
}

export class Proxy {
  private inflightCount = 0;
  private idle: (() => void)[] = [];

  constructor(private readonly deps: ProxyDeps) {}

  get inflight(): number {
    return this.inflightCount;
  }

  /** Resolves once no request is in flight. */
  whenIdle(): Promise<void> {
    if (this.inflightCount === 0) return Promise.resolve();
    return new Promise((r) => this.idle.push(r));
  }

  handle(req: IncomingMessage, res: ServerResponse): void {
    this.inflightCount++;
    this.deps.metrics.inflight.inc();
    res.once("close", () => {
      this.inflightCount--;
      this.deps.metrics.inflight.dec();
      if (this.inflightCount === 0) for (const r of this.idle.splice(0)) r();
    });
    const path = (req.url ?? "/").split("?")[0];
    const endpoint = req.method === "POST" ? (path === "/v1/chat/completions" ? "chat" : path === "/v1/completions" ? "completions" : null) : null;
    if (endpoint) {
      this.recorded(req, res, endpoint).catch((err: unknown) => {
        this.deps.logger.error({ err: String(err) }, "proxy failure");
        sendProxyError(res, 502, `internal error: ${String(err)}`, "proxy_error");
      });
    } else {
      this.passthrough(req, res, null, "passthrough");
    }
  }

  /** Forwards a request untouched, streaming both ways. `head` are body bytes already read. */
  private passthrough(req: IncomingMessage, res: ServerResponse, head: Buffer[] | null, label: EndpointLabel): void {
    const { upstream, metrics, config } = this.deps;
    const t0 = performance.now();
    let ttfb: number | null = null;
    const upReq = upstream.request(req.method ?? "GET", req.url ?? "/", upstreamHeaders(req.headers, upstream.host));
    const timer = setTimeout(() => upReq.destroy(new Error(`no response within ${config.upstreamTimeoutMs} ms`)), config.upstreamTimeoutMs);
    const done = (status: number) => {
      metrics.requests.inc({ endpoint: label, status });
      if (ttfb !== null) metrics.ttfb.observe({ endpoint: label }, ttfb / 1000);
      metrics.duration.observe({ endpoint: label }, (performance.now() - t0) / 1000);
    };
    res.on("close", () => {
      if (!res.writableFinished) upReq.destroy();
    });
    upReq.on("response", (upRes) => {
      clearTimeout(timer);
      upstream.noteAnswer();
      res.writeHead(upRes.statusCode ?? 502, upRes.statusMessage, clientHeaders(upRes.rawHeaders));
      upRes.on("data", (c: Buffer) => {
        if (ttfb === null) ttfb = performance.now() - t0;
        if (!res.write(c)) {
          upRes.pause();
          void drained(res).then(() => upRes.resume());
        }
      });
      upRes.on("end", () => {
        res.end();
        done(upRes.statusCode ?? 0);
      });
      upRes.on("error", () => res.destroy());
      upRes.on("aborted", () => res.destroy());
    });
    upReq.on("error", (err) => {
      clearTimeout(timer);
      if (res.headersSent || res.destroyed) {
        res.destroy();
        return;
      }
      upstream.noteFailure(err.message);
      const timeout = err.message.startsWith("no response within");
      sendProxyError(res, timeout ? 504 : 502, `upstream ${timeout ? "timed out" : "unreachable"}: ${err.message}`, "upstream_error");
      done(0);
    });
    if (head) for (const c of head) upReq.write(c);
    req.pipe(upReq);
  }

  private async recorded(req: IncomingMessage, res: ServerResponse, endpoint: "chat" | "completions"): Promise<void> {
    const { config, upstream, metrics, book, placer, logger } = this.deps;
    const t0 = performance.now();
    const startedAt = new Date().toISOString();
    const body = await readBody(req, config.maxRecordBytes);
    if (body.aborted) {
      // Nothing was asked of the model: nothing to forward or record.
      metrics.unrecorded.inc({ reason: "client_aborted_upload" });
      res.destroy();
      return;
    }
    if (body.overflow) {
      metrics.unrecorded.inc({ reason: "oversized" });
      logger.warn({ bytes: body.size, limit: config.maxRecordBytes }, "request body over sidecar.maxRecordBytes: forwarded, not recorded");
      this.passthrough(req, res, body.chunks, endpoint);
      req.resume();
      return;
    }
    const raw = body.chunks.length === 1 ? body.chunks[0]! : Buffer.concat(body.chunks);
    const { tags, model, route, forward, strip, requestError, json } = this.prepare(req, raw, endpoint);
    const headers = upstreamHeaders(req.headers, upstream.host, ["content-length", "expect"]);
    headers["content-length"] = String(forward.length);
    // A response that may need rewriting must arrive readable.
    if (strip) headers["accept-encoding"] = "identity";
    const upReq = upstream.send("POST", req.url ?? "/", headers, forward);

    const turnId = tags.callId ? book.turnIdFor(tags.callId) : `turn-${randomUUID()}`;
    // Placement and bookkeeping wait for the next turn of the event loop: the request leaves on a
    // socket the agent hands over in a process.nextTick, i.e. only after this function returns, so
    // work done here would delay it. (No response can arrive before then.)
    const ticket = new Promise<Ticket>((resolve) =>
      setImmediate(() => {
        const request = json && !requestError ? turnRequest(json) : null;
        resolve(this.ticket({ turnId, tags, request, model, endpoint, headers: req.headers, placer }));
      }),
    );
    const call: Call = {
      turnId,
      endpoint,
      tags,
      model,
      route,
      raw,
      requestError,
      startedAt,
      t0,
      ttfb: null,
      upstreamStatus: null,
      assembler: new ResponseAssembler(config.maxRecordBytes),
      unread: [],
      ticket,
      recorded: null,
      clientGone: false,
    };
    const timer = setTimeout(() => upReq.destroy(new Error(`no response within ${config.upstreamTimeoutMs} ms`)), config.upstreamTimeoutMs);
    let responded = false;
    res.on("close", () => {
      if (res.writableFinished) return;
      call.clientGone = true;
      upReq.destroy();
      void this.finish(call, "client_aborted", "client disconnected before the response ended");
    });
    upReq.on("error", (err) => {
      clearTimeout(timer);
      if (responded || call.clientGone) return;
      upstream.noteFailure(err.message);
      const timeout = err.message.startsWith("no response within");
      const status = timeout ? 504 : 502;
      void this.finish(call, "upstream_error", `upstream ${timeout ? "timed out" : "unreachable"}: ${err.message}`).then(() =>
        sendProxyError(res, status, `upstream ${timeout ? "timed out" : "unreachable"}: ${err.message}`, "upstream_error"),
      );
    });
    upReq.on("response", (upRes) => {
      responded = true;
      clearTimeout(timer);
      upstream.noteAnswer();
      call.upstreamStatus = upRes.statusCode ?? 0;
      const type = String(upRes.headers["content-type"] ?? "");
      const status = upRes.statusCode ?? 0;
      let relay: Promise<void>;
      if (status < 200 || status >= 300) relay = this.relayError(upRes, res, call);
      else if (type.includes("text/event-stream")) relay = this.relaySse(upRes, res, call, strip);
      else relay = this.relayBody(upRes, res, call, strip);
      relay.catch((err: unknown) => {
        logger.error({ err: String(err), turnId }, "relay failure");
        res.destroy();
      });
    });
  }

  /**
   * Reads the client's body: tags, model, route, and what goes to the upstream. (The parsed body is
   * used for placement and dropped: no closure of a call in flight holds it, so a call does not keep
   * a second copy of an agent's ~40 KB prompt alive.)
   */
  private prepare(
    req: IncomingMessage,
    raw: Buffer,
    endpoint: "chat" | "completions",
  ): { tags: Tags; model: string; route: Route; forward: Buffer; strip: StripSpec | null; requestError: string | null; json: Obj | null } {
    const { config, upstream, switchboard } = this.deps;
    let json: Obj | null = null;
    let requestError: string | null = null;
    try {
      const v: unknown = JSON.parse(raw.toString("utf8"));
      if (isObj(v)) json = v;
      else requestError = "request body is not a JSON object";
    } catch (err) {
      requestError = `request body is not valid JSON: ${(err as Error).message}`;
    }
    if (json && !requestError) requestError = shapeError(json, endpoint);

    const tags = readTags(req.headers, json);
    const model = json && typeof json.model === "string" ? json.model : "";
    const route = switchboard.route(model);
    let forward: Buffer = raw;
    let strip: StripSpec | null = null;
    // A request that is not a usable call (malformed JSON, wrong shape) goes through untouched.
    if (json && !requestError) {
      const body = json;
      const plan = planCapture(upstream.kind, endpoint, body, config.captureLogprobs);
      strip = plan.strip;
      const rlKeys = OPENCLAW_RL_BODY_KEYS.filter((k) => k in body);
      if (rlKeys.length || route.model !== model) {
        const copy: Obj = { ...body };
        for (const k of rlKeys) delete copy[k];
        if (route.model !== model) copy.model = route.model;
        forward = Buffer.from(JSON.stringify({ ...copy, ...plan.add }), "utf8");
      } else if (Object.keys(plan.add).length) {
        forward = injectFieldsRaw(raw, plan.add);
      }
    }
    return { tags, model, route, forward, strip, requestError, json };
  }

  private ticket(input: {
    turnId: string;
    tags: Tags;
    request: TurnRequest | null;
    model: string;
    endpoint: "chat" | "completions";
    headers: IncomingHttpHeaders;
    placer: Placer;
  }): Promise<Ticket> {
    const { book, logger } = this.deps;
    // Closures below keep the turn id only, not the request (the placer has had it).
    const turnId = input.turnId;
    const fallback = (): Placement => ({ sessionId: `untagged-${turnId}`, turnType: "side", placement: "untagged", parentTurnId: null });
    let placed: Placement | Promise<Placement>;
    try {
      placed = input.placer.place(input);
    } catch (err) {
      logger.warn({ err: String(err) }, "placement failed; recording the call as untagged side traffic");
      placed = fallback();
    }
    const ticket = Promise.resolve(placed)
      .catch((err: unknown) => {
        logger.warn({ err: String(err) }, "placement failed; recording the call as untagged side traffic");
        return fallback();
      })
      .then((placement) => ({ placement, seq: book.reserveSeq(placement.sessionId, placement.newSession ?? placement.placement === "untagged") }));
    ticket.catch(() => undefined);
    return ticket;
  }

  /**
   * Records the call once (the first outcome wins) and releases its route. Resolves once the turn
   * is in the log, or after `sidecar.recordWaitMs` if the store is slow or down: the answer goes on
   * and the turn follows when the store is back.
   */
  private finish(call: Call, status: TurnStatus, error: string | null = null): Promise<void> {
    if (call.recorded) return call.recorded;
    this.readNow(call);
    const { metrics, recorder } = this.deps;
    const totalMs = performance.now() - call.t0;
    const assembled = call.assembler.result();
    if (status === "ok" && assembled.error) {
      status = "upstream_error";
      error = assembled.error;
    }
    metrics.requests.inc({ endpoint: call.endpoint, status: call.upstreamStatus ?? 0 });
    if (call.ttfb !== null) metrics.ttfb.observe({ endpoint: call.endpoint }, call.ttfb / 1000);
    metrics.duration.observe({ endpoint: call.endpoint }, totalMs / 1000);
    call.route.release();
    const written = recorder
      .record(
        {
          turnId: call.turnId,
          tags: call.tags,
          endpoint: call.endpoint,
          model: call.model,
          adapter: call.route.adapter,
          rawRequest: call.raw,
          requestError: call.requestError,
          startedAt: call.startedAt,
          ttfbMs: call.ttfb,
          totalMs,
          upstreamStatus: call.upstreamStatus,
          status,
          error,
          assembled: call.upstreamStatus !== null && call.upstreamStatus >= 200 && call.upstreamStatus < 300 ? assembled : null,
        },
        call.ticket,
      )
      .then(() => undefined);
    call.recorded = new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        metrics.recordWaitTimeouts.inc();
        this.deps.logger.warn({ turnId: call.turnId, waitMs: this.deps.config.recordWaitMs }, "the store is slow: answering before the turn is logged");
        resolve();
      }, this.deps.config.recordWaitMs);
      timer.unref();
      void written.then(() => {
        clearTimeout(timer);
        resolve();
      });
    });
    return call.recorded;
  }

  /** Non-2xx: the client gets it byte for byte; the error text is recorded. */
  private async relayError(upRes: IncomingMessage, res: ServerResponse, call: Call): Promise<void> {
    res.writeHead(upRes.statusCode ?? 502, upRes.statusMessage, clientHeaders(upRes.rawHeaders));
    const kept: Buffer[] = [];
    let keptSize = 0;
    try {
      for await (const chunk of upRes as AsyncIterable<Buffer>) {
        if (call.ttfb === null) call.ttfb = performance.now() - call.t0;
        if (keptSize < 64 * 1024) {
          kept.push(chunk);
          keptSize += chunk.length;
        }
        if (!res.write(chunk)) await drained(res);
        if (res.destroyed) return;
      }
    } catch {
      if (call.clientGone) return;
      await this.finish(call, "upstream_cut", `upstream cut the error response (HTTP ${call.upstreamStatus})`);
      res.destroy();
      return;
    }
    const text = Buffer.concat(kept).toString("utf8");
    let message = text.slice(0, 2000);
    try {
      message = errorText(JSON.parse(text));
    } catch {
      // Not JSON: keep the text.
    }
    await this.finish(call, "upstream_error", `HTTP ${call.upstreamStatus}: ${message}`);
    res.end();
  }

  /**
   * A streamed answer: each upstream chunk goes to the client as it arrives, and the turn is logged
   * before the client sees `[DONE]`. A chunk is written first and read after (the assembler's JSON
   * parsing is off the client's path); capture fields to take out are undone in the events' text
   * (sidecar/strip-text.ts), and only an event that text alone cannot settle is parsed first.
   */
  private relaySse(upRes: IncomingMessage, res: ServerResponse, call: Call, strip: StripSpec | null): Promise<void> {
    const encoded = String(upRes.headers["content-encoding"] ?? "identity") !== "identity";
    if (encoded) strip = null;
    res.writeHead(upRes.statusCode ?? 200, upRes.statusMessage, clientHeaders(upRes.rawHeaders, strip ? ["content-length"] : []));
    // The headers leave with the first event when it came with them (one packet, as from the
    // upstream), else as soon as this turn of the event loop is over.
    setImmediate(() => {
      if (!res.headersSent && !res.destroyed) res.flushHeaders();
    });
    const splitter = new SseSplitter();
    // A compressed stream goes to the client as is; the recorder reads a decompressed copy.
    const decoder = encoded ? this.decoder(String(upRes.headers["content-encoding"])) : null;
    if (decoder) {
      decoder.on("data", (c: Buffer) => {
        for (const ev of splitter.push(c)) this.readEvent(ev, call, null);
      });
      decoder.on("error", () => undefined);
    }
    return new Promise<void>((resolve) => {
      let settled = false;
      // Reasons the upstream is paused: a full client socket, or a turn being logged.
      let holds = 0;
      const hold = () => {
        if (holds++ === 0) upRes.pause();
      };
      const release = () => {
        if (--holds === 0 && !settled) upRes.resume();
      };
      const write = (buf: Buffer) => {
        if (buf.length === 0 || res.destroyed || res.write(buf)) return;
        hold();
        void drained(res).then(release);
      };
      const settle = () => {
        settled = true;
        upRes.off("data", onData);
        resolve();
      };
      const onData = (chunk: Buffer) => {
        try {
          relayChunk(chunk);
        } catch (err) {
          // A bug here must cost this call only, never the process.
          this.deps.logger.error({ err: String(err), turnId: call.turnId }, "relay failure");
          settle();
          res.destroy();
          upRes.destroy();
        }
      };
      const relayChunk = (chunk: Buffer) => {
        if (settled) return;
        if (call.ttfb === null) call.ttfb = performance.now() - call.t0;
        if (decoder) {
          decoder.write(chunk);
          write(chunk);
          return;
        }
        const events = splitter.push(chunk);
        let out = chunk;
        // Whether the assembler still has to read the events (after they are written).
        let unread = true;
        if (strip) {
          // The capture fields undone in the events' text; the parser only where that cannot tell.
          const fast = stripEvents(events, strip);
          if (fast) out = fast;
          else {
            // The assembler reads events in order: the ones already queued first.
            this.readNow(call);
            const parts: Buffer[] = [];
            for (const ev of events) {
              const kept = this.readEvent(ev, call, strip);
              if (kept) parts.push(kept);
            }
            out = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
            unread = false;
          }
        }
        const terminal = events.some(isDone);
        if (!terminal) write(out);
        if (unread) this.readLater(call, events);
        if (!terminal) return;
        // The turn is in the log before the client sees the end of the stream.
        hold();
        void this.finish(call, "ok").then(() => {
          write(out);
          release();
        });
      };
      upRes.on("data", onData);
      upRes.once("end", () => {
        if (settled) return;
        void (async () => {
          if (decoder) await new Promise<void>((r) => decoder.end(r));
          const rest = splitter.rest();
          if (rest && !decoder) {
            // A last event without its blank line: pass it on as it came.
            this.readNow(call);
            this.readEvent(rest, call, null);
            write(rest);
          }
          await this.finish(call, "ok");
          res.end();
          settle();
        })();
      });
      // A stream that stops before its end (reset, destroyed): the client sees the same cut.
      const cut = (err: Error | null) => {
        if (settled || upRes.complete) return;
        settle();
        if (call.clientGone) return;
        void this.finish(call, "upstream_cut", `upstream stream cut: ${err?.message ?? "aborted"}`)
          .then(flushed)
          .then(() => res.destroy());
      };
      upRes.once("error", cut);
      upRes.once("close", () => cut(null));
    });
  }

  /**
   * Queues events for the assembler, read once this turn of the event loop has handled its I/O. A
   * client write only leaves in a process.nextTick (Node corks the socket), so parsing right after
   * `res.write` would still hold the event back (the first event of an agent's call, with its ~10k
   * prompt token ids, takes ~0.13 ms to parse). Deferred, the event is on the wire first, and when
   * many streams' events arrive at once (a step of a continuous-batching server), all of them are
   * relayed before any is parsed. (bench:proxy could not tell the difference from its noise.)
   */
  private readLater(call: Call, events: Buffer[]): void {
    if (events.length === 0) return;
    const first = call.unread.length === 0;
    for (const ev of events) call.unread.push(ev);
    if (first) setImmediate(() => this.readNow(call));
  }

  /** Reads the queued events now (anything that reads the assembler, or adds to it, calls this first). */
  private readNow(call: Call): void {
    if (call.unread.length === 0) return;
    const events = call.unread;
    call.unread = [];
    for (const ev of events) this.readEvent(ev, call, null);
  }

  /** Feeds one event to the assembler; with `strip`, returns what the client should get instead (null: nothing). */
  private readEvent(raw: Buffer, call: Call, strip: StripSpec | null): Buffer | null {
    const ev = parseEvent(raw);
    if (ev.data === null) return raw;
    if (ev.data.trim() === DONE) {
      call.assembler.markDone();
      return raw;
    }
    let obj: unknown;
    try {
      obj = JSON.parse(ev.data);
    } catch {
      return raw;
    }
    call.assembler.addChunk(obj);
    if (!strip || ev.dataLines !== 1 || !isObj(obj)) return raw;
    const r = applyStrip(obj, strip, true);
    if (r.drop) return null;
    return r.changed ? replaceData(raw, JSON.stringify(obj)) : raw;
  }

  private decoder(encoding: string): zlib.Gunzip | zlib.Inflate | zlib.BrotliDecompress | null {
    switch (encoding.trim().toLowerCase()) {
      case "gzip":
      case "x-gzip":
        return zlib.createGunzip();
      case "deflate":
        return zlib.createInflate();
      case "br":
        return zlib.createBrotliDecompress();
      default:
        return null;
    }
  }

  /** A whole (non-streamed) answer: read, recorded, undone if needed, then sent. */
  private async relayBody(upRes: IncomingMessage, res: ServerResponse, call: Call, strip: StripSpec | null): Promise<void> {
    const limit = this.deps.config.maxRecordBytes;
    const encoding = String(upRes.headers["content-encoding"] ?? "identity");
    const chunks: Buffer[] = [];
    let size = 0;
    const iter = (upRes as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
    try {
      for (;;) {
        const { value, done } = await iter.next();
        if (done) break;
        if (call.ttfb === null) call.ttfb = performance.now() - call.t0;
        chunks.push(value);
        size += value.length;
        if (size > limit) {
          // Too large to record: stream the rest through.
          this.deps.metrics.unrecorded.inc({ reason: "oversized_response" });
          res.writeHead(upRes.statusCode ?? 200, upRes.statusMessage, clientHeaders(upRes.rawHeaders));
          for (const c of chunks) res.write(c);
          for (;;) {
            const next = await iter.next();
            if (next.done) break;
            if (!res.write(next.value)) await drained(res);
          }
          await this.finish(call, "ok", "response exceeded sidecar.maxRecordBytes; not recorded");
          res.end();
          return;
        }
      }
    } catch (err) {
      if (call.clientGone) return;
      await this.finish(call, "upstream_cut", `upstream cut the response: ${(err as Error).message}`);
      // Mirror the cut: what had arrived (unless it holds fields the client did not ask for, which
      // cannot be taken out of a broken body), then a broken connection.
      if (!res.headersSent) res.writeHead(upRes.statusCode ?? 200, upRes.statusMessage, clientHeaders(upRes.rawHeaders));
      res.flushHeaders();
      if (!strip) for (const c of chunks) res.write(c);
      await flushed();
      res.destroy();
      return;
    }
    const raw = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
    let text: string | null = null;
    try {
      text = encoding === "identity" ? raw.toString("utf8") : this.decodeSync(raw, encoding);
    } catch {
      text = null;
    }
    let obj: unknown = null;
    if (text !== null) {
      try {
        obj = JSON.parse(text);
      } catch {
        obj = null;
      }
    }
    call.assembler.addResponse(obj);
    let out = raw;
    if (strip && encoding === "identity" && isObj(obj)) {
      const r = applyStrip(obj, strip, false);
      if (r.changed) out = Buffer.from(JSON.stringify(obj), "utf8");
    }
    await this.finish(call, "ok");
    res.writeHead(
      upRes.statusCode ?? 200,
      upRes.statusMessage,
      clientHeaders(upRes.rawHeaders, ["content-length"], { "content-length": String(out.length) }),
    );
    res.end(out);
  }

  private decodeSync(raw: Buffer, encoding: string): string | null {
    switch (encoding.trim().toLowerCase()) {
      case "gzip":
      case "x-gzip":
        return zlib.gunzipSync(raw).toString("utf8");
      case "deflate":
        return zlib.inflateSync(raw).toString("utf8");
      case "br":
        return zlib.brotliDecompressSync(raw).toString("utf8");
      default:
        return null;
    }
  }
}
