// The persona's preference as a declarative check, evaluated by generic code: every condition that
// is present must hold. New personas combine these; none needs code.
import { z } from "zod";

/** A regular expression given as a string (flags "imu" unless `flags` says otherwise). */
const regexSchema = z.union([
  z.string().min(1),
  z.object({ source: z.string().min(1), flags: z.string().regex(/^[dgimsuvy]*$/).default("mu") }),
]);
type RegexSpec = z.infer<typeof regexSchema>;

export const checkSchema = z
  .strictObject({
    /** At most this many sentences (list items and lines count as sentences). */
    maxSentences: z.number().int().min(1).optional(),
    minSentences: z.number().int().min(1).optional(),
    maxWords: z.number().int().min(1).optional(),
    minWords: z.number().int().min(1).optional(),
    /** Each must match somewhere in the reply. */
    mustMatch: z.array(regexSchema).optional(),
    /** None may match. */
    mustNotMatch: z.array(regexSchema).optional(),
    /** The reply (trimmed) starts with one of these (case-insensitive). */
    startsWith: z.array(z.string().min(1)).min(1).optional(),
    /** The reply (trimmed) ends with one of these (case-insensitive). */
    endsWith: z.array(z.string().min(1)).min(1).optional(),
    /** The reply contains at least one of these (case-insensitive). */
    containsOneOf: z.array(z.string().min(1)).min(1).optional(),
  })
  .refine((c) => Object.values(c).some((v) => v !== undefined), { message: "a check needs at least one condition" });

export type Check = z.infer<typeof checkSchema>;

export interface CheckResult {
  ok: boolean;
  /** What failed, in words ("3 sentences (at most 2)"). */
  failures: string[];
  sentences: number;
  words: number;
}

function compile(spec: RegexSpec): RegExp {
  return typeof spec === "string" ? new RegExp(spec, "imu") : new RegExp(spec.source, spec.flags.includes("u") || spec.flags.includes("v") ? spec.flags : spec.flags + "u");
}

/** Throws a clear error for a regex that does not compile (used when a persona is loaded). */
export function validateRegexes(check: Check): string[] {
  const errors: string[] = [];
  for (const [key, list] of [["mustMatch", check.mustMatch], ["mustNotMatch", check.mustNotMatch]] as const) {
    (list ?? []).forEach((spec, i) => {
      try {
        compile(spec);
      } catch (err) {
        errors.push(`check.${key}[${i}]: ${(err as Error).message}`);
      }
    });
  }
  return errors;
}

// Abbreviations whose period does not end a sentence.
const ABBREVIATIONS = /\b(e\.g|i\.e|etc|vs|mr|mrs|ms|dr|prof|st|jr|sr|no|approx|fig|cf|al)\.$/i;

/** Markdown decoration that is not text: list markers, heading marks, emphasis, code fences. */
function stripMarkup(line: string): string {
  return line
    .replace(/^\s*(?:[-*+•]|\d+[.)]|#{1,6})\s+/, "")
    .replace(/[*_`~]+/g, "")
    .trim();
}

/**
 * Sentences the way a reader counts them: each non-empty line (a list item, a heading) is at
 * least one, and inside a line a sentence ends at `.`, `!`, `?` or `…` followed by a space or the
 * end — not after a common abbreviation ("e.g.") and not inside a number ("3.14").
 */
export function sentences(text: string): string[] {
  const out: string[] = [];
  for (const raw of text.split(/\n+/)) {
    const line = stripMarkup(raw);
    if (!/[\p{L}\p{N}]/u.test(line) || /^```/.test(raw.trim())) continue;
    let current = "";
    const parts = line.split(/(?<=[.!?…]+["')\]]*)\s+/u);
    for (const part of parts) {
      current = current ? `${current} ${part}` : part;
      if (/[.!?…]["')\]]*$/u.test(part) && !ABBREVIATIONS.test(part)) {
        out.push(current);
        current = "";
      }
    }
    if (/[\p{L}\p{N}]/u.test(current)) out.push(current);
  }
  return out;
}

export function words(text: string): number {
  return (text.match(/[\p{L}\p{N}]+(?:['’-][\p{L}\p{N}]+)*/gu) ?? []).length;
}

export function checkReply(check: Check, reply: string): CheckResult {
  const text = reply.trim();
  const lower = text.toLowerCase();
  const n = sentences(text).length;
  const w = words(text);
  const failures: string[] = [];
  if (!text) failures.push("empty reply");
  if (check.maxSentences !== undefined && n > check.maxSentences) failures.push(`${n} sentences (at most ${check.maxSentences})`);
  if (check.minSentences !== undefined && n < check.minSentences) failures.push(`${n} sentences (at least ${check.minSentences})`);
  if (check.maxWords !== undefined && w > check.maxWords) failures.push(`${w} words (at most ${check.maxWords})`);
  if (check.minWords !== undefined && w < check.minWords) failures.push(`${w} words (at least ${check.minWords})`);
  for (const spec of check.mustMatch ?? []) if (!compile(spec).test(text)) failures.push(`does not match /${typeof spec === "string" ? spec : spec.source}/`);
  for (const spec of check.mustNotMatch ?? []) {
    const m = compile(spec).exec(text);
    if (m) failures.push(`has ${JSON.stringify(m[0].trim().slice(0, 30))}`);
  }
  if (check.startsWith && !check.startsWith.some((s) => lower.startsWith(s.toLowerCase()))) failures.push(`does not start with ${check.startsWith.map((s) => JSON.stringify(s)).join(" or ")}`);
  if (check.endsWith && !check.endsWith.some((s) => lower.endsWith(s.toLowerCase()))) failures.push(`does not end with ${check.endsWith.map((s) => JSON.stringify(s)).join(" or ")}`);
  if (check.containsOneOf && !check.containsOneOf.some((s) => lower.includes(s.toLowerCase()))) failures.push(`contains none of ${check.containsOneOf.map((s) => JSON.stringify(s)).join(", ")}`);
  return { ok: failures.length === 0, failures, sentences: n, words: w };
}
