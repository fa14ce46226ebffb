// What the sidecar remembers about sessions between calls: the next sequence number of each
// session, and which turn is a call id's, a run's last, or a session's last main-line turn. It is a
// bounded cache in front of the store: a restarted sidecar (or an evicted entry) asks the store once,
// so `seq` continues where the previous process stopped.
//
// A session's last seq that cannot be read is never guessed: numbering it from 0 would repeat the
// seqs of the turns the store already has. Its calls are answered and recorded all the same (the
// recorder journals them without their place, and the store host numbers them next after the
// session's last turn as it takes them in); the lookup is tried again, at most every
// `lookupRetryCapMs`, until it answers, and then this sidecar numbers them (the same numbers).
//
// Writing such a call again with its number means keeping the call (request and response) in
// memory until the lookup answers, so those rewrites are bounded, per session and in all
// (`sidecar.seqRewritesPerSession`, `sidecar.seqRewritesMax`). Past a bound the call is not kept:
// its row keeps the number the store host gave it, which follows the order the host took the calls
// in (when they finished) rather than the order they started; the session's numbers still have no
// gap and no repeat, since this book counts the call all the same and leaves it out of the lookup.
import type { Logger } from "../core/index.js";
import type { RecordStore } from "./record-store.js";
import type { TurnRef } from "./turns.js";

export type { TurnRef };

/** A Map used as an LRU: reads move a key to the end, inserts beyond the limit drop the oldest. */
export class Lru<K, V> {
  private readonly map = new Map<K, V>();

  constructor(private readonly limit: number) {}

  get(key: K): V | undefined {
    const v = this.map.get(key);
    if (v !== undefined) {
      this.map.delete(key);
      this.map.set(key, v);
    }
    return v;
  }

  set(key: K, value: V): void {
    this.map.delete(key);
    this.map.set(key, value);
    if (this.map.size > this.limit) {
      const oldest = this.map.keys().next();
      if (!oldest.done) this.map.delete(oldest.value);
    }
  }

  delete(key: K): void {
    this.map.delete(key);
  }

  has(key: K): boolean {
    return this.map.has(key);
  }

  get size(): number {
    return this.map.size;
  }
}

/** Lookup retries: 0.1 s, doubling up to 25.6 s (~51 s in all), then every 30 s until one answers. */
const LOOKUP_RETRY_MS = 100;
const LOOKUP_RETRY_CAP_MS = 30_000;
/** Failed lookups of a session before it is logged as an error (~25 s at the default timings). */
const LOOKUP_QUIET_ATTEMPTS = 9;

/** Calls journaled without their seq kept to be written again with it, per session and in all. */
const SEQ_REWRITES_PER_SESSION = 128;
const SEQ_REWRITES_MAX = 512;

export interface SessionBookLimits {
  sessions?: number;
  calls?: number;
  /** First delay between tries of a session's last-seq lookup (doubled each time), and its cap. */
  lookupRetryMs?: number;
  lookupRetryCapMs?: number;
  /** Calls journaled without their seq that may be kept to be written again with it: per session, and in all. */
  seqRewritesPerSession?: number;
  seqRewritesMax?: number;
}

/** A session whose last seq is being looked up: its calls journaled meanwhile without their seq. */
interface Unnumbered {
  /**
   * The session's latest reserved seq. A session the cache drops while its lookup is under way goes
   * on from here: a second lookup would not know the calls of the first (and would count them).
   */
  last: Promise<number> | null;
  /** All of them (the lookup's answer must not count them). */
  ids: Set<string>;
  /** How many of them are kept to be written again with their number. */
  rewrites: number;
  /** How many are not (past a bound): their rows keep the store host's numbers. */
  dropped: number;
}

