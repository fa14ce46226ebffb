// Next-state events as the sidecar takes them (`POST /clawloop/v1/events`, DESIGN.md "Next states").
// The shape mirrors core/events.ts; the plugin cannot import core, so it is restated here.
// Ids are derived from what the event is about (run, call, tool call), so an event emitted twice —
// by two module instances, or by a retried hook — has one id and the sidecar keeps one copy.
import { createHash } from "node:crypto";

export type NextStateKind = "user_message" | "tool_result" | "tool_error" | "model_error" | "feedback";

export interface NextStateEvent {
  id: string;
  type: "next_state";
  kind: NextStateKind;
  sessionId: string;
  forRunId?: string | null;
  forCallId?: string | null;
  text?: string | null;
  score?: number | null;
  toolName?: string | null;
  toolCallId?: string | null;
  exitCode?: number | null;
  at: string;
}

export interface SessionEndEvent {
  id: string;
  type: "session_end";
  sessionId: string;
  at: string;
}

export type ClawloopEvent = NextStateEvent | SessionEndEvent;

/** Longest text sent with an event; the judge reads the start of a reply, not a whole file dump. */
export const MAX_TEXT = 8000;

export function clip(text: string | null | undefined, max = MAX_TEXT): string | null {
  if (text == null) return null;
  return text.length > max ? `${text.slice(0, max)}…[${text.length - max} more chars]` : text;
}

function digest(...parts: (string | number | null | undefined)[]): string {
  return createHash("sha256")
    .update(parts.map((p) => String(p ?? "")).join("\u0000"))
    .digest("hex")
    .slice(0, 24);
}

const now = () => new Date().toISOString();

export function userMessageEvent(p: { sessionId: string; forRunId: string; byRunId: string; text: string }): NextStateEvent {
  return {
    id: `oc-user-${digest(p.forRunId, p.byRunId)}`,
    type: "next_state",
    kind: "user_message",
    sessionId: p.sessionId,
    forRunId: p.forRunId,
    text: clip(p.text),
    at: now(),
  };
}

export function toolEvent(p: {
  sessionId: string;
  runId: string;
  callId: string | null;
  toolName: string;
  toolCallId: string | null;
  error: boolean;
  text: string | null;
  exitCode: number | null;
}): NextStateEvent {
  return {
    // A tool call id is unique within its run; without one, the calling model call and tool name place it.
    id: `oc-tool-${digest(p.runId, p.toolCallId ?? `${p.callId}/${p.toolName}`)}`,
    type: "next_state",
    kind: p.error ? "tool_error" : "tool_result",
    sessionId: p.sessionId,
    forRunId: p.runId,
    forCallId: p.callId,
    toolName: p.toolName,
    toolCallId: p.toolCallId,
    text: clip(p.text),
    exitCode: p.exitCode,
    at: now(),
  };
}

export function modelErrorEvent(p: { sessionId: string; runId: string; callId: string; text: string }): NextStateEvent {
  return {
    id: `oc-merr-${digest(p.callId)}`,
    type: "next_state",
    kind: "model_error",
    sessionId: p.sessionId,
    forRunId: p.runId,
    forCallId: p.callId,
    text: clip(p.text),
    at: now(),
  };
}

/**
 * Explicit feedback. `key` names the act of giving it (a command invocation, a reaction line),
 * so the same act seen twice keeps one id while two separate `/bad`s stay two events.
 */
export function feedbackEvent(p: {
  sessionId: string;
  forRunId: string | null;
  forCallId?: string | null;
  score: 1 | -1;
  text: string | null;
  key: string;
}): NextStateEvent {
  return {
    id: `oc-fb-${digest(p.sessionId, p.key)}`,
    type: "next_state",
    kind: "feedback",
    sessionId: p.sessionId,
    forRunId: p.forRunId,
    forCallId: p.forCallId ?? null,
    score: p.score,
    text: clip(p.text),
    at: now(),
  };
}

export function sessionEndEvent(sessionId: string): SessionEndEvent {
  return { id: `oc-end-${digest(sessionId)}`, type: "session_end", sessionId, at: now() };
}
