// Next states: stores what happened after a turn and links it to that turn. `forCallId` names one
// model call; `forRunId` an agent turn, i.e. its last model call; an event naming neither follows
// the session's last main-line turn. An event whose turn is not known yet is stored unlinked and
// linked when the turn arrives, also after a restart (unlinked events are reloaded at start).
// Events are idempotent by id: the first one stored wins.
import { eventToNextState, sqlString, type ClawloopEvent, type Logger, type NextState } from "../core/index.js";
import type { SecretMasker } from "./privacy.js";
import type { RecordStore } from "./record-store.js";
import { Lru, type SessionBook, type TurnRef } from "./sessions.js";

export type EventStatus = "stored" | "duplicate";

export interface EventResult {
  id: string;
  status: EventStatus;
  /** The turn it was linked to; null while that turn is unknown. */
  turnId: string | null;
}

export interface LinkerCounts {
  received: number;
  stored: number;
  duplicates: number;
  /** Events stored without their turn, waiting for it (in this process). */
  waiting: number;
}

const MAX_TEXT = 64 * 1024;
const MAX_WAITING = 100_000;

export class EventLinker {
  /** Event ids known to be stored (so retries are answered without asking the store). */
  private readonly seen = new Lru<string, true>(200_000);
  private readonly waiting = new Map<string, NextState>();
  private readonly waitingByCall = new Map<string, Set<string>>();
  private readonly waitingByRun = new Map<string, Set<string>>();
  /**
   * Events that waited for a run and were linked when its first call arrived: which call is the
   * run's last is only known once later calls stop arriving, so later calls re-link them.
   */
  private readonly runWatch = new Lru<string, { ids: Set<string>; seq: number }>(10_000);
  private readonly counts = { received: 0, stored: 0, duplicates: 0 };

  constructor(
    private readonly store: RecordStore,
    private readonly book: SessionBook,
    private readonly masker: SecretMasker,
    private readonly logger: Logger,
  ) {}

  /** Reloads events stored unlinked by an earlier process and links those whose turn is known now. */
  async init(): Promise<void> {
    let rows: NextState[];
    try {
      rows = await this.store.list("next_states", { where: { turnId: null } });
    } catch (err) {
      this.logger.warn({ err: String(err) }, "could not reload unlinked next states");
      return;
    }
    for (const ns of rows) {
      this.seen.set(ns.id, true);
      if (ns.kind === "session_end") continue;
      const ref = await this.resolve(ns).catch(() => null);
      if (ref) this.link(ns, ref, false);
      else this.wait(ns);
    }
    if (rows.length) this.logger.info({ unlinked: rows.length, waiting: this.waiting.size }, "reloaded unlinked next states");
  }

  stats(): LinkerCounts {
    return { ...this.counts, waiting: this.waiting.size };
  }

  async ingest(events: ClawloopEvent[], source: NextState["source"] = "plugin"): Promise<EventResult[]> {
    this.counts.received += events.length;
    const receivedAt = new Date().toISOString();
    const results: EventResult[] = [];
    const fresh: ClawloopEvent[] = [];
    const inBatch = new Set<string>();
    for (const ev of events) {
      if (this.seen.has(ev.id) || inBatch.has(ev.id)) continue;
      inBatch.add(ev.id);
      fresh.push(ev);
    }
    // Ids not remembered here may still be in the store (stored by an earlier process).
    const stored = await this.storedIds(fresh.map((e) => e.id));
    for (const ev of events) {
      if (!inBatch.has(ev.id) || stored.has(ev.id)) {
        this.counts.duplicates++;
        this.seen.set(ev.id, true);
        results.push({ id: ev.id, status: "duplicate", turnId: null });
        continue;
      }
      inBatch.delete(ev.id);
      this.seen.set(ev.id, true);
      const ns = this.clean(eventToNextState(ev, source, receivedAt));
      const ref = await this.resolve(ns).catch((err: unknown) => {
        this.logger.warn({ err: String(err), event: ns.id }, "could not look up the event's turn; keeping it unlinked");
        return null;
      });
      if (ref) ns.turnId = ref.id;
      await this.store.put("next_states", ns);
      this.counts.stored++;
      if (!ref && ns.kind !== "session_end") this.wait(ns);
      results.push({ id: ns.id, status: "stored", turnId: ns.turnId });
    }
    return results;
  }

  /** Stores one next state made by the sidecar itself (explicit feedback, X-Session-Done). */
  async add(ns: NextState): Promise<EventResult> {
    const [r] = await this.ingestStates([ns]);
    return r!;
  }

