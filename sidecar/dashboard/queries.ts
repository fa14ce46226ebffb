// What the dashboard reads from the store, shaped for the page: turns with their next states and
// judgments, sessions, rewards, training steps. Every read is bounded (see recent.ts).
import type { ChatMessage, Judgment, NextState, TrainStep, Turn } from "../../core/index.js";
import { sqlString } from "../../core/index.js";
import { latestRows, type ReadStore } from "./recent.js";

/** Text the page shows per turn is cut here; the full turn is at /clawloop/v1/turns/:id. */
const TEXT_MAX = 4_000;

export interface TimelineTurn {
  id: string;
  sessionId: string;
  runId: string | null;
  seq: number;
  turnType: Turn["turnType"];
  placement: Turn["placement"];
  startedAt: string;
  status: Turn["status"];
  error: string | null;
  ttfbMs: number | null;
  totalMs: number;
  model: string;
  adapter: string | null;
  usage: Turn["usage"];
  /** The request's last user message. */
  user: string | null;
  response: { content: string; reasoning: string | null; toolCalls: { name: string; arguments: string }[]; finishReason: string | null } | null;
  nextStates: Pick<NextState, "id" | "kind" | "text" | "score" | "toolName" | "exitCode" | "at">[];
  judgment: Pick<Judgment, "score" | "method" | "votes" | "hint" | "judgeModel" | "createdAt"> | null;
}

export interface TimelineQuery {
  session?: string | null;
  /** Case-insensitive text in the last user message, the response or its tool calls. */
  q?: string | null;
  /** Exactly these turns (e.g. an adapter's training samples). */
  ids?: string[] | null;
  since?: string | null;
  before?: string | null;
  limit: number;
}

function cut(s: string | null | undefined): string | null {
  if (s === null || s === undefined) return null;
  return s.length > TEXT_MAX ? `${s.slice(0, TEXT_MAX)}…` : s;
}

function textOf(m: ChatMessage): string {
  if (typeof m.content === "string") return m.content;
  if (Array.isArray(m.content)) return m.content.map((p) => (typeof p.text === "string" ? p.text : `[${p.type}]`)).join("\n");
  return "";
}

export function lastUserMessage(t: Turn): string | null {
  const msgs = t.request.messages;
  if (msgs) {
    for (let i = msgs.length - 1; i >= 0; i--) if (msgs[i]!.role === "user") return textOf(msgs[i]!);
    return null;
  }
  return typeof t.request.prompt === "string" ? t.request.prompt : null;
}

function matchesText(t: Turn, needle: string): boolean {
  const hay = [lastUserMessage(t) ?? "", t.response?.content ?? "", ...(t.response?.toolCalls ?? []).map((c) => `${c.function.name} ${c.function.arguments}`)];
  return hay.some((h) => h.toLowerCase().includes(needle));
}

/** A loose SQL pre-filter (the JSON text of the request or response contains the words). */
function textSql(needle: string): string {
  // Stored JSON escapes quotes, backslashes and control characters: look for the escaped form.
  const escaped = sqlString(JSON.stringify(needle).slice(1, -1));
  return `strpos(lower(request), ${escaped}) > 0 OR strpos(lower(response), ${escaped}) > 0`;
}

function inList(ids: string[]): string {
  return ids.map(sqlString).join(", ");
}

/** Judgments and linked next states of these turns, two bounded queries. */
async function annotate(store: ReadStore, turns: Turn[]): Promise<TimelineTurn[]> {
  if (turns.length === 0) return [];
  const ids = turns.map((t) => t.id);
  const [judgments, states] = await Promise.all([
    store.list("judgments", { sql: `turn_id IN (${inList(ids)})` }),
    store.list("next_states", { sql: `turn_id IN (${inList(ids)})` }),
  ]);
  const want = new Set(ids);
  const judgmentOf = new Map(judgments.filter((j) => want.has(j.turnId)).map((j) => [j.turnId, j]));
  const statesOf = new Map<string, NextState[]>();
  for (const s of states) {
    if (!s.turnId || !want.has(s.turnId)) continue;
    statesOf.set(s.turnId, [...(statesOf.get(s.turnId) ?? []), s]);
  }
  return turns.map((t) => {
    const j = judgmentOf.get(t.id);
    const ns = (statesOf.get(t.id) ?? []).sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0));
    return {
      id: t.id,
      sessionId: t.sessionId,
      runId: t.runId,
      seq: t.seq,
      turnType: t.turnType,
      placement: t.placement,
      startedAt: t.startedAt,
      status: t.status,
      error: t.error,
      ttfbMs: t.ttfbMs,
      totalMs: t.totalMs,
      model: t.model,
      adapter: t.adapter,
      usage: t.usage,
      user: cut(lastUserMessage(t)),
      response: t.response
        ? {
            content: cut(t.response.content) ?? "",
            reasoning: cut(t.response.reasoning),
            toolCalls: t.response.toolCalls.map((c) => ({ name: c.function.name, arguments: cut(c.function.arguments) ?? "" })),
            finishReason: t.response.finishReason,
          }
        : null,
      nextStates: ns.map((s) => ({ id: s.id, kind: s.kind, text: cut(s.text), score: s.score, toolName: s.toolName, exitCode: s.exitCode, at: s.at })),
      judgment: j ? { score: j.score, method: j.method, votes: j.votes, hint: j.hint, judgeModel: j.judgeModel, createdAt: j.createdAt } : null,
    };
  });
}

