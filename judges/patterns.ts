// Default patterns of the rules judge, by what they signal in a user's next message. They are
// regex sources compiled case-insensitively with Unicode-aware word boundaries (`\b` here means a
// boundary between letters/digits and anything else in any script, unlike JavaScript's ASCII `\b`).
// `judge.patterns` in the config adds to these; it never replaces them.

/** The user says the action was wrong, did not work, or gives up: −1 even when they also say thanks. */
export const CORRECTION: readonly string[] = [
  // A message that opens with a refusal ("no, …", "nope"), but not "no problem" / "no worries".
  String.raw`^\W*(no|nope|nah|wrong|incorrect|not quite|not really|não|non|nein|nee)\b(?!\s+(problem|problemo|worries|rush|need to apologi[sz]e)\b)`,
  String.raw`(?<!(what'?s|what is|anything|something|nothing)\s+)\bwrong\b`,
  String.raw`\b(incorrect|inaccurate|not (right|correct|true|accurate))\b`,
  String.raw`\bno,?\s+(it|that|this|he|she|they)\s*('?s|is|was|were|are)?\s*(n'?t|not)\b`,
  String.raw`\b(it|that|this|he|she|they)\s+(wasn'?t|isn'?t|aren'?t|weren'?t)\b\s*[,.!]`,
  String.raw`\bnot what i\s+(asked|wanted|meant|need|needed|said|was looking for|had in mind)\b`,
  String.raw`\bi\s+(said|asked for|meant|wanted|told you|already (said|told|asked|read|tried|did|have|saw|watched|know))\b`,
  String.raw`\b(it|that|this|there|you|which|they|he|she|these|those)\s*('?s|is|was|are|were)?\s*(should|supposed to|meant to)\s+(be|have|say|use|return|read|go|look)\b`,
  String.raw`\btoo\s+(long|short|formal|informal|casual|verbose|wordy|complicated|complex|technical|vague|generic|basic|simple|much|many|few|little|slow|big|small|clickbaity|salesy|cheesy|stiff|robotic)\b`,
  String.raw`\b(doesn'?t|does not|didn'?t|did not|won'?t|will not|isn'?t|is not|can'?t|cannot|still doesn'?t)\s+(even\s+)?(work|compile|run|build|help|load|start|make sense|answer|fit|match)\b`,
  String.raw`\b(not working|still broken|still fail(s|ing)?|same error|same problem|still (getting|get|seeing|see|have) (an? |the )?(same |an? )?(error|issue|problem|bug))\b`,
  String.raw`\b(throws?|raises?|gives?|got|getting|returns?|produces?)\s+(me\s+)?(an?\s+|the\s+)?[\w.]*(error|exception)\b`,
  String.raw`\b(that'?s|it'?s|this is|that is|it is)\s+not\s+(a|an|the|my|what)\s+(?!problem\b|big deal\b|issue\b|bad\b)\p{L}+`,
  String.raw`\b(where did you get|you made (that|it|this) up|you didn'?t (even )?(check|read|look|use|answer|do|listen|test|run|follow))\b`,
  String.raw`\b(that'?s|it'?s|this is)\s+(basically\s+|just\s+|still\s+)?the same( thing)?\b`,
  String.raw`\bnone of (these|those|them|that)\b`,
  String.raw`^\W*(meh|ugh+|bleh|hmm+\W+no)\b`,
  String.raw`\bnot (great|perfect|helpful|good|useful|quite right|it)\b`,
  // Acknowledgement followed by an objection: "thanks but …", "ok but …", "oui mais …".
  String.raw`\b(thanks|thank you|thx|ok|okay|great|cool|nice|sure|fine|yes|yeah|right|oui|sí|si|ja|sim|merci|gracias|danke)\b[\s,.!]*\b(but|however|though|pero|mais|aber|mas|ma)\b`,
  // Giving up.
  String.raw`\b(thanks anyway|thank you anyway|never ?mind|forget it|thanks for nothing|i'?ll (just )?(google|do|figure|look|find|ask somewhere)\b|useless|waste of time)`,
  // A fact corrected in place: "Friday, not Thursday", "by age, not name".
  String.raw`(^|[,;!.]\s*|\s)not\s+(?!bad\b|too bad\b|a problem\b|really\b|sure\b|now\b|yet\b|only\b|just\b)[\p{L}\p{N}'-]+\s*[!.]*\s*$`,
  String.raw`^\W*not\s+[\p{L}\p{N}'-]+\s*,`,
  String.raw`[,;]\s*not\s+(?!bad\b|too bad\b|a problem\b|only\b|just\b|sure\b|yet\b|now\b|really\b)(the |a |an |my )?[\p{L}\p{N}]`,
  // Spanish, French, German, Portuguese, Italian.
  String.raw`\b(eso no|no es (eso|lo que|correcto|así)|está mal|esta mal|incorrecto|equivocad[oa]|te equivocas|no funciona|no sirve|demasiado (largo|corto|formal))\b`,
  String.raw`\b(c'?est faux|c'?est pas (ça|ce que)|ce n'?est pas (ça|ce que|correct|juste)|pas correct|ça ne marche pas|ça marche pas|trop (long|court|formel))\b`,
  String.raw`\b(falsch|stimmt nicht|das ist nicht|funktioniert nicht|geht nicht|zu (lang|kurz|förmlich))\b`,
  String.raw`\b(não é (isso|o que|correto)|errado|está errado|incorreto|não funciona|muito (longo|formal))\b`,
  String.raw`\b(sbagliato|non è (questo|quello|corretto|giusto)|non funziona|troppo (lungo|formale))\b`,
  // Chinese, Japanese (no word boundaries in these scripts).
  String.raw`(不对|不對|错了|錯了|不正确|不是这样|没用|太长了|違います|違う|ちがう|間違|長すぎ)`,
];

