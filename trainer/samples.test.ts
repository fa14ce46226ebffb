import { describe, expect, it } from "vitest";
import type { Judgment, Turn } from "../core/index.js";
import { makeTurn } from "../test/support/rows.js";
import { buildSample, cutLeft, exchangeFromTurn, type Exchange, type SampleContext } from "./samples.js";
import { fakeTokenizer } from "./testing/fake-backend.js";

const ctx = (over: Partial<SampleContext> = {}): SampleContext => ({ mode: "combined", tokenizer: fakeTokenizer, maxTokens: 512, ...over });

function judgment(turn: Turn, score: -1 | 0 | 1, hint: string | null = null): Judgment {
  return {
    id: turn.id, turnId: turn.id, sessionId: turn.sessionId, score, method: "rules", votes: [], raw: [], hint,
    nextStateIds: [], judgeModel: null, costTokens: 0, costMs: 0, createdAt: new Date().toISOString(),
  };
}

function exchange(over: Partial<Exchange> = {}): Exchange {
  return {
    id: "x1", turnId: "x1",
    messages: [{ role: "user", content: "hi" }],
    reply: { content: "ok", toolCalls: [], reasoning: null },
    reward: 1, hint: null, ...over,
  };
}

describe("buildSample", () => {
  it("uses the ids and log-probs the server returned", () => {
    const turn = makeTurn(1);
    const r = buildSample(exchangeFromTurn(turn, judgment(turn, 1))!, ctx());
    if (!("sample" in r)) throw new Error(r.detail);
    expect(r.sample).toMatchObject({ promptTokenIds: [1, 2, 3], responseTokenIds: [4, 5], behaviourLogprobs: [-0.5, -1.25], reward: 1, teacherPromptTokenIds: null });
  });

  it("drops log-probs that do not line up with the response ids", () => {
    const turn = makeTurn(1, { completionLogprobs: [-1] });
    const r = buildSample(exchangeFromTurn(turn, judgment(turn, -1))!, ctx());
    expect("sample" in r && r.sample.behaviourLogprobs).toBe(null);
  });

  it("renders with the chat template when the server returned no ids: prompt + reply up to end-of-turn", () => {
    const r = buildSample(exchange(), ctx());
    if (!("sample" in r)) throw new Error(r.detail);
    const prompt = fakeTokenizer.encodeChat([{ role: "user", content: "hi" }], { addGenerationPrompt: true });
    expect(r.sample.promptTokenIds).toEqual(prompt);
    expect(r.sample.responseTokenIds).toEqual([...fakeTokenizer.encode("ok"), 2]);
    expect(r.sample.behaviourLogprobs).toBe(null);
  });

  it("keeps tool calls in the response tokens", () => {
    const call = { id: "c1", type: "function" as const, function: { name: "read", arguments: '{"p":"a"}' } };
    const r = buildSample(exchange({ reply: { content: "", toolCalls: [call], reasoning: null } }), ctx());
    if (!("sample" in r)) throw new Error(r.detail);
    expect(fakeTokenizer.decode(r.sample.responseTokenIds)).toBe('<call read {"p":"a"}>');
  });

  it("builds the teacher prompt with the hint on the last user message", () => {
    const r = buildSample(exchange({ reward: 0, hint: "  say more  " }), ctx());
    if (!("sample" in r)) throw new Error(r.detail);
    expect(r.sample.hint).toBe("say more");
    const teacher = fakeTokenizer.encodeChat([{ role: "user", content: "hi\n\n[user's hint / instruction]\nsay more" }], { addGenerationPrompt: true });
    expect(r.sample.teacherPromptTokenIds).toEqual(teacher);
  });

  it("selects by mode: rl needs ±1, opd a hint, combined either; the rest is skipped as no-signal", () => {
    const kinds = (mode: SampleContext["mode"]) =>
      [exchange({ reward: 1 }), exchange({ reward: 0, hint: "h" }), exchange({ reward: -1, hint: "h" }), exchange({ reward: 0 })].map((e) => {
        const r = buildSample(e, ctx({ mode }));
        return "sample" in r ? (r.sample.teacherPromptTokenIds ? "opd" : "rl") : r.skip;
      });
    expect(kinds("rl")).toEqual(["rl", "no-signal", "rl", "no-signal"]);
    expect(kinds("opd")).toEqual(["no-signal", "opd", "opd", "no-signal"]);
    expect(kinds("combined")).toEqual(["rl", "opd", "opd", "no-signal"]);
  });

  it("cuts over-long samples from the left of the prompt (teacher too) and skips replies that cannot fit", () => {
    const long = exchange({ messages: [{ role: "user", content: "x".repeat(100) }], reward: 1, hint: "shorter" });
    const r = buildSample(long, ctx({ maxTokens: 20 }));
    if (!("sample" in r)) throw new Error(r.detail);
    const full = fakeTokenizer.encodeChat(long.messages!, { addGenerationPrompt: true });
    expect(r.sample.responseTokenIds).toHaveLength(3);
    expect(r.sample.promptTokenIds).toEqual(full.slice(-17));
    expect(r.sample.teacherPromptTokenIds).toHaveLength(17);
    expect(cutLeft([1, 2, 3], 5)).toEqual([1, 2, 3]);
    const tooLong = buildSample(exchange({ reply: { content: "y".repeat(30), toolCalls: [], reasoning: null } }), ctx({ maxTokens: 20 }));
    expect(tooLong).toMatchObject({ skip: "too-long" });
  });

  it("skips empty replies, and hints on completions (nothing to append them to)", () => {
    expect(buildSample(exchange({ reply: { content: "", toolCalls: [], reasoning: null } }), ctx())).toMatchObject({ skip: "empty-response" });
    const completion = exchange({ messages: null, prompt: "Once upon", reward: 0, hint: "h" });
    expect(buildSample(completion, ctx())).toMatchObject({ skip: "no-signal", detail: expect.stringMatching(/chat conversation/) });
    const rl = buildSample({ ...completion, reward: 1 }, ctx());
    expect("sample" in rl && rl.sample.promptTokenIds).toEqual(fakeTokenizer.encode("Once upon"));
    expect(buildSample({ ...completion, reward: 1, prompt: ["a", "b"] }, ctx())).toMatchObject({ skip: "unrenderable" });
  });

  it("skips server token ids that are not in the model's vocabulary", () => {
    const turn = makeTurn(1, { completionTokenIds: [4, 50_000] });
    expect(buildSample(exchangeFromTurn(turn, judgment(turn, 1))!, ctx({ vocabSize: 49_152 }))).toMatchObject({ skip: "unrenderable", detail: expect.stringMatching(/token id 50000 is outside the model's vocabulary/) });
  });

  it("reports a template that fails as unrenderable", () => {
    const broken = { ...fakeTokenizer, encodeChat: () => { throw new Error("template exploded"); } };
    expect(buildSample(exchange(), ctx({ tokenizer: broken }))).toMatchObject({ skip: "unrenderable", detail: "template exploded" });
  });
});

describe("exchangeFromTurn", () => {
  it("takes only ok main-line turns with a response", () => {
    const j = (t: Turn) => judgment(t, 1);
    expect(exchangeFromTurn(makeTurn(1, { turnType: "side" }), j(makeTurn(1)))).toBe(null);
    expect(exchangeFromTurn(makeTurn(1, { status: "upstream_error" }), j(makeTurn(1)))).toBe(null);
    expect(exchangeFromTurn(makeTurn(1, { response: null }), j(makeTurn(1)))).toBe(null);
    expect(exchangeFromTurn(makeTurn(1), judgment(makeTurn(1), -1, "h"))).toMatchObject({ reward: -1, hint: "h", messages: [{ role: "user", content: "hello 1" }] });
  });
});
