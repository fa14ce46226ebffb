// Turns a finished model call into a `turns` row and writes it. `store.put` returns once the row
// is in the append-only log, so a call recorded before its last byte reaches the client survives a
// `kill -9` right after. Nothing here ever throws into the proxy: a call that cannot be recorded
// is still answered.
import {
  type Logger,
  type NextState,
  type Store,
  type Turn,
  type TurnRequest,
  type TurnStatus,
} from "../core/index.js";
import type { Assembled } from "./assembler.js";
import type { EventLinker } from "./linker.js";
import type { SidecarMetrics } from "./metrics.js";
import type { Placement } from "./placement.js";
import type { SecretMasker } from "./privacy.js";
import type { SessionBook } from "./sessions.js";
import type { Tags } from "./tagging.js";

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
  request: TurnRequest;
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

const MAX_ERROR = 4_000;

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}

export class Recorder {
  recorded = 0;
  readonly byStatus: Record<TurnStatus, number> = { ok: 0, upstream_error: 0, client_aborted: 0, upstream_cut: 0 };

  constructor(
    private readonly store: Store,
    private readonly book: SessionBook,
    private readonly linker: EventLinker,
    private readonly masker: SecretMasker,
    private readonly metrics: SidecarMetrics,
    private readonly logger: Logger,
  ) {}

  async record(call: CallOutcome, ticket: Promise<Ticket>): Promise<Turn | null> {
    try {
      const { placement, seq } = await ticket;
      const turn = this.build(call, placement, seq);
      this.store.put("turns", turn, { insert: true });
      this.recorded++;
      this.byStatus[turn.status]++;
      this.metrics.turns.inc({ status: turn.status, turn_type: turn.turnType });
      this.book.noteTurn(turn);
      this.linker.onTurn(turn);
      if (call.tags.sessionDone) await this.sessionDone(turn);
      return turn;
    } catch (err) {
      this.metrics.recordErrors.inc();
      this.logger.error({ err: String(err), turnId: call.turnId }, "could not record a model call (it was answered)");
      return null;
    }
  }

  private build(call: CallOutcome, placement: Placement, seq: number): Turn {
    const a = call.assembled;
    // Secrets are masked in text; token ids would still spell them, so ids go where a secret was.
    const req = this.masker.maskDeep(call.request);
    let response = a?.response ?? null;
    let respHits = 0;
    if (response) {
      const r = this.masker.maskDeep(response);
      response = r.value;
      respHits = r.hits;
    }
    const errors = [call.requestError, call.error, a?.truncated ? "response exceeded sidecar.maxRecordBytes; recorded in part" : null].filter(
      (e): e is string => !!e,
    );
    let error = errors.length ? errors.join("; ") : null;
    if (error) error = this.masker.maskString(error.slice(0, MAX_ERROR)).value;
    const turnType = call.requestError ? "side" : placement.turnType;
    return {
      id: call.turnId,
      sessionId: placement.sessionId,
      runId: call.tags.runId,
      callId: call.tags.callId,
      turnType,
      seq,
      endpoint: call.endpoint,
      model: call.model,
      adapter: call.adapter,
      request: req.value,
      response,
      promptTokenIds: req.hits ? null : (a?.promptTokenIds ?? null),
      completionTokenIds: respHits ? null : (a?.completionTokenIds ?? null),
      completionLogprobs: respHits ? null : (a?.completionLogprobs ?? null),
      usage: a?.usage ?? null,
      startedAt: call.startedAt,
      ttfbMs: call.ttfbMs === null ? null : round(call.ttfbMs),
      totalMs: round(call.totalMs),
      upstreamStatus: call.upstreamStatus,
      status: call.status,
      error,
      traceparent: call.tags.traceparent,
      placement: placement.placement,
      parentTurnId: placement.parentTurnId,
    };
  }

  /** OpenClaw-RL's `X-Session-Done`: the session ends with this call. */
  private async sessionDone(turn: Turn): Promise<void> {
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
