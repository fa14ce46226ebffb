// Which next states a turn is judged from, and when it is ready to be judged.
//
// A turn is judged from every next state linked to it, oldest first (by `at`, then arrival):
// the results of all its tool calls (parallel calls each have one), the user's reply, a model
// error. Explicit feedback, when there is any, decides the score by itself: the latest feedback
// event wins, whatever the other states say, and feedback that arrives after a judgment rewrites
// it. `session_end` is never evidence for a turn that has other next states; a turn whose
// session ended with none is left unscored or judged from the session end (`judge.sessionEnd`).
//
// Ready means nothing more is expected: the user replied or gave feedback, or every tool call
// of the turn has its result, or the newest state is `settleMs` old (a tool result whose
// siblings never came, a plugin that reports only some results).
import type { NextState, Turn } from "../core/index.js";

export function chooseEvidence(states: NextState[]): NextState[] {
  return states
    .filter((s) => s.kind !== "session_end")
    .sort((a, b) => a.at.localeCompare(b.at) || a.receivedAt.localeCompare(b.receivedAt) || a.id.localeCompare(b.id));
}

export function isReady(turn: Turn, evidence: NextState[], now: number, settleMs: number): boolean {
  if (evidence.length === 0) return false;
  if (evidence.some((s) => s.kind === "user_message" || s.kind === "feedback" || s.kind === "model_error")) return true;
  const calls = turn.response?.toolCalls.length ?? 0;
  const results = evidence.filter((s) => s.kind === "tool_result" || s.kind === "tool_error").length;
  if (calls > 0 && results >= calls) return true;
  const newest = Math.max(...evidence.map((s) => Date.parse(s.receivedAt) || 0));
  return now - newest >= settleMs;
}

/** Only main-line turns that completed are judged. */
export function isJudgeable(turn: Turn): boolean {
  return turn.turnType === "main" && turn.status === "ok";
}
