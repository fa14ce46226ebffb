// Text helpers shared by the rules and the model judges: flattening message content, removing
// the wrappers OpenClaw adds around user text, shortening long text, and word-level tokens.
import type { ChatMessage, ContentPart } from "../core/index.js";

/** The text of a message's content; parts without text (images, audio) are dropped. */
export function contentText(content: ChatMessage["content"] | undefined): string {
  if (content == null) return "";
  if (typeof content === "string") return content;
  return content
    .map((part: ContentPart) => (typeof part.text === "string" ? part.text : ""))
    .filter((t) => t.length > 0)
    .join("\n");
}

// OpenClaw prefixes user messages with `[Sat 2026-11-21 10:23 UTC] ` and appends a `Runtime: …`
// line to the first one; it also adds a synthetic user message holding internal context.
const TIMESTAMP_PREFIX = /^\s*\[(?:[A-Z][a-z]{2} )?\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(?::\d{2})?[^\]\n]{0,16}\]\s*/;
const RUNTIME_SUFFIX = /\n+Runtime: agent=[^\n]*$/;
const INTERNAL_CONTEXT = /<<<BEGIN_OPENCLAW_INTERNAL_CONTEXT>>>[\s\S]*?(?:<<<END_OPENCLAW_INTERNAL_CONTEXT>>>|$)/g;

/** User text as the person typed it: OpenClaw's timestamp prefix, runtime line and internal context removed. */
export function userText(raw: string): string {
  return raw.replace(INTERNAL_CONTEXT, "").replace(TIMESTAMP_PREFIX, "").replace(RUNTIME_SUFFIX, "").trim();
}

/** True for OpenClaw's synthetic user message that carries internal context, not the person's words. */
export function isSyntheticUserMessage(m: ChatMessage): boolean {
  return m.role === "user" && userText(contentText(m.content)) === "" && contentText(m.content).includes("OPENCLAW_INTERNAL_CONTEXT");
}

/**
 * Shortens `text` to at most `max` characters by keeping its head and its tail (where errors,
 * summaries and conclusions usually are), cut at line or word boundaries where possible.
 */
export function headTail(text: string, max: number): string {
  if (text.length <= max) return text;
  const marker = (n: number) => `\n[… ${n} characters omitted …]\n`;
  const budget = Math.max(0, max - marker(text.length).length);
  const headLen = Math.floor(budget * 0.5);
  const tailLen = budget - headLen;
  let head = text.slice(0, headLen);
  let tail = text.slice(text.length - tailLen);
  const headCut = Math.max(head.lastIndexOf("\n"), head.lastIndexOf(" "));
  if (headCut > headLen * 0.7) head = head.slice(0, headCut);
  const tailCut = Math.min(...[tail.indexOf("\n"), tail.indexOf(" ")].filter((i) => i >= 0), tail.length);
  if (tailCut < tailLen * 0.3) tail = tail.slice(tailCut + 1);
  return head + marker(text.length - head.length - tail.length) + tail;
}

/** Lower-cased, whitespace-collapsed text with typographic quotes made plain. */
export function normalize(text: string): string {
  return text
    .toLowerCase()
    .replace(/[\u2018\u2019\u02bc]/g, "'")
    .replace(/[\u201c\u201d]/g, '"')
    .replace(/\s+/g, " ")
    .trim();
}

// Scripts written without spaces between words: compared by character bigrams instead of words.
const CJK = /[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]/u;

const STOPWORDS = new Set(
  (
    "a an the and or but if of to in on at for with by from as is are was were be been it its this that these those " +
    "i me my you your we our he she they them his her do does did can could would should will just so than then " +
    "what whats what's how which who when where why there here please pls some any me not no yes ok about into " +
    "el la los las un una de del y o que en es por para con se lo le su al " +
    "le la les un une des de du et ou que qui en est pour avec ce il elle " +
    "der die das ein eine und oder zu im ist mit den dem von es"
  ).split(" "),
);

/** Content tokens: words (Unicode letters/digits) minus stopwords; CJK runs become character bigrams. */
export function contentTokens(text: string): string[] {
  const out: string[] = [];
  for (const word of normalize(text).match(/[\p{L}\p{N}][\p{L}\p{N}'._/-]*/gu) ?? []) {
    const w = word.replace(/['._/-]+$/, "");
    if (CJK.test(w)) {
      const chars = [...w].filter((c) => CJK.test(c));
      if (chars.length === 1) out.push(chars[0]!);
      for (let i = 0; i + 1 < chars.length; i++) out.push(chars[i]! + chars[i + 1]!);
      continue;
    }
    if (w.length < 2 || STOPWORDS.has(w)) continue;
    out.push(w);
  }
  return out;
}

/** |A ∩ B| / min(|A|, |B|) over content-token sets; 0 when either is empty. */
export function overlapCoefficient(a: string, b: string): { score: number; shared: number } {
  const A = new Set(contentTokens(a));
  const B = new Set(contentTokens(b));
  if (A.size === 0 || B.size === 0) return { score: 0, shared: 0 };
  let shared = 0;
  for (const t of A) if (B.has(t)) shared++;
  return { score: shared / Math.min(A.size, B.size), shared };
}

/** Upper-cases the first letter and ends the sentence with a period if it has no end mark. */
export function asSentence(text: string): string {
  const t = text.trim().replace(/^[,;:\s]+|^[-–—]+\s+|[,;:\s]+$|\s+[-–—]+$/g, "");
  if (!t) return "";
  const first = t.charAt(0).toUpperCase() + t.slice(1);
  return /[.!?。！？)"'`]$/.test(first) ? first : `${first}.`;
}
