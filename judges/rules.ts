// The rules judge: verdicts that need no model. Explicit feedback overrides everything; tool
// errors, non-zero exits and failing tests give −1; the user's next message is read for
// corrections, change requests, re-asks and thanks. Rules only ever read the text of user messages
// as the user's words: text inside tool output never counts as thanks, feedback or correction.
import type { JudgeMethod, Reward } from "../core/index.js";
import { directiveHint } from "./directives.js";
import type { Evidence, JudgeInput } from "./input.js";
import { compilePatterns, firstMatch, type PatternSources, type RulePatterns } from "./patterns.js";
import { normalize, overlapCoefficient, contentTokens } from "./text.js";
import { judgeToolOutput } from "./tool-output.js";

export interface RuleVerdict {
  score: Reward;
  method: Extract<JudgeMethod, "rules" | "feedback">;
  /** Which rule decided: feedback, correction, thanks, change_request, reask, tool_error, failing_tests, … */
  rule: string;
  detail: string;
  hint: string | null;
}

/** A re-ask shares most of its content words with the request it repeats. */
export const REASK_OVERLAP = 0.6;

export class RulesJudge {
  readonly patterns: RulePatterns;

  constructor(extra: PatternSources = {}) {
    this.patterns = compilePatterns(extra);
  }

  /** The verdict of the rules, or null when they cannot tell (then a model judge, if any, decides). */
  judge(input: JudgeInput): RuleVerdict | null {
    const feedback = [...input.evidence].reverse().map((e) => this.feedback(e)).find((v) => v !== null);
    if (feedback) return feedback;
    const verdicts = input.evidence.map((e) => this.one(e, input));
    const decided = verdicts.filter((v): v is RuleVerdict => v !== null);
    const negative = decided.find((v) => v.score === -1);
    if (negative) return { ...negative, hint: negative.hint ?? decided.find((v) => v.score === -1 && v.hint)?.hint ?? null };
    return decided.find((v) => v.score === 1) ?? decided.find((v) => v.score === 0) ?? null;
  }

  /** Explicit feedback: a feedback event, or a user message that is only `/good`, `/bad` or a thumb. */
  feedback(e: Evidence): RuleVerdict | null {
    if (e.kind !== "feedback" && e.kind !== "user_message") return null;
    const text = e.text.trim();
    let score: Reward | null = null;
    if (e.kind === "feedback" && e.score !== null && e.score !== 0) score = e.score > 0 ? 1 : -1;
    else if (this.patterns.feedbackGood.test(text)) score = 1;
    else if (this.patterns.feedbackBad.test(text)) score = -1;
    if (score === null) return null;
    const hint =
      score === -1
        ? directiveHint(text)
        : this.patterns.nextTime.test(text)
          ? directiveHint(text, { onlyNextTime: true, nextTime: this.patterns.nextTime })
          : null;
    return { score, method: "feedback", rule: "feedback", detail: text.slice(0, 80) || (score > 0 ? "+1" : "-1"), hint };
  }

  private one(e: Evidence, input: JudgeInput): RuleVerdict | null {
    switch (e.kind) {
      case "user_message":
        return this.userMessage(e.text, input.request);
      case "tool_result":
      case "tool_error": {
        const f = judgeToolOutput(e, input.action.toolCalls);
        return { score: f.score, method: "rules", rule: f.rule, detail: f.detail, hint: f.hint };
      }
      case "model_error":
        // The next model call failed (server down, bad gateway): not evidence about this action.
        return { score: 0, method: "rules", rule: "model_error", detail: e.text.slice(0, 80), hint: null };
      default:
        return null;
    }
  }

  /** A user's next message: correction > thanks > change request > re-ask > follow-up. */
  userMessage(text: string, request: string): RuleVerdict | null {
    const norm = normalize(text);
    if (!norm) return null;
    const p = this.patterns;
    const v = (score: Reward, rule: string, detail: string, hint: string | null): RuleVerdict => ({
      score,
      method: "rules",
      rule,
      detail,
      hint,
    });
    const correction = firstMatch(p.correction, norm);
    if (correction) return v(-1, "correction", correction.match, directiveHint(text, { request, requestWords: "require-new" }));
    const thanks = firstMatch(p.thanks, norm);
    if (thanks) {
      const hint = p.nextTime.test(norm) ? directiveHint(text, { onlyNextTime: true, nextTime: p.nextTime }) : null;
      return v(1, "thanks", thanks.match, hint);
    }
    const change = firstMatch(p.change, norm);
    if (change) return v(-1, "change_request", change.match, directiveHint(text, { request, requestWords: "require-new" }));
    const reask = firstMatch(p.reask, norm);
    if (reask) return v(-1, "reask", reask.match, directiveHint(text, { request, requestWords: "exclude", keepQuestions: true }));
    if (request && this.isRepeat(text, request)) {
      return v(-1, "reask", "repeats the request", directiveHint(text, { request, requestWords: "exclude", keepQuestions: true }));
    }
    const followup = firstMatch(p.followup, norm);
    if (followup) return v(1, "followup", followup.match, null);
    return null;
  }

  /** Most of the message's content words are the request's, and it is not much longer than it. */
  isRepeat(text: string, request: string): boolean {
    const { score, shared } = overlapCoefficient(text, request);
    const mine = contentTokens(text).length;
    const theirs = contentTokens(request).length;
    return score >= REASK_OVERLAP && shared >= Math.min(2, theirs) && mine <= Math.max(3 * theirs, theirs + 6);
  }
}
