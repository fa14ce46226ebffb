// The judge loop: finds main-line turns that have next states and no judgment, judges them with a
// concurrency limit, and writes one judgment per turn (id = turn id). It is the single writer of
// the `judgments` table.
//
// Crash safety comes from the store: a judgment is in the append-only log before `put` returns,
// and the log is replayed on the next start, so a judgment written before a crash is seen and
// its turn is not judged again; a turn whose judgment was not written is judged after the
// restart. Nothing is skipped: a turn whose judge call fails is retried with backoff until it
// succeeds (errors are in the status file meanwhile).
//
// Each tick reads only the next states that arrived in the last few minutes; a full scan runs at
// start and every `FULL_SCAN_MS`, which also catches states the sidecar linked to a turn long
// after they arrived (events that came before their turn).
import type { Config, Judgment, Logger, NextState, Turn } from "../core/index.js";
import { sqlString, Store } from "../core/index.js";
import { chooseEvidence, isJudgeable, isReady } from "./evidence.js";
import { inputFromTurn } from "./input.js";
import { createJudge, judgeEndpoint } from "./judge.js";
import { writeJudgeStatus, type JudgeStatus } from "./status.js";
import { toJudgment, type Judge, type Verdict } from "./verdict.js";

export interface JudgeLoopOptions {
  logger?: Logger;
  /** A store this process already opened with `writes` including "judgments"; else the loop opens one. */
  store?: Store;
  /** Replaces the configured judge (tests, evaluation). */
  judge?: Judge;
  /** Called after each judgment is written (and logged). */
  onJudged?: (j: Judgment) => void;
  /** Do not start the timer: the caller drives `tick()` / `runUntilIdle()`. */
  manual?: boolean;
  /** Retry delay after the n-th failure of a turn: min(cap, base·2^(n−1)). */
  retryBaseMs?: number;
  retryCapMs?: number;
  now?: () => number;
}

export interface JudgeLoop {
  /** One scan of the store; starts whatever is ready (up to the concurrency limit). */
  tick(): Promise<void>;
  /** Scans and judges until nothing is ready and nothing is in flight. */
  runUntilIdle(): Promise<void>;
  status(): JudgeStatus;
  stop(): Promise<void>;
  readonly store: Store;
}

/** What the loop remembers of a written judgment. */
interface Judged {
  score: Judgment["score"];
  hint: string | null;
  nextStateIds: string[];
}

interface Job {
  turn: Turn;
  evidence: NextState[];
  /** An existing judgment rewritten by later explicit feedback. */
  previous: Judged | null;
}

interface RetryState {
  attempts: number;
  at: number;
}

const IN_CHUNK = 200;
/** How often every next state is read again, and how far back an ordinary tick reads. */
export const FULL_SCAN_MS = 5 * 60_000;
const RECENT_MS = 2 * 60_000;