/** The user asks the same thing again, or says the question was not answered. */
export const REASK: readonly string[] = [
  String.raw`\b(think|check|look|try|read|answer)\s+(it\s+|that\s+)?again\b`,
  String.raw`\b(i asked|my question was|that was (my|the) question|answer (the|my) question|you didn'?t answer|still (no|not an?) answer)\b`,
  String.raw`\b(the|an?)\s+(actual|real|exact|specific)\s+(answer|link|url|number|steps|date|time|command|code|name|price|value|figure)\b`,
  String.raw`^\W*(so|well|and|hello|hello\?)\W*\?\W*$`,
  String.raw`\b(te pregunt[eé]|otra vez|de nuevo|je t'?ai demandé|encore une fois|ich habe gefragt|nochmal|noch einmal)\b`,
];

/** A request to change the same output ("make it casual", "as a table please"): −1 unless the user also accepts it. */
export const CHANGE: readonly string[] = [
  String.raw`^\W*((please|pls|can you|could you|would you|now)\s+)?(make|write|rewrite|redo|keep|change|use|do|try|give|format|add|remove|drop|leave out|cut|shorten|expand|translate|put|split|turn|convert|show|include|fix|switch)\s+(it|this|that|them|those|these|the \p{L}+|again|instead)\b`,
  String.raw`\b(instead|rather than|in (the )?(first|third) person|without (a|the|any) \p{L}+|no (jargon|emoji|emojis|markdown|bullets?|bullet points|lists?|code|explanation|intro|fluff))\b`,
  String.raw`\b(as|in)\s+(a\s+)?(table|list|bullet points|bullets|json|csv|markdown|code block|one line|one sentence)\b`,
  String.raw`\b(in|en|auf|em)\s+(english|french|spanish|german|portuguese|italian|chinese|japanese|français|francais|anglais|espagnol|allemand|español|inglés|alemán|francés|deutsch|englisch|französisch|spanisch|português|inglês)\b`,
  String.raw`\b(shorter|longer|simpler|briefer|more (concise|detailed|casual|formal|specific|brief|polite|direct)|less (formal|wordy|technical|verbose))\b`,
  String.raw`\b(use|try|call|run)\s+(the\s+|your\s+)?[\p{L}\p{N}_.-]+\s+(tool|command|function|flag|option|api)\b`,
  String.raw`\byou (do|can|have)\b.*\b(tool|access)\b`,
];