  private async ingestStates(states: NextState[]): Promise<EventResult[]> {
    const out: EventResult[] = [];
    for (const raw of states) {
      if (this.seen.has(raw.id)) {
        out.push({ id: raw.id, status: "duplicate", turnId: null });
        continue;
      }
      this.seen.set(raw.id, true);
      const ns = this.clean(raw);
      const ref = ns.turnId ? null : await this.resolve(ns).catch(() => null);
      if (ref) ns.turnId = ref.id;
      await this.store.put("next_states", ns);
      this.counts.stored++;
      if (!ns.turnId && ns.kind !== "session_end") this.wait(ns);
      out.push({ id: ns.id, status: "stored", turnId: ns.turnId });
    }
    return out;
  }

  private clean(ns: NextState): NextState {
    let text = ns.text;
    if (text !== null) {
      if (text.length > MAX_TEXT) text = text.slice(0, MAX_TEXT);
      text = this.masker.maskString(text).value;
    }
    return { ...ns, text };
  }

  private async storedIds(ids: string[]): Promise<Set<string>> {
    const out = new Set<string>();
    if (ids.length === 0) return out;
    const want = new Set(ids);
    for (let i = 0; i < ids.length; i += 500) {
      const part = ids.slice(i, i + 500);
      const rows = await this.store.list("next_states", { sql: `id IN (${part.map(sqlString).join(",")})` });
      for (const r of rows) if (want.has(r.id)) out.add(r.id);
    }
    return out;
  }

  /** The turn an event follows, if known. */
  private async resolve(ns: NextState): Promise<TurnRef | null> {
    if (ns.forCallId) return this.book.findByCall(ns.forCallId);
    if (ns.forRunId) return this.book.findLastOfRun(ns.forRunId);
    return this.book.findLastMain(ns.sessionId);
  }

  private wait(ns: NextState): void {
    if (this.waiting.size >= MAX_WAITING) {
      // Memory is bounded; the oldest stays in the store unlinked and is reloaded at the next start.
      const oldest = this.waiting.keys().next();
      if (!oldest.done) this.waiting.delete(oldest.value);
    }
    this.waiting.set(ns.id, ns);
    const add = (m: Map<string, Set<string>>, key: string) => {
      let s = m.get(key);
      if (!s) m.set(key, (s = new Set()));
      s.add(ns.id);
    };
    if (ns.forCallId) add(this.waitingByCall, ns.forCallId);
    else if (ns.forRunId) add(this.waitingByRun, ns.forRunId);
    // An event that names neither call nor run has nothing to wait for.
    else this.waiting.delete(ns.id);
  }

  private watchRun(ns: NextState, ref: TurnRef): void {
    if (!ns.forRunId) return;
    const w = this.runWatch.get(ns.forRunId) ?? { ids: new Set<string>(), seq: ref.seq };
    w.ids.add(ns.id);
    w.seq = Math.max(w.seq, ref.seq);
    this.runWatch.set(ns.forRunId, w);
  }

  private link(ns: NextState, ref: TurnRef, watch: boolean): void {
    const linked: NextState = { ...ns, turnId: ref.id };
    // Not awaited: if this write is lost, the event stays unlinked and is linked again at start.
    this.store.put("next_states", linked).catch((err: unknown) => this.logger.warn({ err: String(err), event: ns.id }, "could not link an event"));
    if (watch && ns.forRunId && !ns.forCallId) this.watchRun(linked, ref);
  }

  /** A turn was recorded: link the events that were waiting for it. */
  onTurn(ref: TurnRef): void {
    const t = ref;
    const take = (m: Map<string, Set<string>>, key: string | null) => {
      if (!key) return;
      const ids = m.get(key);
      if (!ids) return;
      m.delete(key);
      for (const id of ids) {
        const ns = this.waiting.get(id);
        if (!ns) continue;
        this.waiting.delete(id);
        this.link(ns, ref, true);
      }
    };
    take(this.waitingByCall, t.callId);
    take(this.waitingByRun, t.runId);
    if (t.runId) {
      // A later call of a run whose events were linked to an earlier call: the run's last call wins.
      const w = this.runWatch.get(t.runId);
      if (w && t.seq > w.seq) {
        w.seq = t.seq;
        void this.relink(w.ids, ref);
      }
    }
  }

  private async relink(ids: Set<string>, ref: TurnRef): Promise<void> {
    for (const id of ids) {
      const ns = await this.store.get("next_states", id).catch(() => null);
      if (ns && ns.turnId !== ref.id) await this.store.put("next_states", { ...ns, turnId: ref.id }).catch(() => undefined);
    }
  }
}
