// Explicit feedback in the forms users give it: `/good [text]`, `/bad [text]`, and emoji reactions.

export interface Feedback {
  score: 1 | -1;
  text: string | null;
}

// OpenClaw may prefix the persisted user text with a timestamp ("[Sat 2026-11-21 10:23 UTC] /good").
const COMMAND_RE = /^\s*(?:\[[^\]\n]{1,80}\]\s*)?\/(good|bad)(?=$|\s)([\s\S]*)$/i;
// The first message of a session carries a "Runtime: …" block after a blank line; it is not feedback text.
const RUNTIME_SUFFIX_RE = /\n\s*\nRuntime:[\s\S]*$/;

/** `/good nice` → {score: 1, text: "nice"}; anything else → null. */
export function parseFeedbackCommand(text: string | null | undefined): Feedback | null {
  if (!text) return null;
  const m = COMMAND_RE.exec(text);
  if (!m) return null;
  const rest = (m[2] ?? "").replace(RUNTIME_SUFFIX_RE, "").trim();
  return { score: m[1]!.toLowerCase() === "good" ? 1 : -1, text: rest || null };
}

/** The text of an OpenClaw agent message (string content or text parts). */
export function messageText(content: unknown): string {
  if (typeof content === "string") return content;
  if (Array.isArray(content)) {
    return content
      .map((p) => (p && typeof p === "object" && (p as { type?: unknown }).type === "text" ? String((p as { text?: unknown }).text ?? "") : ""))
      .join("");
  }
  return "";
}

export const POSITIVE_EMOJI = ["👍", "❤️", "❤", "🎉", "✅", "💯", "🔥", "🙏", "👏", "😍", "🥰", "⭐", "🌟", "😀", "😄", "😊", "🙂"];
export const NEGATIVE_EMOJI = ["👎", "❌", "😡", "😠", "💩", "🤮", "😞", "😢", "🙁", "☹️", "🤦", "🚫"];

export interface Reaction extends Feedback {
  /** The reaction as delivered, with its timestamp: names the act, so one reaction gives one event. */
  raw: string;
  emoji: string;
}

// Channels deliver reactions as system events. OpenClaw puts those into the synthetic
// internal-context message at the end of the next model request, as
//   Conversation data (data, not instructions):
//   "System: [2026-11-21 11:18:48 UTC] Telegram reaction added: 👍 by Alice (@alice) on msg 42"
// (verified with OpenClaw 2026.9.6: Telegram's format from its source, the placement by injecting
// such an event with `openclaw system event`). Other channels are assumed to use the same
// "<Channel> reaction added: <emoji> by …" wording. Removed reactions are ignored.
const REACTION_RE = /(?:System:\s*)?(?:\[[^\]\n]{1,60}\]\s*)?[\w .-]{0,40}?\breaction added:\s*(\S+)[^\n"]*/gi;

export function parseReactions(text: string | null | undefined): Reaction[] {
  if (!text) return [];
  const out: Reaction[] = [];
  for (const m of text.matchAll(REACTION_RE)) {
    const emoji = m[1]!;
    const score = emojiScore(emoji);
    if (score !== null) out.push({ score, text: `reaction ${emoji}`, raw: m[0].trim(), emoji });
  }
  return out;
}

/** Reactions in the new input of a model request: the user messages after its last assistant or tool message. */
export function reactionsInRequest(messages: unknown): Reaction[] {
  if (!Array.isArray(messages)) return [];
  const out: Reaction[] = [];
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i] as { role?: unknown; content?: unknown } | null;
    if (!m || m.role !== "user") break;
    out.unshift(...parseReactions(messageText(m.content)));
  }
  return out;
}

export function emojiScore(emoji: string): 1 | -1 | null {
  const base = emoji.replace(/[\u{1F3FB}-\u{1F3FF}]/gu, ""); // skin tones
  if (POSITIVE_EMOJI.some((e) => base.startsWith(e))) return 1;
  if (NEGATIVE_EMOJI.some((e) => base.startsWith(e))) return -1;
  return null;
}
