// The next states a request reveals about the turn it continues: every message the client added
// after that turn's response (the user's reply; tool results, several for parallel calls), recorded
// as the plugin would report them: `user_message`, `tool_result` or `tool_error` (tool-outcome.ts),
// for the turn (`forCallId` and `turnId` = the earlier turn), with the tool's name and the id of the
// call as the model made it, however the client spelled it on the way back. System messages a client
// inserts are not next states. Ids are derived from the turn and the content, so the same history
// seen again (a retry, a regeneration) yields the same ids and records nothing new.
import { createHash } from "node:crypto";
import type { NextState } from "../../core/index.js";
import type { NormCall, NormMessage } from "./normalize.js";
import { toolOutcome } from "./tool-outcome.js";

/** Longest text kept, as the plugin clips it (plugin/src/events.ts): the judge reads the start. */
export const MAX_TEXT = 8000;

function clip(text: string): string {
  return text.length > MAX_TEXT ? `${text.slice(0, MAX_TEXT)}…[${text.length - MAX_TEXT} more chars]` : text;
}

function digest(...parts: (string | number)[]): string {
  return createHash("sha256").update(parts.join("\u0000")).digest("hex").slice(0, 24);
}

export interface FollowingTurn {
  turnId: string;
  sessionId: string;
  /** Ids of the turn's tool calls as the model made them. */
  toolCallIds: readonly string[];
}

/**
 * Next states of `turn` from `added`, the messages after its response. `calls` are the turn's tool
 * calls as the client sent them back (names; positions match `toolCallIds`).
 */
export function nextStatesOf(turn: FollowingTurn, calls: readonly NormCall[], added: readonly NormMessage[], now = new Date().toISOString()): NextState[] {
  const out: NextState[] = [];
  added.forEach((m, i) => {
    const base = {
      sessionId: turn.sessionId,
      forRunId: null,
      forCallId: turn.turnId,
      turnId: turn.turnId,
      score: null,
      at: now,
      receivedAt: now,
      source: "inferred" as const,
    };
    if (m.role === "user") {
      out.push({ ...base, id: `inf-user-${digest(turn.turnId, i, m.key)}`, kind: "user_message", text: clip(m.text), toolName: null, toolCallId: null, exitCode: null });
    } else if (m.role === "tool") {
      const k = m.answers;
      const outcome = toolOutcome(m.text);
      out.push({
        ...base,
        id: `inf-tool-${digest(turn.turnId, i, k, m.key)}`,
        kind: outcome.error ? "tool_error" : "tool_result",
        text: clip(m.text),
        toolName: (k >= 0 ? calls[k]?.name : undefined) || m.toolName,
        toolCallId: (k >= 0 ? turn.toolCallIds[k] : undefined) || m.toolCallId,
        exitCode: outcome.exitCode,
      });
    }
  });
  return out;
}
