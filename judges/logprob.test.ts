import { afterEach, describe, expect, it } from "vitest";
import { OpenAIClient } from "./client.js";
import type { JudgeInput } from "./input.js";
import { answerLogprobs, continuationScores, LogprobJudge, promptPositions } from "./logprob.js";
import { ModelName } from "./model-name.js";
import { startScriptedJudge, type ScriptedJudge, type ScriptedJudgeOptions } from "./testing/scripted-judge.js";

let server: ScriptedJudge | null = null;
afterEach(async () => {
  await server?.close();
  server = null;
});

const input: JudgeInput = {
  request: "What's 12 * 12?",
  context: "",
  action: { content: "144", toolCalls: [] },
  evidence: [{ id: "n1", kind: "user_message", text: "perfect, thanks", score: null, exitCode: null, toolName: null }],
};

/** A scripted model whose log-prob for each answer is given. */
function prefers(lp: { "1": number; "-1": number; "0": number }): ScriptedJudgeOptions["score"] {
  return (text) => (text.endsWith("\\boxed{1}") ? lp["1"] : text.endsWith("\\boxed{-1}") ? lp["-1"] : lp["0"]);
}

async function judgeWith(opts: ScriptedJudgeOptions, margin = 0.5, scoring: "continuation" | "next-token" = "continuation") {
  server = await startScriptedJudge(opts);
  const client = new OpenAIClient({ baseUrl: server.url, timeoutMs: 5000, retries: 0 });
  const judge = new LogprobJudge(client, new ModelName(client, null), { margin, render: "auto", scoring });
  return { judge, verdict: await judge.judge(input) };
}

describe("log-prob judge", () => {
  it("scores the three answers with vLLM's prompt_logprobs + echo + max_tokens 0", async () => {
    const { verdict } = await judgeWith({ score: prefers({ "1": -0.2, "-1": -3, "0": -2.5 }) });
    expect(verdict).toMatchObject({ score: 1, method: "logprob", votes: [1], hint: null, judgeModel: "judge-base" });
    const raw = JSON.parse(verdict.raw[0]!) as { logprobs: Record<string, number>; lead: number; render: string };
    // Each answer's tokens after the shared prefix: the scored character plus the closing brace (−0.01 each).
    expect(raw.logprobs).toEqual({ "1": -0.21, "-1": -3.02, "0": -2.51 });
    expect(raw.render).toBe("tokenize");
    const scoring = server!.requests.filter((r) => r.path === "/v1/completions");
    expect(scoring).toHaveLength(3);
    for (const r of scoring) {
      expect(r.body).toMatchObject({ max_tokens: 0, echo: true, prompt_logprobs: 1, temperature: 0 });
      expect(typeof (r.body!.prompt as unknown[])[0]).toBe("number");
    }
    // The chat template came from the server: three chat /tokenize calls with the answer as a continued final message.
    const tok = server!.requests.filter((r) => r.path === "/tokenize");
    expect(tok).toHaveLength(3);
    expect(tok[0]!.body).toMatchObject({ add_generation_prompt: false, continue_final_message: true });
  });

  it("is deterministic and picks -1 and 0 when the model prefers them", async () => {
    const a = await judgeWith({ score: prefers({ "1": -4, "-1": -0.1, "0": -3 }) });
    expect(a.verdict.score).toBe(-1);
    expect((await a.judge.judge(input)).raw).toEqual(a.verdict.raw);
    await server!.close();
    expect((await judgeWith({ score: prefers({ "1": -4, "-1": -3, "0": -0.3 }) })).verdict.score).toBe(0);
  });

  it("answers 0 when the best answer leads by less than the margin", async () => {
    const close = prefers({ "1": -1.0, "-1": -1.3, "0": -5 });
    expect((await judgeWith({ score: close }, 0.5)).verdict.score).toBe(0);
    await server!.close();
    expect((await judgeWith({ score: close }, 0.1)).verdict.score).toBe(1);
  });

  it("falls back to a plain-text prompt when the server has no /tokenize", async () => {
    const { verdict, judge } = await judgeWith({ tokenize: false, batchPrompts: false, score: prefers({ "1": -3, "-1": -0.2, "0": -3 }) });
    expect(verdict.score).toBe(-1);
    expect(judge.rendering).toBe("text");
    const scoring = server!.requests.filter((r) => r.path === "/v1/completions");
    expect(scoring.map((r) => typeof r.body!.prompt)).toEqual(["string", "string", "string"]);
    expect(String(scoring[1]!.body!.prompt).endsWith("Assistant:\n\\boxed{-1}")).toBe(true);
  });

  it("fails clearly against a server without prompt log-probs (llama-server)", async () => {
    await expect(judgeWith({ promptLogprobs: false })).rejects.toThrow(/prompt_logprobs is not supported/);
  });
});

