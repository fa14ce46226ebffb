// Replaying recorded conversations (fixtures/conversations) through a real sidecar without any ids,
// and comparing what it inferred with the recording's ground truth.
import { expect } from "vitest";
import type { NextState, Turn } from "../../core/index.js";
import type { ConversationFixture, ExpectedNextState } from "../../fixtures/conversations/format.js";
import type { ScriptedReply, ScriptedRequest } from "../../fixtures/upstream/index.js";
import type { RecordStore } from "../../sidecar/index.js";
import { waitFor } from "./sidecar-helpers.js";

/**
 * Every call carries a W3C traceparent naming it (the sidecar stores traceparents), so a turn can be
 * matched to the call that made it. It is not a session id: inference never reads it.
 */
export function traceparentOf(fixture: string, call: number): string {
  const hex = Buffer.from(`${fixture}#${call}`).toString("hex").padEnd(32, "0").slice(0, 32);
  return `00-${hex}-${call.toString(16).padStart(16, "0")}-01`;
}

export function callOfTraceparent(tp: string | null | undefined): number | null {
  const m = /^00-[0-9a-f]{32}-([0-9a-f]{16})-01$/.exec(tp ?? "");
  return m ? parseInt(m[1]!, 16) : null;
}

/** The scripted upstream's answer to a call of a fixture: the recorded one. */
export function replyFor(fx: ConversationFixture): (req: ScriptedRequest) => ScriptedReply {
  return (req) => {
    const i = callOfTraceparent(String(req.headers.traceparent ?? ""));
    const call = i === null ? undefined : fx.calls[i];
    if (!call) return { status: 500, errorMessage: `no recorded answer for traceparent ${String(req.headers.traceparent)}` };
    return {
      ...(call.reply.content !== null ? { text: call.reply.content } : {}),
      ...(call.reply.reasoning ? { reasoning: call.reply.reasoning } : {}),
      toolCalls: call.reply.toolCalls.map((t) => ({ id: t.id, name: t.name, arguments: t.arguments })),
    };
  };
}

const DROP = new Set(["host", "content-length", "connection", "authorization", "traceparent", "accept-encoding"]);

/** Sends calls `from`..`to` of a fixture to `url` in order, as the client did, and reads every answer whole. */
export async function replay(url: string, fx: ConversationFixture, from = 0, to = fx.calls.length, extraHeaders: (i: number) => Record<string, string> = () => ({})): Promise<void> {
  for (let i = from; i < to; i++) await send(url, fx, i, extraHeaders(i));
}

export async function send(url: string, fx: ConversationFixture, i: number, extraHeaders: Record<string, string> = {}): Promise<void> {
  const call = fx.calls[i]!;
  const headers: Record<string, string> = { "content-type": "application/json" };
  for (const [k, v] of Object.entries(call.headers ?? {})) if (!DROP.has(k.toLowerCase())) headers[k] = v;
  headers.traceparent = traceparentOf(fx.name, i);
  const res = await fetch(`${url}/v1/chat/completions`, { method: "POST", headers: { ...headers, ...extraHeaders }, body: JSON.stringify(call.body) });
  const text = await res.text();
  expect(res.status, `call ${i}: ${text.slice(0, 300)}`).toBe(200);
}

export interface Observed {
  /** The turn each call became, by call index. */
  turns: Map<number, Turn>;
  states: NextState[];
}

/** The turns and next states the sidecar recorded for a fixture, once the expected next states are in. */
export async function observe(store: RecordStore, fx: ConversationFixture, calls: number[] = fx.calls.map((_, i) => i)): Promise<Observed> {
  const expectedStates = calls.reduce((n, i) => n + fx.calls[i]!.expect.nextStates.length, 0);
  const turns = await waitFor(async () => {
    const all = await store.list("turns");
    const mine = new Map<number, Turn>();
    for (const t of all) {
      const i = callOfTraceparent(t.traceparent);
      if (i !== null && t.traceparent === traceparentOf(fx.name, i)) mine.set(i, t);
    }
    return mine.size >= calls.length ? mine : null;
  }, "every call's turn");
  const ids = new Set([...turns.values()].map((t) => t.id));
  const statesOf = async () => (await store.list("next_states")).filter((s) => s.turnId === null || ids.has(s.turnId) || s.source === "inferred");
  await waitFor(async () => (await statesOf()).length >= expectedStates, `${expectedStates} next states`);
  // Inferred next states are written as their request is placed; give stragglers a moment so an
  // extra one would be seen, not missed.
  await new Promise((r) => setTimeout(r, 300));
  return { turns, states: (await statesOf()).filter((s) => s.turnId === null || ids.has(s.turnId)) };
}

