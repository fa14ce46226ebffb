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
import type { TurnRef } from "./turns.js";

export interface Ticket {
  placement: Placement;
  seq: number;
}

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

  async record(call: CallOutcome, ticket: Promise<Ticket>): Promise<TurnRef | null> {
    try {
      this.observer?.turnFinished(call);
    } catch (err) {
      this.logger.warn({ err: String(err), turnId: call.turnId }, "turn observer failed");
    }
    try {
      const { placement, seq } = await ticket;
      const ref = await this.store.putTurn({
        turnId: call.turnId,
        sessionId: placement.sessionId,
        runId: call.tags.runId,
        callId: call.tags.callId,
        turnType: placement.turnType,
        seq,
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
      });
      this.recorded++;
      this.byStatus[ref.status]++;
      this.metrics.turns.inc({ status: ref.status, turn_type: ref.turnType });
      this.book.noteTurn(ref);
      this.linker.onTurn(ref);
      if (call.tags.sessionDone) await this.sessionDone(ref);
      return ref;
    } catch (err) {
      this.metrics.recordErrors.inc();
      this.logger.error({ err: String(err), turnId: call.turnId }, "could not record a model call (it was answered)");
      return null;
    }
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