describe("next-token scoring", () => {
  it("decides from one generated token's top log-probs, over the server-rendered prompt ending in \\boxed{", async () => {
    const { verdict } = await judgeWith({ score: prefers({ "1": -2.5, "-1": -0.2, "0": -3 }) }, 0.5, "next-token");
    expect(verdict.score).toBe(-1);
    expect(JSON.parse(verdict.raw[0]!)).toMatchObject({ logprobs: { "1": -2.5, "-1": -0.2, "0": -3 }, scoring: "next-token" });
    const tok = server!.requests.filter((r) => r.path === "/tokenize");
    expect(tok).toHaveLength(1);
    expect((tok[0]!.body!.messages as { content: string }[]).at(-1)!.content).toBe("\\boxed{");
    const gen = server!.requests.filter((r) => r.path === "/v1/completions");
    expect(gen).toHaveLength(1);
    expect(gen[0]!.body).toMatchObject({ max_tokens: 1, logprobs: 20, temperature: 0 });
  });

  it("groups tokens by the answer they start and bounds an answer missing from the top-k", () => {
    const lps = answerLogprobs({ "1": Math.log(0.3), "1}": Math.log(0.1), "-": Math.log(0.2), " the": Math.log(0.05) });
    expect(lps[0]).toBeCloseTo(Math.log(0.4));
    expect(lps[1]).toBeCloseTo(Math.log(0.2));
    expect(lps[2]).toBeCloseTo(Math.log(0.05));
  });
});

describe("continuation scoring", () => {
  it("sums log-probs after the longest shared token prefix", () => {
    const seq = (keys: string[], lps: number[]) => keys.map((key, i) => ({ key, logprob: i === 0 ? null : lps[i]! }));
    const s = continuationScores([
      seq(["a", "b", "{", "1", "}"], [0, -1, -1, -0.5, -0.1]),
      seq(["a", "b", "{", "-", "1", "}"], [0, -1, -1, -2, -0.2, -0.1]),
      seq(["a", "b", "{", "0", "}"], [0, -1, -1, -1.5, -0.1]),
    ]);
    expect(s.map((x) => Math.round(x * 100) / 100)).toEqual([-0.6, -2.3, -1.6]);
  });

  it("reads the prompt token's entry when a position lists alternatives too, using the prompt ids", () => {
    const choice = {
      index: 0,
      prompt_logprobs: [null, { "7": { logprob: -0.3 }, "9": { logprob: -1.2 } }],
    };
    expect(promptPositions(choice, [5, 9])).toEqual([
      { key: "5", logprob: null },
      { key: "9", logprob: -1.2 },
    ]);
    expect(() => promptPositions(choice, null)).toThrow(/several tokens per position/);
    expect(() => promptPositions({ index: 0 }, null)).toThrow(/no prompt log-probs/);
  });

  it("also reads OpenAI's classic echo + logprobs shape", () => {
    expect(promptPositions({ index: 0, logprobs: { tokens: ["a", "b"], token_logprobs: [null, -0.5] } }, null)).toEqual([
      { key: "a", logprob: null },
      { key: "b", logprob: -0.5 },
    ]);
  });
});
