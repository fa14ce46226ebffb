// The plugin's behaviour, independent of how OpenClaw wires it: turns hook events into tags and
// next-state events. One instance per process, shared by every module instance (see index.ts).
import path from "node:path";
import {
  feedbackEvent,
  modelErrorEvent,
  sessionEndEvent,
  toolEvent,
  userMessageEvent,
  type ClawloopEvent,
} from "./events.js";
import { messageText, parseFeedbackCommand, reactionsInRequest, type Feedback } from "./feedback.js";
import type {
  AfterToolCallEvent,
  AgentContext,
  BeforeAgentReplyResult,
  BeforeMessageWriteEvent,
  ModelCallEndedEvent,
  PluginLogger,
  StreamOptions,
  ToolContext,
} from "./openclaw-api.js";
import { Outbox } from "./outbox.js";
import { previousRunId, SessionIndex } from "./sessions.js";
import { readToken, type Settings } from "./settings.js";
import { runIdOfCall, turnTypeOf, type CallTags, type RunInfo } from "./tagging.js";

const MAX_RUNS = 2000;

export interface SessionRef {
  sessionKey?: string | null;
  sessionId?: string | null;
}

export interface FeedbackOutcome {
  recorded: boolean;
  forRunId: string | null;
  message: string;
}

export class ClawloopRuntime {
  readonly outbox: Outbox;
  readonly sessions: SessionIndex;
  /** Runs seen in this process, by run id (hooks and the stream wrapper may sit in different module instances). */
  private readonly runs = new Map<string, RunInfo>();
  /** Runs whose prompt was already looked at (model-error retries re-run the prompt hooks). */
  private readonly promptSeen = new Set<string>();
  /** Call ids handed out per run (see uniqueCallId). */
  private readonly callIds = new Map<string, { used: Set<string>; max: number; latest: Map<string, string> }>();
  private token: string | null = null;
  private warnedUntracked = false;

  constructor(
    public settings: Settings,
    public logger: PluginLogger,
  ) {
    this.sessions = new SessionIndex(path.join(settings.workDir, "sessions"));
    this.outbox = new Outbox({
      spoolDir: path.join(settings.workDir, "spool"),
      endpoint: () => `${this.settings.sidecarUrl}/clawloop/v1/events`,
      token: () => (this.token ??= readToken(this.settings)),
      onAuthFailure: () => {
        this.token = null;
      },
      logger,
      retryMaxMs: settings.retryMaxMs,
    });
  }

  emit(events: ClawloopEvent[]): void {
    if (events.length) this.outbox.enqueue(events);
  }

  // ---- tagging -------------------------------------------------------------------------------

  /**
   * Tags for one model request; records the call as its run's latest (and its session's last main
   * turn), and reports reactions that reached the agent with this request as feedback.
   */
  describeCall(options: StreamOptions, context?: unknown): CallTags {
    const runId = runIdOfCall(options.requestId);
    const callId = runId && options.requestId ? this.uniqueCallId(runId, options.requestId) : null;
    const run = runId ? this.runs.get(runId) : undefined;
    if (this.settings.reactions) this.reportReactions(context, options.sessionId ?? run?.sessionId ?? null, run?.sessionKey ?? null);
    if (runId && !run && !this.warnedUntracked) {
      this.warnedUntracked = true;
      this.logger.warn(
        "clawloop: a model call came from a run no hook announced; is plugins.entries.clawloop.hooks.allowConversationAccess true? Calls are tagged main without knowing the trigger.",
      );
    }
    const sessionId = options.sessionId ?? run?.sessionId ?? null;
    const turnType = turnTypeOf(runId, run);
    if (run && callId) run.lastCallId = callId;
    if (runId && callId && turnType === "main" && sessionId) {
      this.sessions.noteMainCall({ sessionId, sessionKey: run?.sessionKey ?? null }, runId, callId);
    }
    return { sessionId, sessionKey: run?.sessionKey ?? null, runId, callId, turnType };
  }

  // ---- hooks ---------------------------------------------------------------------------------