export class SessionBook {
  /** Last sequence number handed out per session (a promise while the store is being asked). */
  private readonly seqs: Lru<string, Promise<number>>;
  private readonly byCall: Lru<string, TurnRef>;
  private readonly lastOfRun: Lru<string, TurnRef>;
  private readonly lastMain: Lru<string, TurnRef>;
  /** Call ids already given to a turn id in this process (a retried call gets a suffixed id). */
  private readonly callUses: Lru<string, number>;
  /**
   * Per session whose last seq is being looked up: its calls journaled meanwhile without their seq
   * (`journaledUnnumbered`). The store host numbers those as it takes them in, and may do so before
   * it answers the lookup (a restarted host gets both at once and runs them side by side; a lookup
   * tried again comes after them); the answer must not count them, or this sidecar would number the
   * same calls again after themselves, leaving a gap where they were.
   */
  private readonly unnumbered = new Map<string, Unnumbered>();
  private readonly retryMs: number;
  private readonly retryCapMs: number;
  private readonly rewritesPerSession: number;
  private readonly rewritesMax: number;
  /** Rewrites kept in all sessions (the sum of their `rewrites`). */
  private rewrites = 0;
  /** A rewrite was dropped since no lookup was under way: warned once. */
  private dropWarned = false;
  /** Pending waits between lookup tries, ended by close(). */
  private readonly sleeps = new Map<NodeJS.Timeout, (goOn: boolean) => void>();
  private closed = false;

  /**
   * `sessions` bounds what is kept per session and the call ids already used (a retried id must be
   * told apart for as long as possible: it would otherwise name a second row like the first);
   * `calls` bounds the turns found by call and by run (a turn reference each, ~0.3 KB per turn: at
   * 50,000 they grew the proxy by ~15 MB). Events come seconds after their call; an older one costs
   * a store lookup, not a wrong link.
   */
  constructor(
    private readonly store: Pick<RecordStore, "lastTurn" | "listFields">,
    private readonly logger: Logger,
    limits: SessionBookLimits = {},
  ) {
    this.retryMs = limits.lookupRetryMs ?? LOOKUP_RETRY_MS;
    this.retryCapMs = limits.lookupRetryCapMs ?? LOOKUP_RETRY_CAP_MS;
    this.rewritesPerSession = limits.seqRewritesPerSession ?? SEQ_REWRITES_PER_SESSION;
    this.rewritesMax = limits.seqRewritesMax ?? SEQ_REWRITES_MAX;
    const sessions = limits.sessions ?? 50_000;
    const calls = limits.calls ?? 5_000;
    this.seqs = new Lru(sessions);
    this.lastMain = new Lru(sessions);
    this.byCall = new Lru(calls);
    this.lastOfRun = new Lru(calls);
    this.callUses = new Lru(sessions);
  }

  /** Reserves the next `seq` of a session. `fresh`: the session was just created here. */
  reserveSeq(sessionId: string, fresh = false): Promise<number> {
    const prev = this.seqs.get(sessionId) ?? this.unnumbered.get(sessionId)?.last;
    const next = prev ? prev.then((n) => n + 1) : fresh ? Promise.resolve(0) : this.maxSeq(sessionId).then((n) => n + 1);
    this.seqs.set(sessionId, next);
    const looking = this.unnumbered.get(sessionId);
    if (looking) looking.last = next;
    return next;
  }

  /**
   * A call of the session was journaled without its seq: its session's lookup had not answered.
   * True: keep the call and write it again once its number is known. False: past the bounds, do not
   * keep it; its row keeps the store host's number (warned once, until no lookup is under way).
   */
  journaledUnnumbered(sessionId: string, turnId: string): boolean {
    const u = this.unnumbered.get(sessionId);
    // (No lookup under way: it answered a moment ago, and the number is there already.)
    if (!u) return true;
    u.ids.add(turnId);
    if (u.rewrites < this.rewritesPerSession && this.rewrites < this.rewritesMax) {
      u.rewrites++;
      this.rewrites++;
      return true;
    }
    u.dropped++;
    if (!this.dropWarned) {
      this.dropWarned = true;
      this.logger.warn(
        { sessionId, waiting: u.rewrites, waitingInAll: this.rewrites, perSession: this.rewritesPerSession, max: this.rewritesMax },
        "too many calls wait for their session's last seq to be written again with their number; past these, each keeps the number the store gave it (the order it took them in, not the order they started), counted in clawloop_sidecar_seq_rewrites_dropped_total",
      );
    }
    return false;
  }

  /** Stops the lookups still being tried (the sidecar is stopping): their calls keep the store host's numbers. */
  close(): void {
    this.closed = true;
    for (const [t, wake] of this.sleeps) {
      clearTimeout(t);
      wake(false);
    }
    this.sleeps.clear();
  }