function shape(s: Pick<NextState, "kind" | "text" | "toolName" | "toolCallId" | "exitCode"> | ExpectedNextState): Record<string, unknown> {
  const out: Record<string, unknown> = { kind: s.kind, text: s.text };
  if (s.toolName) out.toolName = s.toolName;
  if (s.toolCallId) out.toolCallId = s.toolCallId;
  if (s.exitCode !== undefined && s.exitCode !== null) out.exitCode = s.exitCode;
  return out;
}

const sorted = (xs: Record<string, unknown>[]) => xs.map((x) => JSON.stringify(x)).sort();

/** Sessions, turn order, parents, turn types and every next state equal the recording's ground truth. */
export function expectGroundTruth(fx: ConversationFixture, seen: Observed, calls: number[] = fx.calls.map((_, i) => i)): void {
  const turnOf = (i: number) => {
    const t = seen.turns.get(i);
    if (!t) throw new Error(`call ${i} was not recorded`);
    return t;
  };
  const callOfTurn = new Map([...seen.turns].map(([i, t]) => [t.id, i]));

  // Sessions: calls share a session exactly when they belong to one conversation.
  const groups = (key: (i: number) => string) => {
    const m = new Map<string, number[]>();
    for (const i of calls) m.set(key(i), [...(m.get(key(i)) ?? []), i]);
    return [...m.values()].map((g) => g.join(",")).sort();
  };
  expect(groups((i) => turnOf(i).sessionId), "sessions").toEqual(groups((i) => fx.calls[i]!.expect.conversation));

  // Turn order: within a session, seq follows the order of the calls, from 0 without gaps.
  const bySession = new Map<string, number[]>();
  for (const i of calls) bySession.set(turnOf(i).sessionId, [...(bySession.get(turnOf(i).sessionId) ?? []), i]);
  for (const [session, members] of bySession) {
    expect(members.map((i) => turnOf(i).seq), `seq of session ${session}`).toEqual(members.map((_, k) => k));
  }

  // Parents, placement and turn type.
  expect(
    calls.map((i) => [i, turnOf(i).parentTurnId === null ? null : (callOfTurn.get(turnOf(i).parentTurnId!) ?? `unknown turn ${turnOf(i).parentTurnId}`)]),
    "parents",
  ).toEqual(calls.map((i) => [i, fx.calls[i]!.expect.parent]));
  expect(
    calls.map((i) => [i, turnOf(i).turnType, turnOf(i).placement]),
    "turn types",
  ).toEqual(calls.map((i) => [i, fx.calls[i]!.expect.turnType, fx.calls[i]!.expect.turnType === "main" ? "inferred" : "untagged"]));

  // Next states: exactly the recorded ones, on the turn they follow, as the plugin would send them.
  expect(seen.states.filter((s) => s.turnId === null), "unlinked next states").toEqual([]);
  expect(
    calls.map((i) => [i, sorted(seen.states.filter((s) => s.turnId === turnOf(i).id).map(shape))]),
    "next states",
  ).toEqual(calls.map((i) => [i, sorted(fx.calls[i]!.expect.nextStates.map(shape))]));
  for (const s of seen.states) {
    const t = turnOf(callOfTurn.get(s.turnId!)!);
    expect(s).toMatchObject({ source: "inferred", forCallId: t.id, forRunId: null, sessionId: t.sessionId, score: null });
  }
}