  /**
   * A run is about to build its prompt (`before_prompt_build`, `llm_input`): remember its trigger,
   * and report the user's new message as the next state of the turn before it.
   */
  onPrompt(p: { prompt: string; currentUserMessage?: string; messages: unknown[] }, ctx: AgentContext): void {
    const runId = ctx.runId;
    if (!runId) return;
    const run = this.trackRun(runId, ctx);
    if (this.promptSeen.has(runId)) return;
    this.promptSeen.add(runId);
    const sessionId = run.sessionId;
    if (!sessionId) return;

    const rec = this.sessions.get({ sessionKey: run.sessionKey, sessionId });
    const sameSession = rec && rec.sessionId === sessionId ? rec : null;
    const prev =
      previousRunId(p.messages ?? [], runId, rec?.noModelRunIds ?? []) ??
      (sameSession?.lastMainRunId && sameSession.lastMainRunId !== runId ? sameSession.lastMainRunId : null);
    const text = p.currentUserMessage ?? p.prompt ?? "";
    const events: ClawloopEvent[] = [];

    if (prev && turnTypeOf(runId, run) === "main" && !parseFeedbackCommand(text)) {
      events.push(userMessageEvent({ sessionId, forRunId: prev, byRunId: runId, text: cleanUserText(text) }));
    }
    this.emit(events);
  }

  /**
   * Emoji reactions arrive as system-event lines in the request's trailing context. They name a
   * channel message, not a turn; clawloop attributes them to the session's last main turn before
   * this request (approximate when the user reacts to an older message).
   */
  private reportReactions(context: unknown, sessionId: string | null, sessionKey: string | null): void {
    const reactions = reactionsInRequest((context as { messages?: unknown } | null)?.messages);
    if (!reactions.length || !sessionId) return;
    const rec = this.sessions.get({ sessionKey, sessionId });
    this.emit(
      reactions.map((r) =>
        feedbackEvent({ sessionId: rec?.sessionId ?? sessionId, forRunId: rec?.lastMainRunId ?? null, score: r.score, text: r.text, key: `reaction:${r.raw}` }),
      ),
    );
  }

  /** `/good` or `/bad` sent as an agent message (`openclaw agent -m "/bad …"`): answer without the model. */
  onBeforeAgentReply(cleanedBody: string, ctx: AgentContext): BeforeAgentReplyResult | undefined {
    const fb = parseFeedbackCommand(cleanedBody);
    if (!fb) return undefined;
    const ref = { sessionKey: ctx.sessionKey ?? null, sessionId: ctx.sessionId ?? null };
    const outcome = this.recordFeedback(fb, ref, `run:${ctx.runId ?? cleanedBody}`);
    if (ctx.runId && ctx.sessionId) this.sessions.noteNoModelRun({ sessionId: ctx.sessionId, sessionKey: ctx.sessionKey ?? null }, ctx.runId);
    return { handled: true, reply: { text: outcome.message }, reason: "clawloop feedback" };
  }

  /** Feedback on the session's last main turn, from a command, an agent message or a reaction. */
  recordFeedback(fb: Feedback, ref: SessionRef, key: string): FeedbackOutcome {
    const rec = this.sessions.get(ref);
    const sessionId = rec?.sessionId ?? ref.sessionId ?? null;
    if (!sessionId) {
      return { recorded: false, forRunId: null, message: "clawloop: this conversation has no session yet, nothing to rate." };
    }
    const forRunId = rec?.lastMainRunId ?? null;
    // The run, not a call: the sidecar links it to the run's last model call, which it knows best.
    this.emit([feedbackEvent({ sessionId, forRunId, score: fb.score, text: fb.text, key })]);
    const what = fb.score > 0 ? "👍" : "👎";
    return {
      recorded: true,
      forRunId,
      message: forRunId
        ? `${what} Noted for the last reply${fb.text ? `: “${fb.text}”` : ""}. clawloop will learn from it.`
        : `${what} Noted. (clawloop has not seen a reply in this session yet; the sidecar will attach it to the session's last turn.)`,
    };
  }

  onAfterToolCall(e: AfterToolCallEvent, ctx: ToolContext): void {
    const runId = e.runId ?? ctx.runId;
    if (!runId) return;
    const run = this.runs.get(runId);
    const sessionId = ctx.sessionId ?? run?.sessionId;
    if (!sessionId) return;
    const outcome = toolOutcome(e);
    this.emit([
      toolEvent({
        sessionId,
        runId,
        callId: run?.lastCallId ?? null,
        toolName: e.toolName ?? ctx.toolName,
        toolCallId: e.toolCallId ?? ctx.toolCallId ?? null,
        error: outcome.error,
        text: outcome.text,
        exitCode: outcome.exitCode,
      }),
    ]);
  }