  private async maxSeq(sessionId: string): Promise<number> {
    const ours: Unnumbered = { last: null, ids: new Set(), rewrites: 0, dropped: 0 };
    this.unnumbered.set(sessionId, ours);
    try {
      // Only the recording waits for this, never the call; a store that is restarting gets time.
      for (let attempt = 1; ; attempt++) {
        try {
          const last = await this.lastSeqBefore(sessionId, ours.ids);
          if (attempt > LOOKUP_QUIET_ATTEMPTS || ours.dropped > 0) {
            this.logger.info({ sessionId, attempts: attempt, unnumbered: ours.ids.size, keptStoreNumbers: ours.dropped }, "read the session's last seq at last; numbering its calls");
          }
          return last;
        } catch (err) {
          if (attempt === LOOKUP_QUIET_ATTEMPTS) {
            this.logger.error(
              { err: String(err), sessionId, attempts: attempt },
              `could not read the session's last seq; its calls are recorded and the store numbers them as it takes them in; trying again every ${Math.round(this.retryCapMs / 1000)} s at most`,
            );
          }
          if (!(await this.sleep(Math.min(this.retryMs * 2 ** (attempt - 1), this.retryCapMs)))) return new Promise<never>(() => undefined);
        }
      }
    } finally {
      // Its calls are written again now (or never, when closed): they no longer count.
      this.rewrites -= ours.rewrites;
      if (this.unnumbered.get(sessionId) === ours) this.unnumbered.delete(sessionId);
      if (this.unnumbered.size === 0) this.dropWarned = false;
    }
  }

  /** False when the book was closed (now or meanwhile). */
  private sleep(ms: number): Promise<boolean> {
    if (this.closed) return Promise.resolve(false);
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.sleeps.delete(t);
        resolve(!this.closed);
      }, ms);
      // A lookup still being tried does not keep the process alive.
      t.unref();
      this.sleeps.set(t, resolve);
    });
  }

  /** The session's last seq, not counting `ours` (calls of this sidecar the store host numbered). */
  private async lastSeqBefore(sessionId: string, ours: ReadonlySet<string>): Promise<number> {
    const last = await this.store.lastTurn({ sessionId });
    if (!last || !ours.has(last.id)) return last?.seq ?? -1;
    // Rare (a store host restarted, or a lookup tried again): the session's seqs, to leave ours out.
    // Ours have the highest seqs, so any of them in the store shows up as the last turn.
    let max = -1;
    for (const t of await this.store.listFields("turns", ["seq"], { where: { sessionId } })) if (!ours.has(t.id) && t.seq > max) max = t.seq;
    return max;
  }

  /** A turn id for a call: the plugin's call id, suffixed if that id was already used. */
  turnIdFor(callId: string): string {
    const uses = this.callUses.get(callId) ?? 0;
    this.callUses.set(callId, uses + 1);
    return uses === 0 ? callId : `${callId}#${uses + 1}`;
  }

  noteTurn(ref: TurnRef): void {
    const t = ref;
    if (t.callId) this.byCall.set(t.callId, ref);
    if (t.runId) {
      const cur = this.lastOfRun.get(t.runId);
      if (!cur || cur.seq <= ref.seq) this.lastOfRun.set(t.runId, ref);
    }
    if (t.turnType === "main") {
      const cur = this.lastMain.get(t.sessionId);
      if (!cur || cur.seq <= ref.seq) this.lastMain.set(t.sessionId, ref);
    }
  }

  async findByCall(callId: string): Promise<TurnRef | null> {
    const hit = this.byCall.get(callId);
    if (hit) return hit;
    const ref = await this.store.lastTurn({ callId });
    if (ref) this.byCall.set(callId, ref);
    return ref;
  }

  async findLastOfRun(runId: string): Promise<TurnRef | null> {
    const hit = this.lastOfRun.get(runId);
    if (hit) return hit;
    const ref = await this.store.lastTurn({ runId });
    if (ref) this.lastOfRun.set(runId, ref);
    return ref;
  }

  async findLastMain(sessionId: string): Promise<TurnRef | null> {
    const hit = this.lastMain.get(sessionId);
    if (hit) return hit;
    const ref = await this.store.lastTurn({ sessionId, turnType: "main" });
    if (ref) this.lastMain.set(sessionId, ref);
    return ref;
  }
}
