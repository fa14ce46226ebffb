// Hands a finished model call to the store as a turn and tells the rest of the sidecar about it.
// The returned promise resolves once the row is in the append-only log, so a call recorded before
// its last byte reaches the client survives a `kill -9` right after. Nothing here ever throws into
// the proxy: a call that cannot be recorded is still answered.
import type { Logger, NextState, TurnStatus } from "../core/index.js";
import type { Assembled } from "./assembler.js";
import type { EventLinker } from "./linker.js";
import type { SidecarMetrics } from "./metrics.js";
import type { Placement } from "./placement.js";
import type { RecordStore } from "./record-store.js";
import type { SessionBook } from "./sessions.js";
import type { Tags } from "./tagging.js";
import type { TurnJob, TurnRef } from "./turns.js";

/** The promise's value if it settles within `ms`, else undefined. */
async function within<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

export interface Ticket {
  placement: Placement;
  /** Its place in the session: for a session not seen since start, the store is asked first. */
  seq: Promise<number>;
}

/**
 * How long a finished call waits for its place in the session before it is journaled without one.
 * The store host answers in well under this; past it the host is stalled (a long LanceDB write, a
 * swap storm, SIGSTOP), and waiting longer would keep an answered call out of the journal.
 */
export const SEQ_WAIT_MS = 100;

export interface CallOutcome {
  turnId: string;
  tags: Tags;
  endpoint: "chat" | "completions";
  model: string;
  adapter: string | null;
  /** The client's request body as it arrived. */
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
}

/** What is kept of a call after it is written: not its request or response. */
type CallFacts = Pick<CallOutcome, "turnId" | "tags">;

/** Told about every finished call before it is written (session inference indexes its answer). */
export interface TurnObserver {
  turnFinished(call: CallOutcome): void;
}

export class Recorder {
  recorded = 0;
  readonly byStatus: Record<TurnStatus, number> = { ok: 0, upstream_error: 0, client_aborted: 0, upstream_cut: 0 };

  constructor(
    private readonly store: RecordStore,
    private readonly book: SessionBook,
    private readonly linker: EventLinker,
    private readonly metrics: SidecarMetrics,
    private readonly logger: Logger,
    private readonly observer: TurnObserver | null = null,
  ) {}

  /**
   * Resolves once the call is durable (journaled, or in the store's log) with its ref, or with null
   * when it was journaled before its place in the session was known: then it is written again,
   * numbered, in the background, and the rest of the sidecar hears of it from there.
   */
  async record(call: CallOutcome, ticket: Promise<Ticket>): Promise<TurnRef | null> {
    try {
      this.observer?.turnFinished(call);
    } catch (err) {
      this.logger.warn({ err: String(err), turnId: call.turnId }, "turn observer failed");
    }
    try {
      const { placement, seq } = await ticket;
      const job: TurnJob = {
        turnId: call.turnId,
        sessionId: placement.sessionId,
        runId: call.tags.runId,
        callId: call.tags.callId,
        turnType: placement.turnType,
        seq: null,
        placement: placement.placement,
        parentTurnId: placement.parentTurnId,
        endpoint: call.endpoint,
        model: call.model,
        adapter: call.adapter,
        rawRequest: call.rawRequest,
        requestError: call.requestError,
        startedAt: call.startedAt,
        ttfbMs: call.ttfbMs,
        totalMs: call.totalMs,
        upstreamStatus: call.upstreamStatus,
        status: call.status,
        error: call.error,
        assembled: call.assembled,
        traceparent: call.tags.traceparent,
      };
      const known = await within(seq, SEQ_WAIT_MS);
      if (known !== undefined) return await this.stored(await this.store.putTurn({ ...job, seq: known }), call);
      // The store host has not said where the session ends: journal the call as it is (the host
      // numbers it when it takes it in, also after a crash), then once more with its number. The
      // book hears of it first, so that the lookup's answer does not count it if the host has it.
      const rewrite = this.book.journaledUnnumbered(job.sessionId, job.turnId);
      const journaled = await this.store.putTurn(job);
      if (rewrite) {
        void seq
          .then((n) => this.store.putTurn({ ...job, seq: n, replaces: true }))
          .then((ref) => this.stored(ref, call))
          .catch((err: unknown) => this.failed(err, call));
        return null;
      }
      // Past the book's bounds (sidecar/sessions.ts): the row keeps the host's number, and only the
      // turn's ref waits for this sidecar's, for the rest of the sidecar to hear of the turn.
      this.metrics.seqRewritesDropped.inc();
      const facts: CallFacts = { turnId: call.turnId, tags: call.tags };
      void seq
        .then((n) => this.stored(journaled.seq >= 0 ? journaled : { ...journaled, seq: n }, facts))
        .catch((err: unknown) => this.failed(err, facts));
      return null;
    } catch (err) {
      return this.failed(err, call);
    }
  }

  private async stored(ref: TurnRef, call: CallFacts): Promise<TurnRef> {
    this.recorded++;
    this.byStatus[ref.status]++;
    this.metrics.turns.inc({ status: ref.status, turn_type: ref.turnType });
    this.book.noteTurn(ref);
    this.linker.onTurn(ref);
    if (call.tags.sessionDone) await this.sessionDone(ref);
    return ref;
  }

  private failed(err: unknown, call: CallFacts): null {
    this.metrics.recordErrors.inc();
    this.logger.error({ err: String(err), turnId: call.turnId }, "could not record a model call (it was answered)");
    return null;
  }

  /** OpenClaw-RL's `X-Session-Done`: the session ends with this call. */
  private async sessionDone(turn: TurnRef): Promise<void> {
    const now = new Date().toISOString();
    const ns: NextState = {
      id: `session-done-${turn.id}`,
      kind: "session_end",
      sessionId: turn.sessionId,
      forRunId: turn.runId,
      forCallId: turn.callId,
      turnId: turn.id,
      text: null,
      score: null,
      toolName: null,
      toolCallId: null,
      exitCode: null,
      at: now,
      receivedAt: now,
      source: "api",
    };
    await this.linker.add(ns);
  }
}
