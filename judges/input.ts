// What a judge looks at: the user's request, compact earlier context, the assistant's action, and
// the evidence (next states) that followed it. Built from a stored turn, or from a labeled case.
import type { ChatMessage, NextState, NextStateKind, Turn } from "../core/index.js";
import { contentText, headTail, isSyntheticUserMessage, userText } from "./text.js";

export interface ActionCall {
  name: string;
  /** JSON text, as the model produced it. */
  arguments: string;
}

export interface JudgeAction {
  content: string;
  toolCalls: ActionCall[];
}

/** One next state as the judge sees it. */
export interface Evidence {
  id: string | null;
  kind: NextStateKind;
  text: string;
  /** Explicit feedback score (+1/−1) where the sender gave one. */
  score: number | null;
  exitCode: number | null;
  toolName: string | null;
}

export interface JudgeInput {
  /** The last thing the user asked before the turn ("" when there is none). */
  request: string;
  /** Compact earlier conversation and the agent's steps since the request ("" when none). */
  context: string;
  action: JudgeAction;
  /** What happened next, oldest first; never empty. */
  evidence: Evidence[];
}

const CONTEXT_MESSAGE_CHARS = 300;
const CONTEXT_CHARS = 1500;
const CONTEXT_MESSAGES_BEFORE = 4;

/** The stored form of a tool call's arguments, whatever shape a source used. */
export function argumentsText(args: unknown): string {
  if (typeof args === "string") return args;
  if (args === undefined || args === null) return "{}";
  return JSON.stringify(args);
}

function messageLine(m: ChatMessage): string {
  const text = m.role === "user" ? userText(contentText(m.content)) : contentText(m.content);
  const calls = (m.tool_calls ?? []).map((c) => `[calls ${c.function.name} ${c.function.arguments}]`).join(" ");
  const who = m.role === "tool" ? `tool${m.name ? ` ${m.name}` : ""}` : m.role;
  return `${who}: ${headTail([text, calls].filter(Boolean).join(" "), CONTEXT_MESSAGE_CHARS)}`;
}

/**
 * The request and context of a chat turn: the request is the last user message the person wrote
 * (OpenClaw's synthetic context message and timestamp wrappers removed); the context is a few
 * messages before it and every step the agent took after it (tool calls and results), shortened.
 */
export function requestAndContext(messages: ChatMessage[]): { request: string; context: string } {
  let at = -1;
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i]!;
    if (m.role === "user" && !isSyntheticUserMessage(m) && userText(contentText(m.content)) !== "") {
      at = i;
      break;
    }
  }
  if (at < 0) return { request: "", context: "" };
  const request = userText(contentText(messages[at]!.content));
  const before = messages
    .slice(0, at)
    .filter((m) => m.role === "user" || m.role === "assistant")
    .filter((m) => !isSyntheticUserMessage(m))
    .slice(-CONTEXT_MESSAGES_BEFORE)
    .map(messageLine);
  const after = messages
    .slice(at + 1)
    .filter((m) => !isSyntheticUserMessage(m))
    .map(messageLine);
  const parts = [...before, ...(after.length ? ["(the user's request)", ...after] : [])];
  return { request, context: headTail(parts.join("\n"), CONTEXT_CHARS) };
}

export function evidenceFromNextState(ns: NextState): Evidence {
  const raw = ns.text ?? "";
  return {
    id: ns.id,
    kind: ns.kind,
    text: ns.kind === "user_message" ? userText(raw) : raw,
    score: ns.score,
    exitCode: ns.exitCode,
    toolName: ns.toolName,
  };
}

/** The judge's view of a recorded turn and the next states chosen for it (see `chooseEvidence`). */
export function inputFromTurn(turn: Turn, nextStates: NextState[]): JudgeInput {
  let request = "";
  let context = "";
  if (turn.request.messages?.length) {
    ({ request, context } = requestAndContext(turn.request.messages));
  } else if (turn.request.prompt !== undefined) {
    const prompt = typeof turn.request.prompt === "string" ? turn.request.prompt : JSON.stringify(turn.request.prompt);
    request = headTail(prompt, 1500);
  }
  const response = turn.response;
  return {
    request,
    context,
    action: {
      content: response?.content ?? "",
      toolCalls: (response?.toolCalls ?? []).map((c) => ({ name: c.function.name, arguments: c.function.arguments })),
    },
    evidence: nextStates.map(evidenceFromNextState),
  };
}
