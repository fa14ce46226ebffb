// The control API endpoints (DESIGN.md, "The control API"):
//   POST /clawloop/v1/events      next-state events (JSON array, core/events.ts schema)
//   POST /clawloop/v1/feedback    explicit /good or /bad on a session's last main-line turn
//   GET  /clawloop/v1/turns       ?session=ID: that session's turns in order, each with its next
//                                 states; else recent turns (?limit, ?since, ?full=1)
//   GET  /clawloop/v1/turns/:id   one turn with its next states
//   GET  /clawloop/v1/sessions    recent sessions (?limit, ?since)
//   GET  /clawloop/v1/status      counts, upstream kind and health, store health, whether training is paused
//   POST /clawloop/v1/train/pause   {reason?}: no new train step starts until resume (the step in
//                                   progress finishes); answers {paused: true, wasPaused, since, by, reason}
//   POST /clawloop/v1/train/resume  answers {paused: false, wasPaused}
// Pause and resume write `<data>/train.paused` (core/train-pause.ts), which the trainer reads
// before every step, wherever it runs.
import { z } from "zod";
import { eventSchema, newId, pauseTraining, readTrainPause, resumeTraining, sqlString, type NextState, type Turn } from "../core/index.js";
import { latestRows } from "./dashboard/index.js";
import { latestFields } from "./latest-fields.js";
import type { EventLinker } from "./linker.js";
import type { SidecarMetrics } from "./metrics.js";
import type { Proxy } from "./proxy.js";
import type { RecordStore } from "./record-store.js";
import type { Recorder } from "./recorder.js";
import { HttpError, type ControlRouter } from "./router.js";
import type { SessionBook } from "./sessions.js";
import type { Switchboard } from "./switchboard.js";
import type { Upstream } from "./upstream.js";

export interface ControlDeps {
  store: RecordStore;
  linker: EventLinker;
  book: SessionBook;
  recorder: Recorder;
  upstream: Upstream;
  proxy: Proxy;
  switchboard: Switchboard;
  metrics: SidecarMetrics;
  /** Rows already in the store when the sidecar started. */
  initialCounts: () => { turns: number; nextStates: number };
  startedAt: Date;
  url: () => string;
  version: string;
  /** The data directory (the training pause flag lives there). */
  dataDir: string;
}

const pauseSchema = z.object({ reason: z.string().max(1000).nullish() }).strict();

const feedbackSchema = z.object({
  sessionId: z.string().min(1).max(512),
  score: z.union([z.literal(1), z.literal(-1)]),
  text: z.string().max(64 * 1024).nullish(),
  forRunId: z.string().min(1).max(512).nullish(),
  /** Optional idempotency key; generated when absent. */
  id: z.string().min(1).max(256).nullish(),
  at: z.string().nullish(),
});

const MAX_LIMIT = 1000;

function limitOf(url: URL, dflt = 50): number {
  const raw = url.searchParams.get("limit");
  if (raw === null) return dflt;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new HttpError(400, "limit must be a positive integer");
  return Math.min(n, MAX_LIMIT);
}

function sinceOf(url: URL): string {
  const raw = url.searchParams.get("since");
  if (raw === null) return new Date(Date.now() - 24 * 3600_000).toISOString();
  const d = new Date(raw);
  if (Number.isNaN(d.getTime())) throw new HttpError(400, "since must be an ISO-8601 time");
  return d.toISOString();
}

function summary(t: Turn): Record<string, unknown> {
  const content = t.response?.content ?? "";
  return {
    id: t.id,
    sessionId: t.sessionId,
    runId: t.runId,
    callId: t.callId,
    turnType: t.turnType,
    seq: t.seq,
    endpoint: t.endpoint,
    model: t.model,
    adapter: t.adapter,
    status: t.status,
    placement: t.placement,
    startedAt: t.startedAt,
    ttfbMs: t.ttfbMs,
    totalMs: t.totalMs,
    usage: t.usage,
    finishReason: t.response?.finishReason ?? null,
    content: content.length > 300 ? `${content.slice(0, 300)}…` : content,
    toolCalls: t.response?.toolCalls.map((c) => c.function.name) ?? [],
    hasTokenIds: t.completionTokenIds !== null,
    error: t.error,
  };
}

/** The newest turns since `since`, newest first: bounded queries, never the whole day's rows. */
async function recentTurns(store: RecordStore, since: string, limit: number): Promise<Turn[]> {
  return (await latestRows(store, { table: "turns", timeField: "startedAt", limit, since })).rows;
}

/** What the sessions listing reads of a turn. */
const SESSION_FIELDS = ["sessionId", "turnType", "startedAt", "status", "placement"] as const;
/** Turns the sessions listing looks at (the newest): enough for any recent-sessions view. */
const SESSION_WINDOW = 5_000;

