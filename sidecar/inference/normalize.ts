// Chat messages as the session inference compares them. Clients resend the conversation with every
// request, but not byte for byte: they add timestamps and runtime notes to user messages, append
// synthetic context messages, re-serialize tool arguments, rewrite tool-call ids, and refresh dates
// in their system prompts. Normalizing removes exactly those differences, so that "this request
// extends that turn's prompt + response" becomes an equality of hashes.
//
// What is compared, per message:
//   role       `developer` counts as `system`, legacy `function` as `tool`;
//   text       text parts joined, Unicode NFC, runs of whitespace as one space, trimmed;
//              user messages lose client decorations (CLIENT_DECORATIONS below), and a user
//              message that was nothing but decoration is dropped;
//              assistant messages lose a leading reasoning block (`<think>…</think>`, Open WebUI's
//              `<details type="reasoning">…</details>`), which some clients send back and some don't;
//              system messages have digits and day/month names masked (dates, times, counters that a
//              client refreshes on every request);
//   tool calls name and arguments (JSON arguments compared as canonical JSON), in order; their ids
//              are NOT compared: a tool message is tied to the position of the call it answers in
//              the assistant message before it (by the id the client sent, else by its position),
//              so ids rewritten consistently by the client (OpenClaw: `call_fake_2` → `callfake2`)
//              or freshly generated on every request compare equal.
// Non-text parts (images, audio, files) compare by their type and a hash of their content.
import { createHash, type Hash } from "node:crypto";
import type { ChatMessage, TurnResponse } from "../../core/index.js";

export type NormRole = "system" | "user" | "assistant" | "tool" | (string & {});

export interface NormCall {
  /** The id as the client (or the model, for a response) sent it. */
  id: string;
  name: string;
  /** Canonical arguments. */
  args: string;
}

export interface NormMessage {
  role: NormRole;
  /** The text as a person reads it: decorations removed, outer whitespace trimmed (recorded in next states). */
  text: string;
  /** The text as compared. */
  key: string;
  /** Tool calls of an assistant message. */
  calls: NormCall[];
  /** Tool messages: position of the call answered in the preceding assistant message, -1 when unknown. */
  answers: number;
  /** Tool messages: the call id the client sent, and the tool's name when the client gave one. */
  toolCallId: string | null;
  toolName: string | null;
  /** The message's own hash, where already known. */
  digest?: Buffer;
}

/**
 * Decorations clients add to user messages that are not the user's words. Each is removed from the
 * text before comparing and before a user message is recorded as a next state.
 */
export const CLIENT_DECORATIONS: { client: string; what: string; pattern: RegExp }[] = [
  {
    client: "OpenClaw",
    what: "synthetic internal-context block (sent as its own last user message on every call, never replayed)",
    pattern: /<<<BEGIN_OPENCLAW_INTERNAL_CONTEXT>>>[\s\S]*?<<<END_OPENCLAW_INTERNAL_CONTEXT>>>/g,
  },
  {
    client: "OpenClaw",
    what: "timestamp prefix, e.g. `[Sat 2026-11-21 10:23 UTC] `",
    pattern: /^\s*\[(?:[A-Za-z]{3,9},? )?\d{4}-\d{2}-\d{2}[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?: ?(?:[A-Z]{1,5}(?:[+-]\d{1,2}(?::?\d{2})?)?|[+-]\d{2}:?\d{2}))?\]\s*/,
  },
  {
    client: "OpenClaw",
    what: "`Runtime: agent=… | session=… | …` line appended to the first user message",
    pattern: /\n\s*Runtime: [a-z_]+=[^\n]*\s*$/,
  },
];

/**
 * Messages that stand for a summarized history. A request whose messages after a known turn include
 * one of these was compacted by the client: it starts a new session, and the summary is never
 * recorded as the user's reply to that turn.
 */
export const COMPACTION_MARKERS: { client: string; pattern: RegExp }[] = [
  { client: "OpenClaw", pattern: /^The conversation history before this point was compacted into the following summary:/ },
  { client: "OpenClaw", pattern: /^The following is a summary of a branch that this conversation came back from:/ },
  { client: "Aider", pattern: /^I spoke to you previously about a number of things\./ },
  { client: "Claude Code", pattern: /^This session is being continued from a previous conversation that ran out of context\./ },
];

