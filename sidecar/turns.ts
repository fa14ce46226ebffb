// From a finished call to a `turns` row. Pure, so it can run wherever the store runs (a worker
// thread by default): parsing the client's body again, masking secrets and encoding the row all
// stay off the proxy's event loop.
import type { Turn, TurnRequest, TurnStatus, TurnType } from "../core/index.js";
import type { Assembled } from "./assembler.js";
import { SecretMasker, type MaskResult } from "./privacy.js";
import { OPENCLAW_RL_BODY_KEYS } from "./tagging.js";

/** Strings at least this long are masked once and remembered. */
const CACHE_MIN_CHARS = 1024;

/**
 * A masker that remembers long strings: an agent sends the same system prompt and tool schemas on
 * every call, and running every secret pattern over ~40 KB per call is most of the cost of a row.
 * Bounded by the characters it holds.
 */
export class CachedMasker extends SecretMasker {
  private readonly cache = new Map<string, MaskResult<string>>();
  private chars = 0;

  constructor(
    enabled: boolean,
    extraPatterns: string[] = [],
    private readonly maxChars = 2 * 1024 * 1024,
  ) {
    super(enabled, extraPatterns);
  }

  override maskString(s: string): MaskResult<string> {
    if (s.length < CACHE_MIN_CHARS || s.length > this.maxChars / 4) return super.maskString(s);
    const hit = this.cache.get(s);
    if (hit) {
      this.cache.delete(s);
      this.cache.set(s, hit);
      return hit;
    }
    const r = super.maskString(s);
    this.cache.set(s, r);
    this.chars += s.length;
    for (const k of this.cache.keys()) {
      if (this.chars <= this.maxChars) break;
      this.cache.delete(k);
      this.chars -= k.length;
    }
    return r;
  }
}

/** Everything the proxy knows about a finished call, in a form that crosses threads cheaply. */
export interface TurnJob {
  turnId: string;
  sessionId: string;
  runId: string | null;
  callId: string | null;
  turnType: TurnType;
  /**
   * Its place in the session; null when the call was answered before the store host could say
   * which was the session's last turn (a stalled host): the host numbers it next in the session when
   * it takes it in (`TurnWriter`).
   */
  seq: number | null;
  /** A row of this turn may exist already (journaled with seq null): replace it by id, never append. */
  replaces?: boolean;
  placement: Turn["placement"];
  parentTurnId: string | null;
  endpoint: "chat" | "completions";
  model: string;
  adapter: string | null;
  /** The client's request body as it arrived (parsed again where the row is built). */
  rawRequest: Uint8Array;
  /** Why the request is not a usable training turn (malformed body), if it is not. */
  requestError: string | null;
  startedAt: string;
  ttfbMs: number | null;
  totalMs: number;
  upstreamStatus: number | null;
  status: TurnStatus;
  error: string | null;
  assembled: Assembled | null;
  traceparent: string | null;
}

/** The handful of fields the rest of the sidecar needs once a turn is written. */
export interface TurnRef {
  id: string;
  sessionId: string;
  runId: string | null;
  callId: string | null;
  seq: number;
  turnType: TurnType;
  status: TurnStatus;
}

const MAX_ERROR = 4_000;

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** The request as recorded: what the client asked for, minus the model and OpenClaw-RL's fields. */
export function turnRequest(json: Record<string, unknown>): TurnRequest {
  const params: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(json)) {
    if (k === "messages" || k === "prompt" || k === "tools" || k === "model") continue;
    if ((OPENCLAW_RL_BODY_KEYS as readonly string[]).includes(k)) continue;
    params[k] = v;
  }
  const out: TurnRequest = { params };
  if (Array.isArray(json.messages)) out.messages = json.messages as TurnRequest["messages"];
  if (json.prompt !== undefined) out.prompt = json.prompt;
  if (Array.isArray(json.tools)) out.tools = json.tools;
  return out;
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}

export function buildTurn(job: TurnJob & { seq: number }, masker: SecretMasker): Turn {
  let request: TurnRequest = { params: {} };
  if (!job.requestError) {
    const parsed: unknown = JSON.parse(Buffer.from(job.rawRequest.buffer, job.rawRequest.byteOffset, job.rawRequest.byteLength).toString("utf8"));
    if (isObj(parsed)) request = turnRequest(parsed);
  }
  const a = job.assembled;
  // Secrets are masked in text; token ids would still spell them, so ids go where a secret was.
  const req = masker.maskDeep(request);
  let response = a?.response ?? null;
  let respHits = 0;
  if (response) {
    const r = masker.maskDeep(response);
    response = r.value;
    respHits = r.hits;
  }
  const errors = [job.requestError, job.error, a?.truncated ? "response exceeded sidecar.maxRecordBytes; recorded in part" : null].filter(
    (e): e is string => !!e,
  );
  const error = errors.length ? masker.maskString(errors.join("; ").slice(0, MAX_ERROR)).value : null;
  return {
    id: job.turnId,
    sessionId: job.sessionId,
    runId: job.runId,
    callId: job.callId,
    turnType: turnTypeOf(job),
    seq: job.seq,
    endpoint: job.endpoint,
    model: job.model,
    adapter: job.adapter,
    request: req.value,
    response,
    promptTokenIds: req.hits ? null : (a?.promptTokenIds ?? null),
    completionTokenIds: respHits ? null : (a?.completionTokenIds ?? null),
    completionLogprobs: respHits ? null : (a?.completionLogprobs ?? null),
    usage: a?.usage ?? null,
    startedAt: job.startedAt,
    ttfbMs: job.ttfbMs === null ? null : round(job.ttfbMs),
    totalMs: round(job.totalMs),
    upstreamStatus: job.upstreamStatus,
    status: job.status,
    error,
    traceparent: job.traceparent,
    placement: job.placement,
    parentTurnId: job.parentTurnId,
  };
}

/** A malformed request is recorded as side traffic whatever it was tagged. */
function turnTypeOf(job: TurnJob): TurnType {
  return job.requestError ? "side" : job.turnType;
}

/**
 * The ref `buildTurn(job)` will have, known before the row is built (the proxy answers with it).
 * A job not yet numbered in its session (seq null) gets seq -1 here: its caller waits for the final one.
 */
export function refOfJob(job: TurnJob): TurnRef {
  return { id: job.turnId, sessionId: job.sessionId, runId: job.runId, callId: job.callId, seq: job.seq ?? -1, turnType: turnTypeOf(job), status: job.status };
}

export function refOf(t: Turn): TurnRef {
  return { id: t.id, sessionId: t.sessionId, runId: t.runId, callId: t.callId, seq: t.seq, turnType: t.turnType, status: t.status };
}
