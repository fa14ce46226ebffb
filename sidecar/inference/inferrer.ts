// Session inference: places untagged chat calls into sessions from their content alone, and records
// the next states their messages reveal. Agents without clawloop's plugin (Open WebUI, Continue,
// Aider, scripts, OpenClaw without the plugin) send no ids, but every request carries the
// conversation so far:
//
//   continued  the request's messages, up to its last assistant message, are an earlier turn's
//              prompt + response: the request is that turn's next turn (same session, next seq,
//              `parentTurnId`), and the messages after the response are that turn's next states;
//   sibling    the request's messages are exactly an earlier turn's prompt (a retry, a
//              regeneration): a new sample for the same prompt, in the same session with the same
//              parent, not a continuation; a later request extending one sibling's answer links to
//              that sibling, because the answer's content decides;
//   diverged   an earlier assistant message matches a known turn but the last one does not, or the
//              messages after a known turn include a summary of the history (COMPACTION_MARKERS):
//              the client summarized, truncated or edited the history, or answered with a message
//              we never saw, so the request starts a new session rather than link wrongly;
//   new        nothing matches: a new session.
//
// Tagged calls (plugin or OpenClaw-RL headers) are placed by their tags and never inferred. Calls
// matching a side rule (side-rules.ts) are housekeeping: side traffic in a session of their own,
// neither inferred nor continued from. The hashing runs after the request was forwarded (the
// placement is only needed when the call is recorded), so it never delays the answer.
import { randomUUID } from "node:crypto";
import path from "node:path";
import { Counter, type Registry } from "prom-client";
import type { Config, Logger, NextState, TurnStatus } from "../../core/index.js";
import type { Assembled } from "../assembler.js";
import { TagPlacer, untaggedPlacement, type Placement, type PlacementInput, type Placer } from "../placement.js";
import { Lru } from "../sessions.js";
import { nextStatesOf } from "./next-states.js";
import { ConversationHash, isCompactionSummary, normalizeMessages, responseMessage, type NormMessage } from "./normalize.js";
import { SideRules } from "./side-rules.js";
import { TurnIndex, type IndexedTurn } from "./turn-index.js";

export type InferenceOutcome = "continued" | "sibling" | "diverged" | "new" | "side" | "not_inferred";

/** Where next states go (the sidecar's EventLinker). */
export interface NextStateSink {
  add(ns: NextState): Promise<unknown>;
}

/** A finished call, as the recorder sees it. */
export interface FinishedCall {
  turnId: string;
  status: TurnStatus;
  assembled: Assembled | null;
}

export interface SessionInferenceOptions {
  config: Pick<Config["sidecar"], "inferSessions" | "inferIndexSize" | "sideRules" | "builtinSideRules">;
  /** The data directory; the index lives in `<dataDir>/inference/`. Null: in memory only. */
  dataDir: string | null;
  sink: NextStateSink;
  logger: Logger;
  /** Prometheus registry for the inference counters. */
  registry?: Registry;
}

interface Pending {
  hash: ConversationHash;
  turn: IndexedTurn;
}

export class SessionInference implements Placer {
  private readonly tags: TagPlacer;
  private readonly enabled: boolean;
  /** Calls placed but not finished yet (bounded: a call that never finishes is forgotten). */
  private readonly pending = new Lru<string, Promise<Pending | null>>(10_000);
  private readonly outcomes: Counter<"outcome"> | null;
  private readonly states: Counter<"kind"> | null;

  private constructor(
    private readonly opts: SessionInferenceOptions,
    private readonly index: TurnIndex | null,
  ) {
    const cfg = opts.config;
    this.tags = new TagPlacer(new SideRules(cfg.sideRules, cfg.builtinSideRules));
    this.enabled = cfg.inferSessions && index !== null;
    const registers = opts.registry ? [opts.registry] : [];
    this.outcomes = opts.registry
      ? new Counter({
          name: "clawloop_sidecar_inferred_calls_total",
          help: "Untagged chat calls by how session inference placed them (continued, sibling, diverged, new, side, not_inferred).",
          labelNames: ["outcome"],
          registers,
        })
      : null;
    this.states = opts.registry
      ? new Counter({
          name: "clawloop_sidecar_inferred_next_states_total",
          help: "Next states recorded from untagged traffic, by kind.",
          labelNames: ["kind"],
          registers,
        })
      : null;
  }

  /** Opens the persisted index (when inference is on). Side rules are checked here: a bad one fails the start. */
  static async open(opts: SessionInferenceOptions): Promise<SessionInference> {
    new SideRules(opts.config.sideRules, opts.config.builtinSideRules);
    const index = opts.config.inferSessions
      ? await TurnIndex.open(opts.dataDir ? path.join(opts.dataDir, "inference") : null, opts.config.inferIndexSize, opts.logger)
      : null;
    return new SessionInference(opts, index);
  }

