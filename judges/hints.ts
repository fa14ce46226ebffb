// Choosing and trimming hints. OpenClaw-RL keeps the longest hint among the votes, which rewards
// verbosity; here the most *specific* one wins, where specific is measured, not guessed:
//
//   specificity = 2·overlap + 1.5·concrete − 3·filler − max(0, chars − 250) / 100
//
//   overlap  — distinct content words the hint shares with the next state's text: a hint that
//              restates what the user or the tool actually said ("use --soft", "Canberra");
//   concrete — distinct concrete tokens: numbers, `code` or quoted spans, paths and file names,
//              flags, identifiers (snake_case, camelCase, dotted), capitalised names mid-sentence;
//   filler   — generic advice that would fit any turn ("be more helpful", "make sure to",
//              "double-check", "consider the user's needs").
//
// Ties go to the shorter hint. A hint with no overlap, nothing concrete and some filler says
// nothing about this turn and is dropped, so the turn gets no distillation term.
import { contentTokens } from "./text.js";

export const HINT_MAX_CHARS = 400;
const HINT_MIN_CHARS = 12;

const FILLER = [
  /\bbe (more )?(helpful|careful|accurate|precise|thorough|clear|attentive)\b/i,
  /\bprovide (a )?(better|more (helpful|accurate|complete|relevant))\b/i,
  /\bimprove (the|your) (response|answer|output|reply)\b/i,
  /\bmake sure (to|that|you)\b/i,
  /\bpay (closer |more )?attention\b/i,
  /\bconsider the user'?s?\b/i,
  /\b(the )?user'?s (needs|intent|expectations|request)\b/i,
  /\bdouble[- ]check\b/i,
  /\bfollow (the )?(user'?s )?instructions\b/i,
  /\b(better|high[- ]quality|more relevant|appropriate) (response|answer)\b/i,
  /\b(understand|address) the (user|request|question)\b/i,
  /\bin order to (better )?(help|assist|satisfy)\b/i,
];

const CONCRETE = [
  /\d/,
  /`[^`]+`|"[^"]{1,60}"|'[^'\s][^']{0,58}'|«[^»]+»|“[^”]+”/,
  /(^|\s)[~.]?\/?[\w.-]+\/[\w./-]+/,
  /\b[\w-]+\.(py|js|ts|tsx|json|ya?ml|md|txt|toml|sh|go|rs|rb|java|c|h|cpp|csv|html|css|sql|env|lock|cfg|ini|xml)\b/,
  /(^|\s)--?[a-z][\w-]*/,
  /\b[a-z]+_[a-z0-9_]+\b|\b[a-z]+[A-Z]\w*\b|\b\w+\.\w+\(/,
];

/** Distinct concrete tokens in `hint` (see the module comment). */
export function concreteCount(hint: string): number {
  const tokens = new Set<string>();
  const words = hint.split(/\s+/);
  words.forEach((w, i) => {
    const bare = w.replace(/^[("'`«“]+|[)"'`»”.,;:!?]+$/g, "");
    if (!bare) return;
    if (CONCRETE.some((re) => re.test(w))) tokens.add(bare.toLowerCase());
    // A capitalised word that does not start a sentence is usually a name.
    const prev = words[i - 1];
    if (i > 0 && prev && !/[.!?:]$/.test(prev) && /^\p{Lu}\p{Ll}+/u.test(bare)) tokens.add(bare.toLowerCase());
  });
  return tokens.size;
}

export function fillerCount(hint: string): number {
  return FILLER.filter((re) => re.test(hint)).length;
}

export interface Specificity {
  score: number;
  overlap: number;
  concrete: number;
  filler: number;
}

export function specificity(hint: string, nextStateText: string): Specificity {
  const mine = new Set(contentTokens(hint));
  const theirs = new Set(contentTokens(nextStateText));
  let overlap = 0;
  for (const t of mine) if (theirs.has(t)) overlap++;
  const concrete = concreteCount(hint);
  const filler = fillerCount(hint);
  const score = 2 * overlap + 1.5 * concrete - 3 * filler - Math.max(0, hint.length - 250) / 100;
  return { score, overlap, concrete, filler };
}

/** Whitespace collapsed, answer markers removed; null when too short to say anything. */
export function cleanHint(raw: string | null | undefined): string | null {
  if (!raw) return null;
  const t = raw
    .replace(/\\boxed\s*\{[^}]*\}/g, "")
    .replace(/\[\/?HINT_(START|END)\]/g, "")
    .replace(/\s+/g, " ")
    .trim()
    .replace(/^["'“]|["'”]$/g, "")
    .trim();
  return t.length >= HINT_MIN_CHARS ? t : null;
}

/** Cuts a hint to `max` characters: at the last sentence end that keeps a useful part, else at a word. */
export function cutHint(hint: string, max = HINT_MAX_CHARS): string {
  if (hint.length <= max) return hint;
  const head = hint.slice(0, max);
  let end = -1;
  for (const m of head.matchAll(/[.!?。！？](?=\s|$)/gu)) end = m.index! + 1;
  if (end >= Math.min(120, max / 3)) return head.slice(0, end).trim();
  const space = head.lastIndexOf(" ", max - 1);
  return `${head.slice(0, space > max / 2 ? space : max - 1).trimEnd()}…`;
}

/**
 * The most specific of `candidates` (hints from the votes that agree with the majority), cut to
 * 400 characters, or null when none is usable.
 */
export function selectHint(candidates: (string | null)[], nextStateText: string): string | null {
  let best: { hint: string; s: Specificity } | null = null;
  for (const raw of candidates) {
    const hint = cleanHint(raw);
    if (!hint) continue;
    const s = specificity(hint, nextStateText);
    if (s.overlap === 0 && s.concrete === 0 && s.filler > 0) continue;
    if (!best || s.score > best.s.score || (s.score === best.s.score && hint.length < best.hint.length)) best = { hint, s };
  }
  return best ? cutHint(best.hint) : null;
}
