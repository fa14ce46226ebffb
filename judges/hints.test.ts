import { describe, expect, it } from "vitest";
import { cleanHint, cutHint, HINT_MAX_CHARS, selectHint, specificity } from "./hints.js";
import { majority, parseAnswer } from "./votes.js";

describe("parseAnswer", () => {
  it("takes the last \\boxed{} and accepts only 1, -1 and 0", () => {
    expect(parseAnswer("maybe \\boxed{1}… no: \\boxed{-1}").score).toBe(-1);
    expect(parseAnswer("\\boxed{+1}").score).toBe(1);
    expect(parseAnswer("\\boxed{ 0 }").score).toBe(0);
    expect(parseAnswer("\\boxed{2}").score).toBeNull();
    expect(parseAnswer("I think it is positive.").score).toBeNull();
  });

  it("takes the last complete hint block", () => {
    expect(parseAnswer("[HINT_START]a[HINT_END] [HINT_START] Use --soft. [HINT_END]").hint).toBe("Use --soft.");
    expect(parseAnswer("\\boxed{-1} [HINT_START]cut off by max_tokens").hint).toBeNull();
  });
});

describe("majority (OpenClaw-RL's vote)", () => {
  it("ignores invalid votes; a tie or no valid vote is 0", () => {
    expect(majority([1, -1, null])).toBe(0);
    expect(majority([1, null, null])).toBe(1);
    expect(majority([null, null, null])).toBe(0);
    expect(majority([])).toBe(0);
    expect(majority([-1, -1, 1])).toBe(-1);
    expect(majority([0, 0, 1])).toBe(0);
    expect(majority([1, 1, -1, -1, 0])).toBe(0);
  });
});

describe("specificity", () => {
  const next = "whoa, --hard would throw away my changes! it should be --soft";

  it("rewards overlap with the next state and concrete tokens, penalizes filler", () => {
    const concrete = specificity("Use `git reset --soft HEAD~1` to keep the changes.", next);
    const generic = specificity("Be more careful and make sure to consider the user's needs before answering.", next);
    expect(concrete.overlap).toBeGreaterThan(0);
    expect(concrete.concrete).toBeGreaterThanOrEqual(2);
    expect(generic.filler).toBeGreaterThanOrEqual(2);
    expect(concrete.score).toBeGreaterThan(generic.score);
  });

  it("counts numbers, paths, files, flags, identifiers and names as concrete", () => {
    expect(specificity("Read config/app.toml first.", "").concrete).toBe(1);
    expect(specificity("The port is 5173.", "").concrete).toBe(1);
    expect(specificity("Call users.get(uid) instead of users[uid].", "").concrete).toBeGreaterThanOrEqual(1);
    expect(specificity("The capital is Canberra, not Sydney.", "").concrete).toBe(2);
    expect(specificity("Answer more briefly.", "").concrete).toBe(0);
  });
});

describe("selectHint", () => {
  const next = "no, use date_trunc('month', now()) — I want the last calendar month, not the last 30 days";

  it("picks the most specific agreeing hint, not the longest", () => {
    const longest =
      "The assistant should be more careful in the future and make sure to understand the user's request fully, paying close attention to every detail of what was asked so that the response is as helpful as possible.";
    const specific = "Use date_trunc('month', now()) to select the last calendar month, not the last 30 days.";
    expect(selectHint([longest, specific, null], next)).toBe(specific);
  });

  it("prefers the shorter hint when two are equally specific", () => {
    expect(selectHint(["Use the last calendar month.", "Please use the last calendar month."], next)).toBe("Use the last calendar month.");
  });

  it("drops hints that are only generic filler, and hints too short to say anything", () => {
    expect(selectHint(["Be more helpful and make sure to follow the instructions."], next)).toBeNull();
    expect(selectHint(["Fix it.", "", null], next)).toBeNull();
  });

  it("cuts a hint over 400 characters at a sentence boundary", () => {
    const s1 = "Use date_trunc('month', now()) for the calendar month. ".repeat(5);
    const long = s1 + "x".repeat(300);
    const hint = selectHint([long], next)!;
    expect(hint.length).toBeLessThanOrEqual(HINT_MAX_CHARS);
    expect(hint.endsWith("month.")).toBe(true);
  });
});

describe("cutHint", () => {
  it("leaves short hints alone", () => {
    expect(cutHint("Use --soft.")).toBe("Use --soft.");
  });

  it("cuts at a word with an ellipsis when there is no sentence end to cut at", () => {
    const h = cutHint("word ".repeat(120));
    expect(h.length).toBeLessThanOrEqual(HINT_MAX_CHARS);
    expect(h.endsWith("word…")).toBe(true);
  });

  it("strips answer markers from hints", () => {
    expect(cleanHint("[HINT_START] Use git reset --soft. \\boxed{1}")).toBe("Use git reset --soft.");
  });
});
