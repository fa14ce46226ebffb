// Hints from a user's words, without a model. A correction usually holds two kinds of text: the
// verdict ("no", "that's wrong", "ugh") and the direction ("it's Canberra", "use --soft", "three
// bullet points max"). Common directions (length, language, tone, person, format) become a
// canonical instruction; any other clause that carries content is kept in the user's own words.
import { cutHint } from "./hints.js";
import { asSentence, contentTokens, normalize } from "./text.js";

const NUMBER_WORDS: Record<string, number> = {
  one: 1, two: 2, three: 3, four: 4, five: 5, six: 6, seven: 7, eight: 8, nine: 9, ten: 10, fifteen: 15, twenty: 20, fifty: 50, hundred: 100,
};
const NUM = String.raw`(\d+|one|two|three|four|five|six|seven|eight|nine|ten|fifteen|twenty|fifty|hundred)`;
const UNIT = String.raw`(sentences?|bullet points?|bullets|lines?|words|paragraphs?|points|items|characters|chars)`;

const LANGUAGES: Record<string, string> = {
  english: "English", anglais: "English", inglés: "English", ingles: "English", englisch: "English", inglês: "English",
  french: "French", français: "French", francais: "French", francés: "French", frances: "French", französisch: "French", francês: "French",
  spanish: "Spanish", espagnol: "Spanish", español: "Spanish", espanol: "Spanish", spanisch: "Spanish", espanhol: "Spanish",
  german: "German", allemand: "German", alemán: "German", aleman: "German", deutsch: "German", alemão: "German",
  portuguese: "Portuguese", português: "Portuguese", portugais: "Portuguese",
  italian: "Italian", italien: "Italian", italiano: "Italian", italienisch: "Italian",
  chinese: "Chinese", japanese: "Japanese", dutch: "Dutch", korean: "Korean",
};

interface Template {
  /** Matched against the normalized clause. */
  re: RegExp;
  hint: (m: RegExpMatchArray) => string;
  /** Templates of one family replace each other: the first (most specific) wins. */
  family: string;
}

const count = (s: string) => NUMBER_WORDS[s] ?? Number(s);
const unitName = (u: string) => (u.startsWith("bullet") || u === "points" ? "bullet points" : u === "chars" ? "characters" : u.replace(/s?$/, "s"));
/** "two sentences", "one sentence", "15 words": number words kept as the user wrote them. */
const amount = (n: string, unit: string) => {
  const plural = unitName(unit);
  return `${n} ${count(n) === 1 ? plural.replace(/s$/, "") : plural}`;
};

const TEMPLATES: Template[] = [
  {
    family: "length",
    re: new RegExp(String.raw`\b(?:max(?:imum)?|at most|no more than|up to|under|less than|fewer than)\s+${NUM}\s+${UNIT}`, "u"),
    hint: (m) => `Answer in ${/^(under|less|fewer)/.test(m[0]) ? "under" : "at most"} ${amount(m[1]!, m[2]!)}.`,
  },
  {
    family: "length",
    re: new RegExp(String.raw`\b${NUM}\s+${UNIT}(?:\s+(max(?:imum)?|at most|tops|or less|or fewer))?`, "u"),
    hint: (m) => `Answer in ${m[3] ? "at most " : ""}${amount(m[1]!, m[2]!)}.`,
  },
  { family: "length", re: /\b(too long|too wordy|too verbose|shorter|more concise|briefer|tl;?dr|shorten)\b/u, hint: () => "Keep the answer much shorter." },
  { family: "detail", re: /\b(too short|more detail(s|ed)?|too brief|too vague|elaborate)\b/u, hint: () => "Give a more detailed answer." },
  {
    family: "language",
    re: new RegExp(String.raw`\b(?:in|en|auf|em|in lingua)\s+(${Object.keys(LANGUAGES).join("|")})\b`, "u"),
    hint: (m) => `Answer in ${LANGUAGES[m[1]!]}.`,
  },
  { family: "person", re: /\bfirst person\b/u, hint: () => "Write in the first person." },
  { family: "person", re: /\bthird person\b/u, hint: () => "Write in the third person." },
  { family: "tone", re: /\b(too formal|too stiff|more casual|make it casual|casual|less formal)\b/u, hint: () => "Use a casual, friendly tone." },
  { family: "tone", re: /\b(too casual|too informal|more formal|more professional)\b/u, hint: () => "Use a more formal tone." },
  { family: "jargon", re: /\b(no jargon|without jargon|too technical|simpler words|plain (english|words|language))\b/u, hint: () => "Avoid jargon; use plain words." },
  { family: "format", re: /\b(as|in)\s+(a\s+)?table\b/u, hint: () => "Format the answer as a table." },
  { family: "format", re: /\bno (bullets?|bullet points|lists?)\b/u, hint: () => "Do not use bullet points or lists." },
  { family: "format", re: /\bno markdown\b/u, hint: () => "Do not use Markdown formatting." },
  { family: "format", re: /\b(as|in) json\b/u, hint: () => "Answer in JSON." },
  { family: "format", re: /\b(in a code block|as code)\b/u, hint: () => "Put the code in a code block." },
];

