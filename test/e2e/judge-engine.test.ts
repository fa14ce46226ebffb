// The model judges against the real embedded engine (serve/, llama.cpp through node-llama-cpp) and
// the real test model, SmolLM2-135M-Instruct. A 135M model is not a useful judge, so these tests
// check the plumbing (discovery, votes, the engine's chat template through /tokenize, prompt
// log-probs), and that the two log-prob scorings agree with each other, not accuracy.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig, silentLogger } from "../../core/index.js";
import { createJudge, type JudgeInput } from "../../judges/index.js";
import { startServer, type RunningServer } from "../../serve/index.js";

let engine: RunningServer;

beforeAll(async () => {
  const model = process.env.CLAWLOOP_TEST_MODEL;
  if (!model) throw new Error("CLAWLOOP_TEST_MODEL is not set (test/support/global-setup.ts fetches the model)");
  // One request at a time: concurrent prompt-log-prob requests are not safe in the engine yet.
  engine = await startServer({ model, contextSize: 2048, parallel: 1, logger: silentLogger });
});

afterAll(async () => {
  await engine?.close();
});

const input: JudgeInput = {
  request: "What is the capital of Australia?",
  context: "",
  action: { content: "Sydney.", toolCalls: [] },
  evidence: [{ id: "n1", kind: "user_message", text: "no, it's Canberra", score: null, exitCode: null, toolName: null }],
};

function config(judge: Record<string, unknown>) {
  return loadConfig({ env: {}, flags: { dataDir: "/nonexistent", judge: { endpoint: `${engine.url}/v1`, retries: 0, ...judge } } });
}

describe("judges against the embedded engine", () => {
  it("PRM: discovers the served model, samples m votes and stores their raw answers", { timeout: 600_000 }, async () => {
    const judge = createJudge(config({ method: "prm", votes: 2, maxTokens: 16 }), { rulesFirst: false });
    const v = await judge.judge(input);
    expect(v.method).toBe("prm");
    expect(v.judgeModel).toBe("SmolLM2-135M-Instruct.Q4_1");
    expect(v.raw).toHaveLength(2);
    for (const r of v.raw) expect(r.length).toBeGreaterThan(0);
    expect(v.votes).toHaveLength(2);
    for (const vote of v.votes) expect([1, -1, 0, null]).toContain(vote);
    expect([1, -1, 0]).toContain(v.score);
    expect(v.costTokens).toBeGreaterThan(200);
  });

  it("log-prob: exact continuation scores are deterministic and agree with next-token scoring", { timeout: 600_000 }, async () => {
    const exact = createJudge(config({ method: "logprob", logprobScoring: "continuation", logprobMargin: 0 }), { rulesFirst: false });
    const a = await exact.judge(input);
    const b = await exact.judge(input);
    expect(a.raw).toEqual(b.raw);
    const ra = JSON.parse(a.raw[0]!) as { logprobs: Record<string, number>; render: string };
    expect(ra.render).toBe("tokenize");
    for (const lp of Object.values(ra.logprobs)) {
      expect(Number.isFinite(lp)).toBe(true);
      expect(lp).toBeLessThan(0);
    }
    const next = createJudge(config({ method: "logprob", logprobScoring: "next-token", logprobMargin: 0 }), { rulesFirst: false });
    const rn = JSON.parse((await next.judge(input)).raw[0]!) as { logprobs: Record<string, number> };
    // Exact: log P("1") + log P("}" | …1). Next-token: log P("1") from the generated token's top-20.
    // Same prefix, same raw log-softmax, two different endpoints of the engine.
    expect(ra.logprobs["1"]!).toBeLessThanOrEqual(rn.logprobs["1"]! + 1e-3);
    expect(rn.logprobs["1"]! - ra.logprobs["1"]!).toBeLessThan(2);
    expect(ra.logprobs["0"]!).toBeLessThanOrEqual(rn.logprobs["0"]! + 1e-3);
  });
});
