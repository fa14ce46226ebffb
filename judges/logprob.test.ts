import { afterEach, describe, expect, it } from "vitest";
import { OpenAIClient } from "./client.js";
import type { JudgeInput } from "./input.js";
import { continuationScores, LogprobJudge, promptPositions } from "./logprob.js";
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

async function judgeWith(opts: ScriptedJudgeOptions, margin = 0.5, render: "auto" | "tokenize" | "text" = "auto") {
  server = await startScriptedJudge(opts);
  const client = new OpenAIClient({ baseUrl: server.url, timeoutMs: 5000, retries: 0 });
  const judge = new LogprobJudge(client, new ModelName(client, null), { margin, render });
  return { judge, verdict: await judge.judge(input) };
}

describe("log-prob judge", () => {
  it("scores the three answers in one completions request with vLLM's prompt_logprobs + echo + max_tokens 0", async () => {
    const { verdict } = await judgeWith({ score: prefers({ "1": -0.2, "-1": -3, "0": -2.5 }) });
    expect(verdict).toMatchObject({ score: 1, method: "logprob", votes: [1], hint: null, judgeModel: "judge-base" });
    const raw = JSON.parse(verdict.raw[0]!) as { logprobs: Record<string, number>; lead: number; render: string };
    // Each answer's tokens after the shared prefix: the scored character plus the closing brace (−0.01 each).
    expect(raw.logprobs).toEqual({ "1": -0.21, "-1": -3.02, "0": -2.51 });
    expect(raw.render).toBe("tokenize");
    const scoring = server!.requests.filter((r) => r.path === "/v1/completions");
    expect(scoring).toHaveLength(1);
    expect(scoring[0]!.body).toMatchObject({ max_tokens: 0, echo: true, prompt_logprobs: 0, temperature: 0 });
    expect(Array.isArray(scoring[0]!.body!.prompt) && (scoring[0]!.body!.prompt as unknown[]).length).toBe(3);
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

  it("falls back to a plain-text prompt when the server has no /tokenize, and to one request per answer without batching", async () => {
    const { verdict, judge } = await judgeWith({ tokenize: false, batchPrompts: false, score: prefers({ "1": -3, "-1": -0.2, "0": -3 }) });
    expect(verdict.score).toBe(-1);
    expect(judge.rendering).toBe("text");
    const scoring = server!.requests.filter((r) => r.path === "/v1/completions");
    expect(scoring.map((r) => typeof r.body!.prompt)).toEqual(["object", "string", "string", "string"]);
  });

  it("fails clearly against a server without prompt log-probs (llama-server)", async () => {
    await expect(judgeWith({ promptLogprobs: false })).rejects.toThrow(/prompt_logprobs is not supported/);
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
