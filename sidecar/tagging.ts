// Who made a model call, as the caller says: clawloop's plugin headers (`X-Session-Id`,
// `X-OpenClaw-Run-Id`, `X-OpenClaw-Call-Id`, `X-Turn-Type`), the plugin's optional body
// `metadata`, and OpenClaw-RL's contract (`X-Session-Id`, `X-Turn-Type`, `X-Session-Done`, or body
// `session_id`, `turn_type`, `session_done`). W3C `traceparent` is kept too.
import type { IncomingHttpHeaders } from "node:http";
import type { TurnType } from "../core/index.js";

export interface Tags {
  sessionId: string | null;
  runId: string | null;
  callId: string | null;
  turnType: TurnType | null;
  /** OpenClaw-RL: this call ends its session. */
  sessionDone: boolean;
  traceparent: string | null;
}

/** OpenClaw-RL's body fields: the proxy's, not the model server's, so they are not forwarded. */
export const OPENCLAW_RL_BODY_KEYS = ["session_id", "turn_type", "session_done"] as const;

const MAX_ID = 512;

function clean(v: unknown): string | null {
  if (Array.isArray(v)) v = v[0];
  if (typeof v === "number") v = String(v);
  if (typeof v !== "string") return null;
  const s = v.trim();
  return s ? s.slice(0, MAX_ID) : null;
}

function turnType(v: unknown): TurnType | null {
  const s = clean(v)?.toLowerCase();
  return s === "main" || s === "side" ? s : null;
}

function truthy(v: unknown): boolean {
  if (v === true) return true;
  const s = clean(v)?.toLowerCase();
  return s === "1" || s === "true" || s === "yes" || s === "on";
}

/** `<runId>:model:<n>` → `<runId>`. */
export function runIdOfCall(callId: string): string | null {
  const i = callId.lastIndexOf(":model:");
  return i > 0 ? callId.slice(0, i) : null;
}

export function readTags(headers: IncomingHttpHeaders, body: Record<string, unknown> | null): Tags {
  const meta = body && typeof body.metadata === "object" && body.metadata !== null ? (body.metadata as Record<string, unknown>) : {};
  const sessionId = clean(headers["x-session-id"]) ?? clean(meta.openclaw_session_id) ?? clean(body?.session_id);
  const callId = clean(headers["x-openclaw-call-id"]) ?? clean(meta.openclaw_call_id);
  const runId = clean(headers["x-openclaw-run-id"]) ?? clean(meta.openclaw_run_id) ?? (callId ? runIdOfCall(callId) : null);
  const type = turnType(headers["x-turn-type"]) ?? turnType(meta.turn_type) ?? turnType(body?.turn_type);
  return {
    sessionId,
    runId,
    callId,
    turnType: type,
    sessionDone: truthy(headers["x-session-done"]) || truthy(body?.session_done),
    traceparent: clean(headers.traceparent),
  };
}