// Words that only carry the verdict, not the direction. A clause made only of these is dropped.
const VERDICT_WORDS = new Set(
  (
    "no nope nah wrong incorrect inaccurate again ugh ugh meh hmm hm bleh not right correct true that that's this it it's its is was wasn't isn't " +
    "what i i'm asked ask said thanks thank you you're your but still please pls ok okay actually seriously whoa come on yes yeah well so the a an " +
    "answer question great perfect good bad really just totally completely all sorry lol huh oh ah um even quite anyway btw basically same thing " +
    "one way mean meant wanted told dude man mate stop gosh god sigh wait jeez nope bruh useless terrible awful poor worse worst none these those " +
    "them there here do does did didn't don't doesn't again. try help work works working fine now either also very much way too " +
    "assistant kidding joking think check look i'll i've i'd just google myself figure forget never mind run compile load call " +
    "oui mais sí si pero ja aber sim mas ma non nein nee falsch faux mal incorrecto errado sbagliato não nao esto eso es está esta c'est ce n'est pas das ist nicht stimmt " +
    "不对 不對 错了 錯了 不是 違います 違う ちがう 間違い"
  ).split(/\s+/),
);

// Hidden-instruction wrappers a user (or an attacker) may paste; never part of a hint.
const NOISE = [
  /\[(SYSTEM|INST|ADMIN)[^\]]*\][\s\S]*?\[\/\1[^\]]*\]/giu,
  /\\boxed\s*\{[^}]*\}/gu,
  /\[HINT_START\][\s\S]*?\[HINT_END\]/gu,
  /<\/?[a-z_]+>/giu,
  /^\s*\/(good|bad)\b/iu,
];

function clean(text: string): string {
  let t = text;
  for (const re of NOISE) t = t.replace(re, " ");
  return t.replace(/\s+/g, " ").trim();
}

