import { describe, expect, it } from "vitest";
import { checkReply, checkSchema, sentences, words } from "./check.js";

describe("sentences", () => {
  it("counts sentences the way a reader does", () => {
    expect(sentences("Paris.")).toHaveLength(1);
    expect(sentences("Volcanoes form where magma rises. It erupts through vents!")).toHaveLength(2);
    expect(sentences("Is it hot? Yes. Very hot…")).toHaveLength(3);
    expect(sentences("No terminal punctuation at the end")).toHaveLength(1);
  });

  it("does not split at abbreviations or inside numbers", () => {
    expect(sentences("Some metals, e.g. iron, rust. Pi is 3.14 or so.")).toHaveLength(2);
    expect(sentences("Dr. Smith said it costs $2.50 today.")).toHaveLength(1);
  });

  it("counts list items and headings as sentences, and ignores markup and code fences", () => {
    const md = "## Tips\n\n- Sleep well\n- Drink water. Eat fruit.\n1) Walk\n```\n```";
    expect(sentences(md)).toEqual(["Tips", "Sleep well", "Drink water.", "Eat fruit.", "Walk"]);
  });

  it("keeps closing quotes and brackets with their sentence", () => {
    expect(sentences('He said "stop." Then he left.')).toHaveLength(2);
  });
});

describe("words", () => {
  it("counts words with apostrophes and hyphens as one", () => {
    expect(words("It's a well-known fact, isn’t it?")).toBe(6);
    expect(words("")).toBe(0);
  });
});

describe("checkReply", () => {
  it("max sentences: meets, misses, and says why", () => {
    const check = checkSchema.parse({ maxSentences: 2 });
    expect(checkReply(check, "Magma rises. It erupts.").ok).toBe(true);
    const r = checkReply(check, "Magma rises. It erupts. Lava flows.");
    expect(r).toMatchObject({ ok: false, sentences: 3, failures: ["3 sentences (at most 2)"] });
  });

  it("an empty reply never meets a preference", () => {
    expect(checkReply(checkSchema.parse({ maxSentences: 2 }), "  ").failures).toContain("empty reply");
  });

  it("words, regexes (must / must not), starts/ends with, contains one of — all must hold", () => {
    const check = checkSchema.parse({
      maxWords: 12,
      minWords: 2,
      mustMatch: ["\\?\\s*$"],
      mustNotMatch: ["^\\s*[-*]\\s", { source: "\\*\\*", flags: "m" }],
      startsWith: ["sure", "yes"],
      endsWith: ["?"],
      containsOneOf: ["for example", "e.g."],
    });
    expect(checkReply(check, "Sure, for example a walk. Want more?").ok).toBe(true);
    const bad = checkReply(check, "- **No** list here, for instance nothing at all in this reply of many words.");
    expect(bad.ok).toBe(false);
    expect(bad.failures).toEqual([
      "14 words (at most 12)",
      "does not match /\\?\\s*$/",
      'has "-"',
      'has "**"',
      'does not start with "sure" or "yes"',
      'does not end with "?"',
      'contains none of "for example", "e.g."',
    ]);
  });

  it("regexes are case-insensitive and multi-line by default", () => {
    const check = checkSchema.parse({ mustNotMatch: ["^#+ "] });
    expect(checkReply(check, "Intro\n# Heading").ok).toBe(false);
    expect(checkReply(checkSchema.parse({ mustMatch: ["question"] }), "A QUESTION").ok).toBe(true);
  });

  it("refuses an empty check and unknown conditions", () => {
    expect(checkSchema.safeParse({}).success).toBe(false);
    expect(checkSchema.safeParse({ maxSentence: 2 }).success).toBe(false);
    expect(checkSchema.safeParse({ maxSentences: 0 }).success).toBe(false);
  });
});