export function isCompactionSummary(m: NormMessage): boolean {
  return (m.role === "user" || m.role === "system") && COMPACTION_MARKERS.some((c) => c.pattern.test(m.text));
}

/** Dates, times and counters a client refreshes in its system prompt. */
const VOLATILE = /\d+|\b(?:Mon|Tues?|Wed(?:nes)?|Thu(?:rs)?|Fri|Sat(?:ur)?|Sun)(?:day)?\b|\b(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)[a-z]*\b/g;
const LEADING_REASONING = /^\s*(?:<think>[\s\S]*?<\/think>|<details type="reasoning"[\s\S]*?<\/details>)\s*/;

const NON_ASCII = /[^\x00-\x7f]/;

function collapse(s: string): string {
  // NFC only changes non-ASCII text, and costs a pass over the whole string (40 KB system prompts).
  return (NON_ASCII.test(s) ? s.normalize("NFC") : s).replace(/\s+/g, " ").trim();
}

function digest(s: string): string {
  return createHash("sha256").update(s).digest("base64url").slice(0, 16);
}

/** Text of a message's content: text parts joined by newlines, other parts as type + content hash. */
export function contentText(content: ChatMessage["content"] | undefined): string {
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) return "";
  const out: string[] = [];
  for (const part of content) {
    if (!part || typeof part !== "object") continue;
    if (typeof part.text === "string") out.push(part.text);
    else out.push(`[${String(part.type)}:${digest(JSON.stringify(part))}]`);
  }
  return out.join("\n");
}

/** JSON arguments as canonical JSON (sorted keys, no spaces); anything else trimmed. */
export function canonicalArgs(args: unknown): string {
  if (typeof args !== "string") return JSON.stringify(sortKeys(args ?? null));
  try {
    return JSON.stringify(sortKeys(JSON.parse(args)));
  } catch {
    return args.trim();
  }
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v && typeof v === "object") {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) out[k] = sortKeys((v as Record<string, unknown>)[k]);
    return out;
  }
  return v;
}

/** A user message's text without client decorations, trimmed. */
export function userText(raw: string): string {
  let s = raw;
  for (const d of CLIENT_DECORATIONS) s = s.replace(d.pattern, "");
  return s.trim();
}

function normRole(role: unknown): NormRole {
  const r = typeof role === "string" ? role : "";
  if (r === "developer") return "system";
  if (r === "function") return "tool";
  return r;
}

function callsOf(m: { tool_calls?: unknown }): NormCall[] {
  if (!Array.isArray(m.tool_calls)) return [];
  const out: NormCall[] = [];
  for (const tc of m.tool_calls as unknown[]) {
    if (!tc || typeof tc !== "object") continue;
    const t = tc as { id?: unknown; function?: { name?: unknown; arguments?: unknown } };
    out.push({
      id: typeof t.id === "string" ? t.id : "",
      name: typeof t.function?.name === "string" ? t.function.name : "",
      args: canonicalArgs(t.function?.arguments),
    });
  }
  return out;
}

function assistantMessage(text: string, calls: NormCall[]): NormMessage {
  const clean = text.trim();
  return { role: "assistant", text: clean, key: collapse(clean.replace(LEADING_REASONING, "")), calls, answers: -1, toolCallId: null, toolName: null };
}

/** A model's answer as the assistant message a client will send back. */
export function responseMessage(r: Pick<TurnResponse, "content" | "toolCalls">): NormMessage {
  return assistantMessage(r.content ?? "", callsOf({ tool_calls: r.toolCalls }));
}

/**
 * System prompts are the largest text a client resends on every call (OpenClaw's is ~40 KB) and
 * rarely change: the normalized message and its digest are kept for the most recent ones, so a
 * request pays one string lookup for its system prompt instead of normalizing and hashing it.
 */
const systemCache = new Map<string, NormMessage>();
const SYSTEM_CACHE_SIZE = 32;