/** Thanks, acceptance, or moving on to the next thing: +1 unless a correction is also there. */
export const THANKS: readonly string[] = [
  String.raw`\b(thanks|thank you|thank u|thx|ty|tysm|cheers|much appreciated|appreciate it)\b`,
  String.raw`\b(perfect|great|awesome|excellent|amazing|brilliant|wonderful|fantastic|nice|cool|neat|sweet|love it|lovely|exactly|spot on|nailed it|well done|good job|looks good|lgtm|that works|works (great|perfectly|now|fine)|it works|that did it|that worked|that helps|that helped|helpful|makes sense|got it|gotcha|understood|close enough|interesting)\b`,
  String.raw`^\W*(ok|okay|k|kk|alright|all right|sure|yes|yep|yeah|fine|good|lol|haha+|lmao|noted|done)\b`,
  String.raw`\bnot (bad|too bad)\b`,
  String.raw`^[\s\p{Extended_Pictographic}\u200d\ufe0f]*(👍|🙏|🎉|❤️|❤|💯|✅|👌|😊|😄|🙂|🥳|🔥)[\s\p{Extended_Pictographic}\u200d\ufe0f!.]*$`,
  String.raw`\b(gracias|genial|perfecto|vale|merci|parfait|génial|super|danke|perfekt|toll|prima|obrigad[oa]|valeu|perfeito|grazie|perfetto|ottimo)\b`,
  String.raw`(谢谢|謝謝|感谢|太好了|完美|ありがとう|完璧|助かり|すごい)`,
];

/** Continuing from the answer ("and mergesort?", "what about on Everest?", "tell me another one"): +1, checked last. */
export const FOLLOWUP: readonly string[] = [
  String.raw`^\W*(and|what about|how about|also|¿?y|et|und|e|e se)\b[^?]{0,80}\?\W*$`,
  String.raw`\b(can you|could you|now)\s+also\b`,
  String.raw`\b(another one|one more|more like (this|that)|the next one|otro más|encore un)\b`,
];

/** "Next time …": direction given alongside acceptance. */
export const NEXT_TIME = String.raw`\b(next time|in (the )?future|from now on|going forward|in general)\b`;

/** Explicit feedback typed as a message: `/good`, `/bad`, a lone thumb, `reaction: 👍`. */
export const FEEDBACK_GOOD = String.raw`^\W*(\/good\b|\+1\s*$|(reaction:\s*)?👍[\s\u{1F3FB}-\u{1F3FF}]*$)`;
export const FEEDBACK_BAD = String.raw`^\W*(\/bad\b|-1\s*$|(reaction:\s*)?👎[\s\u{1F3FB}-\u{1F3FF}]*$)`;

const UNICODE_WORD_BOUNDARY = String.raw`(?:(?<=[\p{L}\p{N}_])(?![\p{L}\p{N}_])|(?<![\p{L}\p{N}_])(?=[\p{L}\p{N}_]))`;

export class PatternError extends Error {}

/** Compiles a pattern source: case-insensitive, Unicode, `\b` made script-aware. */
export function compilePattern(source: string): RegExp {
  try {
    return new RegExp(source.replace(/\\b/g, UNICODE_WORD_BOUNDARY), "iu");
  } catch (err) {
    throw new PatternError(`invalid judge pattern ${JSON.stringify(source)}: ${(err as Error).message}`);
  }
}

export interface PatternSources {
  correction?: readonly string[];
  reask?: readonly string[];
  thanks?: readonly string[];
  change?: readonly string[];
  followup?: readonly string[];
}

export interface RulePatterns {
  correction: RegExp[];
  reask: RegExp[];
  thanks: RegExp[];
  change: RegExp[];
  followup: RegExp[];
  nextTime: RegExp;
  feedbackGood: RegExp;
  feedbackBad: RegExp;
}

/** The default patterns plus the configured extras. Throws PatternError on an invalid regex. */
export function compilePatterns(extra: PatternSources = {}): RulePatterns {
  const all = (defaults: readonly string[], more: readonly string[] = []) => [...defaults, ...more].map(compilePattern);
  return {
    correction: all(CORRECTION, extra.correction),
    reask: all(REASK, extra.reask),
    thanks: all(THANKS, extra.thanks),
    change: all(CHANGE, extra.change),
    followup: all(FOLLOWUP, extra.followup),
    nextTime: compilePattern(NEXT_TIME),
    feedbackGood: compilePattern(FEEDBACK_GOOD),
    feedbackBad: compilePattern(FEEDBACK_BAD),
  };
}

/** The first pattern that matches, with what it matched. */
export function firstMatch(patterns: RegExp[], text: string): { pattern: RegExp; match: string } | null {
  for (const p of patterns) {
    const m = p.exec(text);
    if (m) return { pattern: p, match: m[0] };
  }
  return null;
}