/** The newest turns' session fields only, so a window of thousands moves no request or answer. */
async function recentSessionTurns(store: RecordStore, since: string): Promise<{ turns: Pick<Turn, (typeof SESSION_FIELDS)[number]>[]; more: boolean }> {
  const { rows, more } = await latestFields(store, SESSION_FIELDS, { table: "turns", timeField: "startedAt", limit: SESSION_WINDOW, since });
  return { turns: rows, more };
}

async function memory(store: RecordStore): Promise<Record<string, number | null>> {
  const mb = (n: number) => Math.round((n / (1024 * 1024)) * 10) / 10;
  const m = process.memoryUsage();
  const host = await store.memory().catch(() => null);
  return {
    rssMb: mb(m.rss),
    heapUsedMb: mb(m.heapUsed),
    heapTotalMb: mb(m.heapTotal),
    externalMb: mb(m.external),
    // A store in a child process has memory of its own; on a worker thread its heap is in rssMb.
    storeRssMb: host && store.host === "process" ? mb(host.rss) : null,
    storeHeapUsedMb: host ? mb(host.heapUsed) : null,
    storeHeapTotalMb: host ? mb(host.heapTotal) : null,
  };
}

export function mountControlApi(router: ControlRouter, d: ControlDeps): void {
  router.add("POST", "/clawloop/v1/events", async (c) => {
    const body = await c.json();
    if (!Array.isArray(body)) throw new HttpError(400, "body must be a JSON array of events");
    if (body.length > 10_000) throw new HttpError(413, "at most 10000 events per request");
    const valid: z.infer<typeof eventSchema>[] = [];
    const invalid: { index: number; id: string | null; error: string }[] = [];
    body.forEach((raw, index) => {
      const r = eventSchema.safeParse(raw);
      if (r.success) valid.push(r.data);
      else {
        const id = raw && typeof raw === "object" && typeof (raw as { id?: unknown }).id === "string" ? (raw as { id: string }).id : null;
        invalid.push({ index, id, error: r.error.issues.map((i) => `${i.path.join(".") || "(event)"}: ${i.message}`).join("; ") });
      }
    });
    if (valid.length === 0 && invalid.length > 0) throw new HttpError(400, "no valid event in the batch", { invalid });
    const results = await d.linker.ingest(valid, "plugin");
    for (const r of results) d.metrics.events.inc({ result: r.status });
    if (invalid.length) d.metrics.events.inc({ result: "invalid" }, invalid.length);
    return {
      stored: results.filter((r) => r.status === "stored").length,
      duplicates: results.filter((r) => r.status === "duplicate").length,
      invalid,
      results,
    };
  });

  router.add("POST", "/clawloop/v1/feedback", async (c) => {
    const parsed = feedbackSchema.safeParse(await c.json());
    if (!parsed.success) {
      throw new HttpError(400, parsed.error.issues.map((i) => `${i.path.join(".") || "(body)"}: ${i.message}`).join("; "));
    }
    const f = parsed.data;
    if (!f.forRunId && !(await d.book.findLastMain(f.sessionId))) {
      throw new HttpError(404, `session ${f.sessionId} has no main-line turn to give feedback on`);
    }
    const now = new Date().toISOString();
    const ns: NextState = {
      id: f.id ?? newId("feedback"),
      kind: "feedback",
      sessionId: f.sessionId,
      forRunId: f.forRunId ?? null,
      forCallId: null,
      turnId: null,
      text: f.text ?? null,
      score: f.score,
      toolName: null,
      toolCallId: null,
      exitCode: null,
      at: f.at ?? now,
      receivedAt: now,
      source: "api",
    };
    const r = await d.linker.add(ns);
    d.metrics.events.inc({ result: r.status });
    return r;
  });

  const withStates = async (turns: Turn[], where: { sessionId?: string }) => {
    const states = turns.length ? await d.store.list("next_states", { where }) : [];
    const byTurn = new Map<string, NextState[]>();
    const ids = new Set(turns.map((t) => t.id));
    for (const s of states) {
      if (!s.turnId || !ids.has(s.turnId)) continue;
      const list = byTurn.get(s.turnId) ?? [];
      list.push(s);
      byTurn.set(s.turnId, list);
    }
    for (const list of byTurn.values()) list.sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0));
    return { states, withStates: turns.map((t) => ({ ...t, nextStates: byTurn.get(t.id) ?? [] })) };
  };

  router.add("GET", "/clawloop/v1/turns", async (c) => {
    const session = c.url.searchParams.get("session");
    if (session) {
      const turns = await d.store.list("turns", { where: { sessionId: session }, orderBy: "seq" });
      const { states, withStates: out } = await withStates(turns, { sessionId: session });
      return { session, turns: out, unlinked: states.filter((s) => !s.turnId) };
    }
    const limit = limitOf(c.url);
    const turns = await recentTurns(d.store, sinceOf(c.url), limit);
    if (c.url.searchParams.get("full") === "1") {
      const states = turns.length ? await d.store.list("next_states", { sql: `turn_id IN (${turns.map((t) => sqlString(t.id)).join(", ")})` }) : [];
      const byTurn = new Map<string, NextState[]>();
      for (const s of states.sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0))) byTurn.set(s.turnId!, [...(byTurn.get(s.turnId!) ?? []), s]);
      return { turns: turns.map((t) => ({ ...t, nextStates: byTurn.get(t.id) ?? [] })) };
    }
    return { turns: turns.map(summary) };
  });

  router.add("GET", "/clawloop/v1/turns/:id", async (c) => {
    const turn = await d.store.get("turns", c.params.id!);
    if (!turn) throw new HttpError(404, `no turn ${c.params.id}`);
    const nextStates = await d.store.list("next_states", { where: { turnId: turn.id } });
    return { ...turn, nextStates };
  });

  router.add("GET", "/clawloop/v1/sessions", async (c) => {
    const limit = limitOf(c.url);
    const { turns, more } = await recentSessionTurns(d.store, sinceOf(c.url));
    const sessions = new Map<string, { sessionId: string; turns: number; mainTurns: number; firstAt: string; lastAt: string; lastStatus: string; placement: string }>();
    for (const t of turns) {
      const s = sessions.get(t.sessionId);
      if (!s) {
        sessions.set(t.sessionId, {
          sessionId: t.sessionId,
          turns: 1,
          mainTurns: t.turnType === "main" ? 1 : 0,
          firstAt: t.startedAt,
          lastAt: t.startedAt,
          lastStatus: t.status,
          placement: t.placement,
        });
      } else {
        s.turns++;
        if (t.turnType === "main") s.mainTurns++;
        if (t.startedAt < s.firstAt) s.firstAt = t.startedAt;
      }
    }
    // `partial`: more turns than the window since `since`; sessions seen only before it are left out.
    return { sessions: [...sessions.values()].slice(0, limit), partial: more };
  });

  router.add("POST", "/clawloop/v1/train/pause", async (c) => {
    // The body is optional: `curl -X POST` with none pauses too.
    const hasBody = (c.req.headers["content-length"] ?? "0") !== "0" || c.req.headers["transfer-encoding"] !== undefined;
    const parsed = pauseSchema.safeParse(hasBody ? await c.json(64 * 1024) : {});
    if (!parsed.success) throw new HttpError(400, `body must be {} or {"reason": "…"}: ${parsed.error.issues.map((i) => `${i.path.join(".") || "(body)"}: ${i.message}`).join("; ")}`);
    const before = readTrainPause(d.dataDir);
    const pause = pauseTraining(d.dataDir, "api", parsed.data.reason ?? null);
    return { paused: true, wasPaused: before !== null, ...pause };
  });

  router.add("POST", "/clawloop/v1/train/resume", () => {
    const ended = resumeTraining(d.dataDir);
    return { paused: false, wasPaused: ended !== null };
  });

  router.add("GET", "/clawloop/v1/status", async () => {
    const initial = d.initialCounts();
    const events = d.linker.stats();
    const health = await d.store.refreshHealth().catch(() => d.store.health());
    const waitingInLog = Object.values(health.tables).reduce((n, t) => n + (t?.pending ?? 0), 0);
    return {
      version: d.version,
      url: d.url(),
      startedAt: d.startedAt.toISOString(),
      uptimeSec: Math.round((Date.now() - d.startedAt.getTime()) / 1000),
      upstream: {
        url: d.upstream.url,
        kind: d.upstream.kind,
        kindSource: d.upstream.kindConfigured ? "configured" : d.upstream.kind ? "detected" : "unknown",
        health: await d.upstream.health(),
      },
      store: { ...health, waitingInLog, journaled: d.store.journaled, host: d.store.host },
      counts: {
        turns: initial.turns + d.recorder.recorded,
        nextStates: initial.nextStates + events.stored,
        turnsSinceStart: d.recorder.recorded,
        turnsByStatus: d.recorder.byStatus,
        inflight: d.proxy.inflight,
        events,
      },
      switchboard: d.switchboard.status(),
      train: { paused: readTrainPause(d.dataDir) },
      memory: await memory(d.store),
    };
  });
}
