// Capture against the real embedded engine (serve/, llama.cpp through node-llama-cpp) with the real
// test model, SmolLM2-135M-Instruct: the sidecar detects it as `clawloop`, the client's answers are
// what the engine gives without the sidecar, and the recorded token ids and log-probs are the
// engine's own.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig, silentLogger } from "../../core/index.js";
import { startServer, type RunningServer } from "../../serve/index.js";
import { startSidecar, type SidecarHandle } from "../../sidecar/index.js";
import { post, removeTmpDirs, tagged, tmpDir } from "./sidecar-helpers.js";

type Obj = Record<string, any>;

let engine: RunningServer;
let sc: SidecarHandle;

beforeAll(async () => {
  const model = process.env.CLAWLOOP_TEST_MODEL;
  if (!model) throw new Error("CLAWLOOP_TEST_MODEL is not set (test/support/global-setup.ts fetches the model)");
  engine = await startServer({ model, contextSize: 1024, parallel: 2, logger: silentLogger });
  const config = loadConfig({ flags: { dataDir: tmpDir(), sidecar: { upstream: `${engine.url}/v1`, port: 0 } }, env: {} });
  sc = await startSidecar(config, { logger: silentLogger });
});

afterAll(async () => {
  await sc?.close();
  await engine?.close();
  removeTmpDirs();
});

/** Ids and timestamps differ per request; everything else must not. */
function normalize(o: Obj): Obj {
  const { id: _id, created: _created, ...rest } = o;
  return rest;
}

function events(text: string): Obj[] {
  return text
    .split("\n\n")
    .filter((e) => e.startsWith("data: ") && e !== "data: [DONE]")
    .map((e) => normalize(JSON.parse(e.slice(6)) as Obj));
}

const body = (extra: Obj = {}) => ({
  model: engine.engine.name,
  messages: [{ role: "user", content: "What is the capital of France? Answer in one word." }],
  temperature: 0,
  max_tokens: 12,
  ...extra,
});

describe("the sidecar in front of the embedded engine", () => {
  it("detects the engine as clawloop", () => {
    expect(sc.upstream.kind).toBe("clawloop");
  });

  it("answers exactly as the engine does, and records the engine's token ids and log-probs", async () => {
    // What the engine says when asked for ids and log-probs directly: the reference capture.
    const reference = (await (await post(`${engine.url}/v1/chat/completions`, body({ logprobs: true, return_token_ids: true }))).json()) as Obj;
    const refIds = reference.choices[0].token_ids as number[];
    const refLps = (reference.choices[0].logprobs.content as { logprob: number }[]).map((e) => e.logprob);
    expect(refIds.length).toBeGreaterThan(0);

    const direct = (await (await post(`${engine.url}/v1/chat/completions`, body())).json()) as Obj;
    const via = (await (await post(`${sc.url}/v1/chat/completions`, body(), tagged("engine", "run-1", 1))).json()) as Obj;
    expect(normalize(via)).toEqual(normalize(direct));
    expect(via.choices[0]).not.toHaveProperty("token_ids");
    expect(via).not.toHaveProperty("prompt_token_ids");
    expect(via.choices[0].logprobs).toBeNull();

    const directStream = await (await post(`${engine.url}/v1/chat/completions`, body({ stream: true, stream_options: { include_usage: true } }))).text();
    const viaStream = await (
      await post(`${sc.url}/v1/chat/completions`, body({ stream: true, stream_options: { include_usage: true } }), tagged("engine", "run-2", 1))
    ).text();
    expect(events(viaStream)).toEqual(events(directStream));
    expect(viaStream.endsWith("data: [DONE]\n\n")).toBe(true);

    const turns = await sc.store.list("turns", { where: { sessionId: "engine" }, orderBy: "seq" });
    expect(turns).toHaveLength(2);
    for (const t of turns) {
      expect(t.status).toBe("ok");
      expect(t.response?.content).toBe(reference.choices[0].message.content);
      expect(t.completionTokenIds).toEqual(refIds);
      expect(t.completionLogprobs).toHaveLength(refIds.length);
      t.completionLogprobs!.forEach((lp, i) => expect(lp).toBeCloseTo(refLps[i]!, 3));
      expect(t.promptTokenIds).toEqual(reference.prompt_token_ids);
      expect(t.usage?.completionTokens).toBe(refIds.length);
    }
  });

  it("captures /v1/completions from the engine too", async () => {
    const req = { model: engine.engine.name, prompt: "The capital of France is", temperature: 0, max_tokens: 6 };
    const reference = (await (await post(`${engine.url}/v1/completions`, { ...req, logprobs: 0, return_token_ids: true })).json()) as Obj;
    for (const stream of [false, true]) {
      const direct = await (await post(`${engine.url}/v1/completions`, { ...req, stream })).text();
      const via = await (await post(`${sc.url}/v1/completions`, { ...req, stream }, { "x-session-id": `cmpl-${stream}` })).text();
      if (stream) expect(events(via)).toEqual(events(direct));
      else expect(normalize(JSON.parse(via) as Obj)).toEqual(normalize(JSON.parse(direct) as Obj));
      const [turn] = await sc.store.list("turns", { where: { sessionId: `cmpl-${stream}` } });
      expect(turn!.completionTokenIds).toEqual(reference.choices[0].token_ids);
      expect(turn!.promptTokenIds).toEqual(reference.choices[0].prompt_token_ids);
      expect(turn!.response?.content).toBe(reference.choices[0].text);
    }
  });
});
