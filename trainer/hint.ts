// The distillation teacher's context: the same conversation with the judge's hindsight hint
// appended to the last user message, in OpenClaw-RL's wording, so a model trained by either
// stack sees the same teacher prompt.
import type { ChatMessage, ContentPart } from "../core/index.js";

export const HINT_HEADER = "[user's hint / instruction]";

/** The text of a message's content; parts without text (images, audio) are dropped. */
export function flattenContent(content: ChatMessage["content"]): string {
  if (content == null) return "";
  if (typeof content === "string") return content;
  return content
    .map((part: ContentPart) => (typeof part.text === "string" ? part.text : ""))
    .filter((t) => t.length > 0)
    .join("\n");
}

/**
 * A copy of `messages` whose last user message ends with `\n\n[user's hint / instruction]\n{hint}`.
 * Without a user message the hint goes on the last message (as OpenClaw-RL does); the input is
 * never modified.
 */
export function appendHint(messages: ChatMessage[], hint: string): ChatMessage[] {
  if (messages.length === 0) throw new Error("cannot append a hint to an empty conversation");
  let at = -1;
  for (let i = messages.length - 1; i >= 0; i--) {
    if (messages[i]!.role === "user") {
      at = i;
      break;
    }
  }
  if (at < 0) at = messages.length - 1;
  return messages.map((m, i) =>
    i === at ? { ...m, content: `${flattenContent(m.content)}\n\n${HINT_HEADER}\n${hint}` } : m,
  );
}