/** Sentences, then comma-separated clauses; CJK punctuation included. */
function clauses(text: string): string[][] {
  return text
    .split(/(?<=[.!?;][)"'»”]?)\s+|(?<=[。！？])|\n+/u)
    .map((s) => s.split(/[,，、：]\s*|:\s+|\s+[-–—]\s+/u).map((c) => c.trim()).filter(Boolean))
    .filter((s) => s.length > 0);
}

function carriesContent(clause: string, exclude: Set<string>): boolean {
  const meaningful = contentTokens(clause).filter((w) => !VERDICT_WORDS.has(w) && !exclude.has(w));
  // Symbols count as content too ("πr²", "--soft").
  return meaningful.length > 0 || /[²³π@#$%&*+=<>\\`]|(^|\s)--?\w/u.test(clause);
}

const QUESTION_WORDS = /^(where|why|who|what|how|when|which|did|do|does|are|is|was|were|have|has|remember)\b/iu;
const POLITE = /^(please|pls|can you|could you|would you|will you|can u|now)\s+/iu;
const LEADING_VERDICT = /^(no|nope|nah|wrong|not quite|ugh|meh|hmm|whoa|ok|okay|thanks|but|and|so|actually|yes|well)\b[\s,.!]*/iu;
// A clause that talks to the grader or tries to override instructions is never part of a hint.
const ADDRESSES_JUDGE =
  /\b(ignore|disregard|ignora|ignorez|ignoriere)\b.*\b(instructions?|instrucciones|consignes|anweisungen|above|previous|rubric)\b|\b(judge|grader|evaluator|reviewer|rubric|score|scoring|califica|calificación|note|bewerte)\b/iu;

export interface DirectiveOptions {
  /**
   * The request the turn answered. With `requestWords: "exclude"` (re-asks) words already in it
   * never count as direction; with "require-new" (corrections) a message that adds no word
   * beyond the request has no hint, but the clauses of one that does are kept whole.
   */
  request?: string;
  requestWords?: "exclude" | "require-new";
  /** Keep only forward-looking direction ("next time …"): for messages that accept the action. */
  onlyNextTime?: boolean;
  /** Let questions through (a re-ask's question is its direction). */
  keepQuestions?: boolean;
  nextTime?: RegExp;
}

/**
 * A 1–3 sentence hint from a user's message, or null when it holds no direction. Canonical
 * instructions replace the clauses they recognise; other clauses with content are kept as written.
 */
export function directiveHint(message: string, opts: DirectiveOptions = {}): string | null {
  const text = clean(message);
  if (!text) return null;
  const requestTokens = new Set(opts.request ? contentTokens(opts.request) : []);
  if (opts.request && opts.requestWords === "require-new" && !carriesContent(text, requestTokens)) return null;
  const exclude = opts.requestWords === "exclude" ? requestTokens : new Set<string>();
  const nextTime = opts.nextTime ?? /\bnext time\b/iu;
  const out: string[] = [];
  // family → [template index, position in out]: a more specific template of a family replaces a vaguer one.
  const families = new Map<string, [number, number]>();
  for (const sentence of clauses(text)) {
    const kept: string[] = [];
    for (const rawClause of sentence) {
      let clause = rawClause;
      if (opts.onlyNextTime && !nextTime.test(clause)) continue;
      if (ADDRESSES_JUDGE.test(clause)) continue;
      const norm = normalize(clause);
      const at = TEMPLATES.findIndex((t) => t.re.test(norm));
      if (at >= 0) {
        const t = TEMPLATES[at]!;
        const seen = families.get(t.family);
        const hint = t.hint(norm.match(t.re)!);
        if (!seen) {
          families.set(t.family, [at, out.length]);
          out.push(hint);
        } else if (at < seen[0]) {
          families.set(t.family, [at, seen[1]]);
          out[seen[1]] = hint;
        }
        continue;
      }
      clause = clause.replace(nextTime, "").trim();
      while (LEADING_VERDICT.test(clause)) clause = clause.replace(LEADING_VERDICT, "");
      const polite = POLITE.test(clause);
      clause = clause.replace(POLITE, "");
      if (!clause) continue;
      const isQuestion = /[?？]\s*$/u.test(clause);
      if (isQuestion && !polite && !opts.keepQuestions && QUESTION_WORDS.test(clause)) continue;
      if (VERDICT_WORDS.has(normalize(clause).replace(/[\p{P}\s]/gu, ""))) continue;
      if (!carriesContent(clause, exclude)) continue;
      kept.push(isQuestion && !opts.keepQuestions ? clause.replace(/[?？]\s*$/u, "") : clause);
    }
    if (kept.length) out.push(asSentence(kept.join(", ")));
    if (out.length >= 3) break;
  }
  const hint = out.slice(0, 3).join(" ").trim();
  return hint.length >= 4 ? cutHint(hint) : null;
}