  onModelCallEnded(e: ModelCallEndedEvent, ctx: AgentContext): void {
    if (e.outcome !== "error") return;
    const sessionId = e.sessionId ?? ctx.sessionId ?? this.runs.get(e.runId)?.sessionId;
    if (!sessionId) return;
    const why = [e.errorCategory ?? "error", e.failureKind].filter(Boolean).join(": ");
    const callId = this.callIds.get(e.runId)?.latest.get(e.callId) ?? e.callId;
    this.emit([modelErrorEvent({ sessionId, runId: e.runId, callId, text: `model call failed (${why})` })]);
  }

  /**
   * OpenClaw numbers a run's model calls from 1 again when it retries the run (after a model error
   * or a context overflow), so `<runId>:model:1` can name two calls. The sidecar keys turns by
   * call id; a repeated one gets the run's next free number instead, so no call overwrites another.
   */
  private uniqueCallId(runId: string, requestId: string): string {
    let c = this.callIds.get(runId);
    if (!c) {
      c = { used: new Set(), max: 0, latest: new Map() };
      this.callIds.set(runId, c);
      if (this.callIds.size > MAX_RUNS) this.callIds.delete(this.callIds.keys().next().value!);
    }
    const n = Number(requestId.slice(requestId.lastIndexOf(":model:") + 7));
    let id = requestId;
    if (c.used.has(requestId) || !Number.isInteger(n)) id = `${runId}:model:${c.max + 1}`;
    const m = Number(id.slice(id.lastIndexOf(":model:") + 7));
    c.max = Math.max(c.max, m);
    c.used.add(id);
    c.latest.set(requestId, id);
    return id;
  }

  /** Keeps `/good …` and `/bad …` out of the transcript, so the model never sees them. Synchronous by contract. */
  onBeforeMessageWrite(e: BeforeMessageWriteEvent): { block: true } | undefined {
    if (!this.settings.hideFeedbackCommands || e.message?.role !== "user") return undefined;
    return parseFeedbackCommand(messageText(e.message.content)) ? { block: true } : undefined;
  }

  onSessionEnd(sessionId: string | undefined): void {
    if (sessionId) this.emit([sessionEndEvent(sessionId)]);
  }

  private trackRun(runId: string, ctx: AgentContext): RunInfo {
    let run = this.runs.get(runId);
    if (!run) {
      run = { runId, sessionId: null, sessionKey: null, trigger: null, lastCallId: null };
      this.runs.set(runId, run);
      if (this.runs.size > MAX_RUNS) {
        const oldest = this.runs.keys().next().value;
        if (oldest !== undefined) {
          this.runs.delete(oldest);
          this.promptSeen.delete(oldest);
        }
      }
    }
    run.sessionId ??= ctx.sessionId ?? null;
    run.sessionKey ??= ctx.sessionKey ?? null;
    run.trigger ??= ctx.trigger ?? null;
    return run;
  }
}

/** The user's words without OpenClaw's envelope (timestamp prefix, first-message Runtime block). */
export function cleanUserText(text: string): string {
  return text
    .replace(/\n\s*\nRuntime:[\s\S]*$/, "")
    .replace(/^\s*\[[^\]\n]{1,80}\]\s*/, "")
    .trim();
}

/** Whether a tool call failed, what it said, and its exit code where it ran a process. */
export function toolOutcome(e: AfterToolCallEvent): { error: boolean; text: string | null; exitCode: number | null } {
  const result = (e.result ?? null) as { content?: unknown; details?: Record<string, unknown>; isError?: unknown } | null;
  const details = result?.details ?? null;
  const exit = details?.exitCode ?? details?.exit_code ?? details?.code;
  const exitCode = typeof exit === "number" && Number.isInteger(exit) ? exit : null;
  const text = e.error?.trim() || (result ? messageText(result.content) || jsonText(details) : null);
  const error =
    Boolean(e.error?.trim()) ||
    result?.isError === true ||
    details?.status === "error" ||
    (exitCode !== null && exitCode !== 0);
  return { error, text: text || null, exitCode };
}

function jsonText(v: unknown): string | null {
  if (v == null) return null;
  try {
    return JSON.stringify(v);
  } catch {
    return null;
  }
}