function systemMessage(raw: string): NormMessage {
  const hit = systemCache.get(raw);
  if (hit) return hit;
  const text = raw.trim();
  const m: NormMessage = { role: "system", text, key: collapse(text).replace(VOLATILE, "#"), calls: [], answers: -1, toolCallId: null, toolName: null };
  m.digest = digestOf(m);
  systemCache.set(raw, m);
  if (systemCache.size > SYSTEM_CACHE_SIZE) systemCache.delete(systemCache.keys().next().value!);
  return m;
}

/** The messages of a request, normalized; dropped messages (pure decoration) are left out. */
export function normalizeMessages(messages: readonly ChatMessage[]): NormMessage[] {
  const out: NormMessage[] = [];
  // The calls of the last assistant message, by the id the client sent, and how many tool
  // messages have answered since (for clients whose ids do not match their calls).
  let callIds = new Map<string, number>();
  let toolsSince = 0;
  for (const m of messages) {
    if (!m || typeof m !== "object") continue;
    const role = normRole(m.role);
    const raw = contentText(m.content);
    if (role === "user") {
      const text = userText(raw);
      if (!text) continue;
      out.push({ role, text, key: collapse(text), calls: [], answers: -1, toolCallId: null, toolName: null });
    } else if (role === "assistant") {
      const msg = assistantMessage(raw, callsOf(m));
      callIds = new Map(msg.calls.map((c, i) => [c.id, i]));
      toolsSince = 0;
      out.push(msg);
    } else if (role === "tool") {
      const id = typeof m.tool_call_id === "string" ? m.tool_call_id : null;
      const byId = id !== null ? callIds.get(id) : undefined;
      const answers = byId ?? (toolsSince < callIds.size ? toolsSince : -1);
      toolsSince++;
      const text = raw.trim();
      out.push({ role, text, key: `#${answers} ${collapse(text)}`, calls: [], answers, toolCallId: id, toolName: typeof m.name === "string" ? m.name : null });
    } else if (role === "system") {
      out.push(systemMessage(raw));
    } else {
      const text = raw.trim();
      out.push({ role, text, key: collapse(text), calls: [], answers: -1, toolCallId: null, toolName: null });
    }
  }
  return out;
}

/** What is hashed for one message: its role, compared text and tool calls. */
function serialize(m: NormMessage): string {
  const calls = m.calls.map((c) => `${c.name}\u0002${c.args}`).join("\u0003");
  return `${m.role}\u0001${m.key}\u0001${calls}\u0000`;
}

/** A system message's own hash (kept with it, so a cached system prompt is not hashed again). */
function digestOf(m: NormMessage): Buffer {
  return createHash("sha256").update(serialize(m)).digest();
}

/** Feeds one message to a conversation's hash: system messages by their digest, others by their text. */
function feed(h: Hash, m: NormMessage): Hash {
  return m.digest ? h.update("\u0004").update(m.digest) : h.update(serialize(m));
}

/** Hash of a conversation prefix: 128 bits, base64url. */
export type ConvKey = string;

/**
 * Incremental hashes of a conversation: `keyAt(i)` is the hash of messages 0..i, computed in one
 * pass over the messages (O(total text)), and `extend` continues from the end without rehashing.
 */
export class ConversationHash {
  /** Keys of the prefixes ending at an assistant message (the only ones looked up) and of the whole. */
  private readonly keys = new Map<number, ConvKey>();
  private readonly state: Hash;
  private readonly last: number;

  constructor(messages: readonly NormMessage[]) {
    this.state = createHash("sha256");
    this.last = messages.length - 1;
    messages.forEach((m, i) => {
      feed(this.state, m);
      if (m.role === "assistant" || i === this.last) this.keys.set(i, finish(this.state.copy()));
    });
  }

  /** Hash of messages 0..i (inclusive); `i` is an assistant message or the last one. */
  keyAt(i: number): ConvKey {
    const k = this.keys.get(i);
    if (k === undefined) throw new Error(`no key kept for message ${i}`);
    return k;
  }

  /** Hash of the whole conversation (an empty one has a key too). */
  get key(): ConvKey {
    return this.keys.get(this.last) ?? finish(createHash("sha256"));
  }

  /** Hash of the whole conversation followed by `next` (a turn's prompt + its response). */
  extend(next: NormMessage): ConvKey {
    return finish(feed(this.state.copy(), next));
  }
}

function finish(h: Hash): ConvKey {
  return h.digest("base64url").slice(0, 22);
}
