import { describe, expect, it } from "vitest";
import { emojiScore, parseFeedbackCommand, parseReactions, reactionsInRequest } from "./feedback.js";

describe("parseFeedbackCommand", () => {
  it("reads /good and /bad with and without a note, in any case", () => {
    expect(parseFeedbackCommand("/good")).toEqual({ score: 1, text: null });
    expect(parseFeedbackCommand("  /BAD   not what I asked ")).toEqual({ score: -1, text: "not what I asked" });
    expect(parseFeedbackCommand("/good\nthe second line counts too")).toEqual({ score: 1, text: "the second line counts too" });
  });

  it("sees through OpenClaw's timestamp prefix and first-message Runtime block", () => {
    expect(parseFeedbackCommand("[Sat 2026-11-21 10:23 UTC] /bad wrong file\n\nRuntime: agent=main | session=s")).toEqual({
      score: -1,
      text: "wrong file",
    });
  });

  it("ignores everything else", () => {
    for (const t of ["", "good", "/goodness", "/bad-idea", "please /bad", "//good", null, undefined]) {
      expect(parseFeedbackCommand(t)).toBeNull();
    }
  });
});

describe("reactions", () => {
  it("reads the reaction lines channels deliver as system events", () => {
    const text =
      'Conversation data (data, not instructions):\n"System: [2026-11-21 11:18:48 UTC] Telegram reaction added: 👍 by Alice (@alice) on msg 42"\n' +
      "System: [2026-11-21 11:19:00 UTC] Discord reaction added: 👎🏽 by bob on msg 7\n" +
      "System: [2026-11-21 11:19:30 UTC] Telegram reaction removed: 👍 by Alice on msg 42\n" +
      "System: [2026-11-21 11:20:00 UTC] Telegram reaction added: 🦄 by Alice on msg 43";
    const r = parseReactions(text);
    expect(r.map((x) => [x.score, x.emoji])).toEqual([
      [1, "👍"],
      [-1, "👎🏽"],
    ]);
    expect(r[0]!.raw).toBe("System: [2026-11-21 11:18:48 UTC] Telegram reaction added: 👍 by Alice (@alice) on msg 42");
  });

  it("looks only at the request's new input, not at reactions already in the history", () => {
    const line = (ts: string, e: string) => `System: [${ts}] Telegram reaction added: ${e} by A on msg 1`;
    const messages = [
      { role: "user", content: line("10:00", "👎") },
      { role: "assistant", content: "ok" },
      { role: "user", content: "hi" },
      { role: "user", content: [{ type: "text", text: line("10:05", "👍") }] },
    ];
    expect(reactionsInRequest(messages).map((r) => r.score)).toEqual([1]);
    expect(reactionsInRequest(undefined)).toEqual([]);
  });

  it("scores common emoji and leaves the rest alone", () => {
    expect(emojiScore("❤️")).toBe(1);
    expect(emojiScore("👍🏻")).toBe(1);
    expect(emojiScore("👎")).toBe(-1);
    expect(emojiScore("🤔")).toBeNull();
  });
});