  place(input: PlacementInput): Placement | Promise<Placement> {
    const byTags = this.tags.place(input);
    if (byTags.placement === "tagged") return byTags;
    if (!this.enabled || input.endpoint !== "chat" || !input.request?.messages?.length) {
      this.count("not_inferred");
      return byTags;
    }
    // Off the request's path: the proxy forwards first, the ticket is awaited only when recording.
    const inferred = new Promise<{ placement: Placement; pending: Pending | null }>((resolve, reject) =>
      setImmediate(() => {
        try {
          resolve(this.infer(input));
        } catch (err) {
          reject(err);
        }
      }),
    );
    this.pending.set(
      input.turnId,
      inferred.then(
        (r) => r.pending,
        () => null,
      ),
    );
    return inferred.then((r) => r.placement);
  }

  /**
   * A call finished (before it is written): its prompt + response become findable, so the client's
   * next request, which may come as soon as it has the answer, can continue it. Never throws.
   */
  turnFinished(call: FinishedCall): void {
    const pending = this.pending.get(call.turnId);
    if (!pending || !this.index) return;
    this.pending.delete(call.turnId);
    const index = this.index;
    void pending.then((p) => {
      if (!p) return;
      const r = call.assembled?.response;
      const answered = r && (r.content.trim() !== "" || r.toolCalls.length > 0);
      index.finish(p.turn.turnId, answered ? p.hash.extend(responseMessage(r)) : null, answered ? r.toolCalls.map((t) => t.id) : []);
    });
  }

  async close(): Promise<void> {
    await this.index?.close();
  }

  // -------------------------------------------------------------------------------------------

  private count(outcome: InferenceOutcome): void {
    this.outcomes?.inc({ outcome });
  }

  private infer(input: PlacementInput): { placement: Placement; pending: Pending | null } {
    const index = this.index!;
    const rule = this.tags.rules.match(input);
    if (rule !== null) {
      this.count("side");
      this.opts.logger.debug({ turnId: input.turnId, rule }, "housekeeping call: side traffic");
      return { placement: untaggedPlacement(input.turnId), pending: null };
    }
    const messages = normalizeMessages(input.request!.messages!);
    if (messages.length === 0) {
      this.count("not_inferred");
      return { placement: untaggedPlacement(input.turnId), pending: null };
    }
    const hash = new ConversationHash(messages);
    const promptKey = hash.key;
    const lastAssistant = messages.findLastIndex((m) => m.role === "assistant");

    let placement: Placement;
    let outcome: InferenceOutcome;
    const sibling = index.findPrompt(promptKey);
    let parent = sibling ? undefined : lastAssistant >= 0 ? index.findConversation(hash.keyAt(lastAssistant)) : undefined;
    // A known turn followed by a summary of the history: the client compacted, this is not a reply.
    const compacted = parent !== undefined && messages.slice(lastAssistant + 1).some(isCompactionSummary);
    if (compacted) parent = undefined;
    if (sibling) {
      outcome = "sibling";
      placement = { sessionId: sibling.sessionId, turnType: "main", placement: "inferred", parentTurnId: sibling.parentTurnId };
    } else if (parent) {
      outcome = "continued";
      placement = { sessionId: parent.sessionId, turnType: "main", placement: "inferred", parentTurnId: parent.turnId };
      this.recordNextStates(parent, messages[lastAssistant]!, messages.slice(lastAssistant + 1));
    } else {
      outcome = compacted || this.diverged(messages, hash, lastAssistant) ? "diverged" : "new";
      placement = { sessionId: `inferred-${randomUUID()}`, turnType: "main", placement: "inferred", parentTurnId: null, newSession: true };
    }
    this.count(outcome);
    if (outcome === "diverged") {
      this.opts.logger.debug({ turnId: input.turnId, sessionId: placement.sessionId }, "history differs from every known turn's (summarized, truncated or edited): new session");
    }
    const turn = index.addPlaced({ turnId: input.turnId, sessionId: placement.sessionId, parentTurnId: placement.parentTurnId, promptKey });
    return { placement, pending: { hash, turn } };
  }

  /** An earlier assistant message is a known turn's response, the last one is not. */
  private diverged(messages: NormMessage[], hash: ConversationHash, lastAssistant: number): boolean {
    for (let i = lastAssistant - 1; i >= 0; i--) {
      if (messages[i]!.role === "assistant" && this.index!.hasConversation(hash.keyAt(i))) return true;
    }
    return false;
  }

  private recordNextStates(parent: IndexedTurn, response: NormMessage, added: NormMessage[]): void {
    const states = nextStatesOf(parent, response.calls, added).filter((s) => !parent.recorded.has(s.id));
    if (states.length === 0) return;
    this.index!.noteRecorded(
      parent,
      states.map((s) => s.id),
    );
    void (async () => {
      for (const s of states) {
        try {
          await this.opts.sink.add(s);
          this.states?.inc({ kind: s.kind });
        } catch (err) {
          this.opts.logger.warn({ err: String(err), event: s.id, turnId: parent.turnId }, "could not record an inferred next state");
        }
      }
    })();
  }
}
