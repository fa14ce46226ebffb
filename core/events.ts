// The wire format of next-state events (`POST /clawloop/v1/events`), validated with zod.
import { randomUUID } from "node:crypto";
import { z } from "zod";
import type { NextState, NextStateKind } from "./types.js";

const nextStateKinds = ["user_message", "tool_result", "tool_error", "model_error", "feedback"] as const;

const common = {
  id: z.string().min(1).max(256),
  sessionId: z.string().min(1).max(512),
  at: z.string().optional(),
};

export const nextStateEventSchema = z.looseObject({
  ...common,
  type: z.literal("next_state"),
  kind: z.enum(nextStateKinds),
  forRunId: z.string().nullish(),
  forCallId: z.string().nullish(),
  text: z.string().nullish(),
  score: z.number().min(-1).max(1).nullish(),
  toolName: z.string().nullish(),
  toolCallId: z.string().nullish(),
  exitCode: z.number().int().nullish(),
});

export const sessionEndEventSchema = z.looseObject({
  ...common,
  type: z.literal("session_end"),
});

export const eventSchema = z.discriminatedUnion("type", [nextStateEventSchema, sessionEndEventSchema]);
export const eventBatchSchema = z.array(eventSchema).max(10_000);

export type NextStateEvent = z.infer<typeof nextStateEventSchema>;
export type SessionEndEvent = z.infer<typeof sessionEndEventSchema>;
export type ClawloopEvent = z.infer<typeof eventSchema>;

/** The stored form of an event; `turnId` is resolved by whoever links it. */
export function eventToNextState(
  ev: ClawloopEvent,
  source: NextState["source"],
  receivedAt = new Date().toISOString(),
): NextState {
  const kind: NextStateKind = ev.type === "session_end" ? "session_end" : ev.kind;
  const n = ev.type === "next_state" ? ev : null;
  return {
    id: ev.id,
    kind,
    sessionId: ev.sessionId,
    forRunId: n?.forRunId ?? null,
    forCallId: n?.forCallId ?? null,
    turnId: null,
    text: n?.text ?? null,
    score: n?.score ?? null,
    toolName: n?.toolName ?? null,
    toolCallId: n?.toolCallId ?? null,
    exitCode: n?.exitCode ?? null,
    at: ev.at ?? receivedAt,
    receivedAt,
    source,
  };
}

export function newId(prefix: string): string {
  return `${prefix}-${randomUUID()}`;
}