export async function timeline(store: ReadStore, q: TimelineQuery): Promise<{ turns: TimelineTurn[]; next: string | null }> {
  if (q.ids) {
    const rows = q.ids.length ? await store.list("turns", { sql: `id IN (${inList(q.ids)})` }) : [];
    const want = new Set(q.ids);
    const turns = rows.filter((t) => want.has(t.id)).sort((a, b) => (a.startedAt < b.startedAt ? 1 : -1));
    return { turns: await annotate(store, turns), next: null };
  }
  const needle = q.q?.trim().toLowerCase() || null;
  const res = await latestRows(store, {
    table: "turns",
    timeField: "startedAt",
    limit: q.limit,
    since: q.since,
    before: q.before,
    where: q.session ? { sessionId: q.session } : undefined,
    sql: needle ? textSql(needle) : undefined,
    keep: needle ? (t) => matchesText(t, needle) : undefined,
  });
  return { turns: await annotate(store, res.rows), next: res.more && res.rows.length ? res.rows.at(-1)!.startedAt : null };
}

export interface SessionSummary {
  sessionId: string;
  /** Turns among the recent ones looked at (not the session's total). */
  turns: number;
  mainTurns: number;
  firstAt: string;
  lastAt: string;
  lastUser: string | null;
  errors: number;
}

/** Sessions of the most recent `window` turns, newest activity first. */
export async function recentSessions(store: ReadStore, limit: number, window = 500): Promise<SessionSummary[]> {
  const { rows } = await latestRows(store, { table: "turns", timeField: "startedAt", limit: window });
  const byId = new Map<string, SessionSummary>();
  for (const t of rows) {
    let s = byId.get(t.sessionId);
    if (!s) {
      s = { sessionId: t.sessionId, turns: 0, mainTurns: 0, firstAt: t.startedAt, lastAt: t.startedAt, lastUser: null, errors: 0 };
      byId.set(t.sessionId, s);
    }
    s.turns++;
    if (t.turnType === "main") s.mainTurns++;
    if (t.status !== "ok") s.errors++;
    if (t.startedAt < s.firstAt) s.firstAt = t.startedAt;
    // Rows come newest first: the first user message seen is the latest.
    if (s.lastUser === null && t.turnType === "main") {
      const u = lastUserMessage(t);
      s.lastUser = u && u.length > 160 ? `${u.slice(0, 160)}…` : u;
    }
  }
  return [...byId.values()].slice(0, limit);
}

export async function recentJudgments(
  store: ReadStore,
  q: { since?: string | null; before?: string | null; limit: number },
): Promise<{ judgments: Judgment[]; next: string | null }> {
  const res = await latestRows(store, { table: "judgments", timeField: "createdAt", ...q });
  return { judgments: res.rows, next: res.more && res.rows.length ? res.rows.at(-1)!.createdAt : null };
}

export interface RewardTrend {
  /** Oldest first. */
  points: { at: string; score: number; method: string; turnId: string }[];
  /** Mean of the last `window` scores at each point. */
  rolling: { at: string; mean: number; n: number }[];
  window: number;
  /** All judgments in the store. */
  total: number;
}

export async function rewardTrend(store: ReadStore, limit: number, window: number): Promise<RewardTrend> {
  const [{ rows }, total] = await Promise.all([
    latestRows(store, { table: "judgments", timeField: "createdAt", limit }),
    store.count("judgments"),
  ]);
  const points = rows.reverse().map((j) => ({ at: j.createdAt, score: j.score, method: j.method, turnId: j.turnId }));
  const rolling: RewardTrend["rolling"] = [];
  let sum = 0;
  points.forEach((p, i) => {
    sum += p.score;
    if (i >= window) sum -= points[i - window]!.score;
    const n = Math.min(i + 1, window);
    rolling.push({ at: p.at, mean: sum / n, n });
  });
  return { points, rolling, window, total };
}

export async function recentTrainSteps(
  store: ReadStore,
  q: { since?: string | null; before?: string | null; limit: number },
): Promise<{ steps: TrainStep[]; next: string | null }> {
  const res = await latestRows(store, { table: "train_steps", timeField: "createdAt", ...q });
  // Ties in time (fast steps) are settled by the step number.
  const steps = res.rows.sort((a, b) => (a.createdAt === b.createdAt ? b.step - a.step : a.createdAt < b.createdAt ? 1 : -1));
  return { steps, next: res.more && steps.length ? steps.at(-1)!.createdAt : null };
}