export async function startJudgeLoop(config: Config, opts: JudgeLoopOptions = {}): Promise<JudgeLoop> {
  const log = opts.logger;
  const now = opts.now ?? Date.now;
  const j = config.judge;
  const abort = new AbortController();
  const judge: Judge = opts.judge ?? createJudge(config, { signal: abort.signal });
  const ownStore = !opts.store;
  const store = opts.store ?? (await Store.open({ dataDir: config.dataDir, writes: ["judgments"], logger: log }));
  const retryBase = opts.retryBaseMs ?? 2000;
  const retryCap = opts.retryCapMs ?? 5 * 60_000;

  const judged = new Map<string, Judged>();
  const remember = (row: Judgment) => judged.set(row.id, { score: row.score, hint: row.hint, nextStateIds: row.nextStateIds });
  // Judgments recovered from the log are moved into LanceDB first, and the table is read twice:
  // a flush that completes during one read could hide its rows from that read (they leave memory
  // after the read of LanceDB began), never from both.
  try {
    await store.flush().catch(() => undefined);
    for (const row of await store.list("judgments")) remember(row);
    for (const row of await store.list("judgments")) if (!judged.has(row.id)) remember(row);
  } catch (err) {
    if (ownStore) await store.close();
    throw new Error(`cannot read the judgments table: ${err instanceof Error ? err.message : String(err)}`);
  }
  /** Next states of turns that still need a judgment (or a feedback rewrite), by turn. */
  const pending = new Map<string, Map<string, NextState>>();
  const ends = new Map<string, NextState>();
  let lastFullScan = -Infinity;
  const skipTurns = new Set<string>();
  const turnCache = new Map<string, Turn>();
  const inFlight = new Map<string, Promise<void>>();
  const retries = new Map<string, RetryState>();
  const sessionEnds = new Map<string, number>();
  let queue: Job[] = [];
  let settling = 0;
  let unscored = 0;
  let stopping = false;
  let timer: NodeJS.Timeout | null = null;
  let ticking: Promise<void> | null = null;

  const startedAt = new Date(now()).toISOString();
  const stats = { judgedThisRun: 0, overriddenThisRun: 0, failuresThisRun: 0, lastJudgedAt: null as string | null };
  let lastError: JudgeStatus["lastError"] = null;

  const status = (): JudgeStatus => {
    const byScore = { "1": 0, "0": 0, "-1": 0 };
    for (const row of judged.values()) byScore[String(row.score) as "1" | "0" | "-1"]++;
    const retrying = [...retries.keys()].filter((id) => !inFlight.has(id) && !queue.some((q) => q.turn.id === id)).length;
    return {
      loop: "judge",
      state: stopping ? "stopped" : "running",
      pid: process.pid,
      startedAt,
      updatedAt: new Date(now()).toISOString(),
      judge: judge.name,
      endpoint: j.method === "rules" && !opts.judge ? null : judgeEndpoint(config).endpoint,
      waiting: queue.length + settling + retrying + inFlight.size,
      ready: queue.length,
      settling,
      retrying,
      inFlight: inFlight.size,
      judged: judged.size,
      ...stats,
      unscoredSessionEnd: unscored,
      byScore,
      lastError,
    };
  };

  const saveStatus = () => {
    try {
      writeJudgeStatus(config.dataDir, status());
    } catch (err) {
      log?.warn({ err: String(err) }, "cannot write the judge status file");
    }
  };

  async function turnsById(ids: string[]): Promise<void> {
    const missing = ids.filter((id) => !turnCache.has(id));
    for (let i = 0; i < missing.length; i += IN_CHUNK) {
      const chunk = missing.slice(i, i + IN_CHUNK);
      const rows = await store.list("turns", { sql: `id IN (${chunk.map(sqlString).join(", ")})` });
      for (const t of rows) turnCache.set(t.id, t);
    }
  }

  /** Reads new next states (all of them on a full scan) into `pending` and `ends`. */
  async function read(t: number): Promise<void> {
    const full = t - lastFullScan >= FULL_SCAN_MS;
    let sql = "(turn_id IS NOT NULL OR kind = 'session_end')";
    if (!full) sql += ` AND received_at >= ${sqlString(new Date(t - RECENT_MS).toISOString())}`;
    const states = await store.list("next_states", { sql });
    if (full) lastFullScan = t;
    for (const s of states) {
      if (s.kind === "session_end") {
        if (full || !sessionEnds.has(s.id)) ends.set(s.id, s);
        continue;
      }
      const turnId = s.turnId!;
      if (skipTurns.has(turnId)) continue;
      const prev = judged.get(turnId);
      if (prev && (s.kind !== "feedback" || prev.nextStateIds.includes(s.id)) && !pending.has(turnId)) continue;
      let m = pending.get(turnId);
      if (!m) pending.set(turnId, (m = new Map()));
      m.set(s.id, s);
    }
  }

  /** Rebuilds the ready queue. */
  async function scan(): Promise<void> {
    const t = now();
    await read(t);
    const candidates = [...pending.keys()].filter((id) => !inFlight.has(id));
    await turnsById(candidates);
    const jobs: Job[] = [];
    settling = 0;
    for (const turnId of candidates) {
      const turn = turnCache.get(turnId);
      if (!turn) continue; // The sidecar has not flushed this turn yet.
      if (!isJudgeable(turn)) {
        skipTurns.add(turnId);
        pending.delete(turnId);
        turnCache.delete(turnId);
        continue;
      }
      const previous = judged.get(turnId) ?? null;
      const states = [...pending.get(turnId)!.values()];
      if (previous && !states.some((s) => s.kind === "feedback" && !previous.nextStateIds.includes(s.id))) {
        pending.delete(turnId);
        continue;
      }
      const r = retries.get(turnId);
      if (r && r.at > t) continue;
      const evidence = chooseEvidence(states);
      if (!previous && !isReady(turn, evidence, t, j.settleMs)) {
        settling++;
        continue;
      }
      jobs.push({ turn, evidence, previous });
    }
    jobs.push(...(await sessionEndJobs(t)));
    jobs.sort((a, b) => a.turn.startedAt.localeCompare(b.turn.startedAt) || a.turn.seq - b.turn.seq);
    queue = jobs;
  }

  /** Main turns of ended sessions that never got a next state. */
  async function sessionEndJobs(t: number): Promise<Job[]> {
    const jobs: Job[] = [];
    for (const end of ends.values()) {
      if (t - (Date.parse(end.receivedAt) || 0) < j.settleMs) continue;
      const turns = await store.list("turns", { where: { sessionId: end.sessionId, turnType: "main", status: "ok" } });
      const withStates = new Set(
        (await store.list("next_states", { where: { sessionId: end.sessionId } })).filter((s) => s.turnId).map((s) => s.turnId!),
      );
      const open = turns.filter((x) => !withStates.has(x.id) && !judged.has(x.id));
      sessionEnds.set(end.id, open.length);
      // Left unscored: counted once, looked at again only by the next full scan.
      if (open.length === 0 || j.sessionEnd === "skip") {
        ends.delete(end.id);
        continue;
      }
      for (const turn of open) {
        const r = retries.get(turn.id);
        if (inFlight.has(turn.id) || (r && r.at > t)) continue;
        jobs.push({ turn, evidence: [end], previous: null });
      }
    }
    unscored = j.sessionEnd === "skip" ? [...sessionEnds.values()].reduce((a, b) => a + b, 0) : 0;
    return jobs;
  }

  function pump(): void {
    while (!stopping && inFlight.size < j.concurrency && queue.length) {
      const job = queue.shift()!;
      if (inFlight.has(job.turn.id)) continue;
      const p = run(job).finally(() => {
        inFlight.delete(job.turn.id);
        pump();
      });
      inFlight.set(job.turn.id, p);
    }
  }

  async function run(job: Job): Promise<void> {
    const { turn, evidence, previous } = job;
    try {
      let verdict: Verdict = await judge.judge(inputFromTurn(turn, evidence), abort.signal);
      if (stopping) return;
      let ids = evidence.map((s) => s.id);
      if (previous) {
        // Feedback rewrites the score; the earlier hint stays when it pointed the same way.
        ids = [...new Set([...previous.nextStateIds, ...ids])];
        if (verdict.hint === null && previous.hint && previous.score === verdict.score) verdict = { ...verdict, hint: previous.hint };
      }
      const judgment = toJudgment(turn, ids, verdict, new Date(now()));
      store.put("judgments", judgment, { insert: !previous });
      remember(judgment);
      pending.delete(turn.id);
      turnCache.delete(turn.id);
      retries.delete(turn.id);
      stats.judgedThisRun++;
      if (previous) stats.overriddenThisRun++;
      stats.lastJudgedAt = judgment.createdAt;
      log?.info(
        { turnId: turn.id, score: judgment.score, method: judgment.method, hint: judgment.hint !== null, override: previous !== null, ms: Math.round(verdict.costMs), createdAt: judgment.createdAt },
        "judged",
      );
      opts.onJudged?.(judgment);
    } catch (err) {
      if (stopping) return;
      const r = retries.get(turn.id) ?? { attempts: 0, at: 0 };
      r.attempts++;
      r.at = now() + Math.min(retryCap, retryBase * 2 ** (r.attempts - 1));
      retries.set(turn.id, r);
      stats.failuresThisRun++;
      const message = err instanceof Error ? err.message : String(err);
      lastError = { message, at: new Date(now()).toISOString(), turnId: turn.id };
      log?.warn({ turnId: turn.id, attempts: r.attempts, retryInMs: r.at - now(), err: message }, "judging failed; will retry");
    }
  }

  async function tick(): Promise<void> {
    if (stopping) return;
    ticking ??= (async () => {
      try {
        await scan();
        pump();
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        lastError = { message: `store: ${message}`, at: new Date(now()).toISOString(), turnId: null };
        log?.warn({ err: message }, "judge loop scan failed");
      } finally {
        saveStatus();
      }
    })().finally(() => {
      ticking = null;
    });
    return ticking;
  }

  async function runUntilIdle(): Promise<void> {
    for (;;) {
      await tick();
      if (!inFlight.size && !queue.length) break;
      while (inFlight.size) await Promise.race(inFlight.values());
    }
    // Jobs can finish within the tick that started them: the file must show their results.
    saveStatus();
  }

  const schedule = () => {
    if (stopping || opts.manual) return;
    timer = setTimeout(() => {
      void tick().finally(schedule);
    }, j.pollMs);
  };

  if (!opts.manual) void tick().finally(schedule);

  return {
    store,
    tick,
    runUntilIdle,
    status,
    async stop() {
      if (stopping) return;
      stopping = true;
      if (timer) clearTimeout(timer);
      abort.abort(new Error("judge loop stopping"));
      await ticking?.catch(() => undefined);
      await Promise.allSettled([...inFlight.values()]);
      saveStatus();
      if (ownStore) await store.close();
    },
  };
}

