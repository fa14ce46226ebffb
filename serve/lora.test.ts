// LoRA hot-swap on the real SmolLM2 GGUF with GGUF LoRA files written by adapters/formats:
// vLLM's load/unload API and its status codes, per-request selection by model name, log-probs
// under an adapter equal to llama.cpp's own with that adapter, and in-flight requests finishing on
// the adapter they started with while it is unloaded or replaced.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import { createLoraAdapter, seededRandom, writeGgufLora, type LoraAdapter, type LoraConfig } from "../adapters/index.js";
import type { OpenAIErrorBody } from "../core/index.js";
import { referenceLogprobs } from "../test/support/llama-reference.js";
import { startServer, type RunningServer } from "./index.js";

const MODEL = process.env.CLAWLOOP_TEST_MODEL!;
// SmolLM2-135M: hidden 576, 9 query heads and 3 KV heads of 64, 30 layers.
const SMOL = { architecture: "llama", numHeads: 9, numKvHeads: 3 };
const CONFIG: LoraConfig = {
  rank: 4,
  alpha: 8,
  targets: ["q", "v"],
  numLayers: 30,
  dims: { q: { in: 576, out: 576 }, v: { in: 576, out: 192 } },
  baseModel: "SmolLM2-135M-Instruct",
};

let dir: string;
let server: RunningServer;

/** An adapter whose B is random (so it changes the model), or zero (so it changes nothing). */
function adapter(seed: number, zero = false): LoraAdapter {
  const a = createLoraAdapter(CONFIG, seed);
  if (!zero) {
    const rand = seededRandom(seed + 1000);
    for (const b of a.b.values()) for (let i = 0; i < b.length; i++) b[i] = (rand() * 2 - 1) * 0.5;
  }
  return a;
}

/** A version directory as the trainer writes it: `<dir>/vNNNNNN/adapter.gguf`. */
function writeVersion(name: string, lora: LoraAdapter, base: typeof SMOL = SMOL): string {
  const vdir = path.join(dir, name);
  fs.mkdirSync(vdir, { recursive: true });
  writeGgufLora(path.join(vdir, "adapter.gguf"), lora, base);
  return vdir;
}

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "clawloop-lora-"));
  const start = writeVersion("v000000", adapter(1));
  server = await startServer({ model: MODEL, port: 0, contextSize: 512, parallel: 2, servedModelName: "smol", threads: 1, loras: [{ name: "v000000", path: start }] });
  prompt = server.engine.model.tokenize("<|im_start|>user\nWhere do whales live?<|im_end|>\n<|im_start|>assistant\nWhales live in every ocean.", true);
});
afterAll(async () => {
  await server?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

async function post(p: string, body: unknown): Promise<Response> {
  return fetch(server.url + p, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
}

let prompt: number[] = [];

/** prompt_logprobs of a fixed token sequence under `model`. */
async function scored(model: string): Promise<number[]> {
  const res = await post("/v1/completions", { model, prompt, max_tokens: 0, prompt_logprobs: 0 });
  expect(res.status).toBe(200);
  const body = (await res.json()) as { choices: { prompt_logprobs: (Record<string, { logprob: number }> | null)[] }[] };
  const pl = body.choices[0]!.prompt_logprobs;
  return pl.slice(1).map((e, i) => e![String(prompt[i + 1])]!.logprob);
}

const maxDiff = (a: number[], b: number[]) => Math.max(...a.map((x, i) => Math.abs(x - b[i]!)));
const meanDiff = (a: number[], b: number[]) => a.reduce((s, x, i) => s + Math.abs(x - b[i]!), 0) / a.length;

describe("LoRA adapters", () => {
  it("loads adapters given at start and lists them like vLLM", async () => {
    const models = (await (await fetch(server.url + "/v1/models")).json()) as { data: { id: string }[] };
    expect(models.data.map((m) => m.id)).toEqual(["smol", "v000000"]);
    expect(models.data[1]).toMatchObject({ owned_by: "clawloop", parent: "smol", root: path.join(dir, "v000000") });
  });

  it("serves each request on the adapter it names, with llama.cpp's own log-probs for that adapter", async () => {
    const base = await scored("smol");
    const tuned = await scored("v000000");
    expect(maxDiff(base, tuned)).toBeGreaterThan(0.05);
    const file = path.join(dir, "v000000", "adapter.gguf");
    const ref = await referenceLogprobs(server.engine.model, prompt, { lora: file });
    expect(maxDiff(tuned, ref.map((r) => r.logprob))).toBeLessThan(1e-3);
    const refBase = await referenceLogprobs(server.engine.model, prompt);
    expect(maxDiff(base, refBase.map((r) => r.logprob))).toBeLessThan(1e-3);
  });

  it("reports exact log-probs for requests running at once on the base model and an adapter", async () => {
    // Samplers run on llama.cpp's worker threads; one shared between concurrent generations would
    // race on its buffers. Several scorings and generations at once must each match the reference.
    const file = path.join(dir, "v000000", "adapter.gguf");
    const [refBase, refTuned] = [
      (await referenceLogprobs(server.engine.model, prompt)).map((r) => r.logprob),
      (await referenceLogprobs(server.engine.model, prompt, { lora: file })).map((r) => r.logprob),
    ];
    const runs = await Promise.all([scored("smol"), scored("v000000"), scored("smol"), scored("v000000")]);
    expect(maxDiff(runs[0]!, refBase)).toBeLessThan(1e-3);
    expect(maxDiff(runs[1]!, refTuned)).toBeLessThan(1e-3);
    expect(maxDiff(runs[2]!, refBase)).toBeLessThan(1e-3);
    expect(maxDiff(runs[3]!, refTuned)).toBeLessThan(1e-3);
  });

  it("loads at run time with vLLM's API and bodies; a zero adapter changes nothing", async () => {
    const vdir = writeVersion("v000001", adapter(2, true));
    const res = await post("/v1/load_lora_adapter", { lora_name: "v000001", lora_path: vdir });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("Success: LoRA adapter 'v000001' added successfully.");
    expect(maxDiff(await scored("v000001"), await scored("smol"))).toBeLessThan(1e-4);
    const again = await post("/v1/load_lora_adapter", { lora_name: "v000001", lora_path: vdir });
    expect(again.status).toBe(400);
    expect(((await again.json()) as OpenAIErrorBody).error.message).toMatch(/already been loaded/);
    const un = await post("/v1/unload_lora_adapter", { lora_name: "v000001" });
    expect(un.status).toBe(200);
    expect(await un.text()).toBe("Success: LoRA adapter 'v000001' removed successfully.");
    expect((await post("/v1/chat/completions", { model: "v000001", messages: [{ role: "user", content: "hi" }] })).status).toBe(404);
  });

  it("lets in-flight requests finish on an adapter that is unloaded meanwhile, then frees it", async () => {
    const vdir = writeVersion("v000002", adapter(3));
    expect((await post("/v1/load_lora_adapter", { lora_name: "v000002", lora_path: vdir })).status).toBe(200);
    const file = path.join(vdir, "adapter.gguf");
    const res = await post("/v1/chat/completions", {
      model: "v000002",
      messages: [{ role: "user", content: "Tell me about the sea." }],
      max_tokens: 24,
      ignore_eos: true,
      stream: true,
      return_token_ids: true,
    });
    const reader = res.body!.getReader();
    let raw = new TextDecoder().decode((await reader.read()).value);
    // Unload while the stream is running.
    const un = await post("/v1/unload_lora_adapter", { lora_name: "v000002" });
    expect(un.status).toBe(200);
    expect(server.engine.retiringCount()).toBe(1);
    expect((await post("/v1/chat/completions", { model: "v000002", messages: [{ role: "user", content: "x" }] })).status).toBe(404);
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      raw += new TextDecoder().decode(value);
    }
    expect(raw.endsWith("data: [DONE]\n\n")).toBe(true);
    const events = raw.split("\n\n").filter((b) => b.startsWith("data: {")).map((b) => JSON.parse(b.slice(6)));
    expect(events.some((e) => e.error)).toBe(false);
    expect(events.flatMap((e) => e.choices[0]?.token_ids ?? [])).toHaveLength(24);
    expect(events[events.length - 1].choices[0].finish_reason).toBe("length");
    for (let i = 0; i < 200 && server.engine.retiringCount() > 0; i++) await new Promise((r) => setTimeout(r, 25));
    expect(server.engine.retiringCount()).toBe(0);
    // Its weights are released from the model once no context uses them.
    expect((server.engine.model as unknown as { _loraAdapters: Map<string, unknown> })._loraAdapters.has(file)).toBe(false);
  });

  it("replaces an adapter in place (load_inplace): running requests keep the old weights, new ones get the new", async () => {
    const v1 = writeVersion("live-a", adapter(4));
    const v2 = writeVersion("live-b", adapter(5));
    expect((await post("/v1/load_lora_adapter", { lora_name: "live", lora_path: v1 })).status).toBe(200);
    // Unloaded even when an assertion below fails, so the tests after this one start clean.
    onTestFinished(async () => void (await post("/v1/unload_lora_adapter", { lora_name: "live" })));
    const before = await scored("live");
    const res = await post("/v1/chat/completions", {
      model: "live",
      messages: [{ role: "user", content: "Count to ten." }],
      max_tokens: 16,
      ignore_eos: true,
      // Greedy: sampled at temperature 1, an unlikely token now and then is where llama.cpp's
      // one-token decode and batched evaluation differ most, and the test failed about half the runs.
      temperature: 0,
      stream: true,
      logprobs: true,
      return_token_ids: true,
    });
    const reader = res.body!.getReader();
    let raw = new TextDecoder().decode((await reader.read()).value);
    // The request is running on the old weights: swap them under it.
    const swapped = await post("/v1/load_lora_adapter", { lora_name: "live", lora_path: v2, load_inplace: true });
    expect(swapped.status).toBe(200);
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      raw += new TextDecoder().decode(value);
    }
    const events = raw.split("\n\n").filter((b) => b.startsWith("data: {")).map((b) => JSON.parse(b.slice(6)));
    const promptIds: number[] = events[0].prompt_token_ids;
    const ids: number[] = events.flatMap((e) => e.choices[0]?.token_ids ?? []);
    const lps: number[] = events.flatMap((e) => e.choices[0]?.logprobs?.content ?? []).map((c: { logprob: number }) => c.logprob);
    expect(ids).toHaveLength(16);
    // Every token of it, before and after the swap, was scored by the old adapter: its log-probs
    // are llama.cpp's under the old adapter, far from those under the new one. (Not to 1e-3:
    // with a LoRA, llama.cpp's one-token decode and its batched evaluation, which the reference
    // uses, differ by up to ~0.05 nats on some positions; without one they agree to 2e-4.)
    const seq = [...promptIds, ...ids];
    const old = (await referenceLogprobs(server.engine.model, seq, { lora: path.join(v1, "adapter.gguf"), from: promptIds.length })).map((r) => r.logprob);
    const young = (await referenceLogprobs(server.engine.model, seq, { lora: path.join(v2, "adapter.gguf"), from: promptIds.length })).map((r) => r.logprob);
    // Both distances in the message: a failure should say whether the request ran on the new
    // weights (old ≈ young's distance) or only drifted.
    const dist = `mean |Δ| to the old adapter ${meanDiff(lps, old).toFixed(4)}, to the new ${meanDiff(lps, young).toFixed(4)}`;
    expect(meanDiff(lps, old), dist).toBeLessThan(0.05);
    expect(meanDiff(lps, young), dist).toBeGreaterThan(5 * meanDiff(lps, old));
    const after = await scored("live");
    expect(maxDiff(before, after)).toBeGreaterThan(0.05);
    const ref = await referenceLogprobs(server.engine.model, prompt, { lora: path.join(v2, "adapter.gguf") });
    expect(maxDiff(after, ref.map((r) => r.logprob))).toBeLessThan(1e-3);
    expect((await post("/v1/unload_lora_adapter", { lora_name: "live" })).status).toBe(200);
  });

  it.each([
    ["missing fields", { lora_name: "x" }, 400, /must be provided/],
    ["a path that does not exist", { lora_name: "x", lora_path: "/nonexistent/v9" }, 404, /No adapter found/],
    ["a directory without a GGUF adapter", { lora_name: "x", lora_path: "<emptydir>" }, 404, /No adapter found/],
    ["a model file instead of an adapter", { lora_name: "x", lora_path: "<model>" }, 400, /not a GGUF LoRA adapter/],
    ["an adapter for another architecture", { lora_name: "x", lora_path: "<qwen2>" }, 400, /'qwen2' but the model is 'llama'/],
    ["the base model's name", { lora_name: "smol", lora_path: "<model>" }, 400, /base model's name/],
    ["an adapter whose shapes do not fit the model", { lora_name: "x", lora_path: "<badshape>" }, 400, /Failed to initialize LoRA/],
    ["a truncated adapter file", { lora_name: "x", lora_path: "<truncated>" }, 400, /adapter/],
  ])("refuses to load %s", async (_what, body, status, message) => {
    const resolved = { ...body } as Record<string, string>;
    if (resolved.lora_path === "<model>") resolved.lora_path = MODEL;
    if (resolved.lora_path === "<emptydir>") resolved.lora_path = fs.mkdtempSync(path.join(dir, "empty-"));
    if (resolved.lora_path === "<badshape>") {
      const wrong: LoraConfig = { ...CONFIG, targets: ["q"], dims: { q: { in: 100, out: 576 } } };
      resolved.lora_path = writeVersion("badshape", createLoraAdapter(wrong, 1));
    }
    if (resolved.lora_path === "<truncated>") {
      const file = path.join(writeVersion("truncated", adapter(7)), "adapter.gguf");
      fs.writeFileSync(file, fs.readFileSync(file).subarray(0, 2000));
      resolved.lora_path = file;
    }
    if (resolved.lora_path === "<qwen2>") resolved.lora_path = writeVersion("qwen2", adapter(6), { architecture: "qwen2", numHeads: 9, numKvHeads: 3 });
    const res = await post("/v1/load_lora_adapter", resolved);
    expect(res.status).toBe(status);
    expect(((await res.json()) as OpenAIErrorBody).error.message).toMatch(message);
    // Nothing half-loaded stays behind.
    expect(server.engine.adapters().map((a) => a.name)).toEqual(["v000000"]);
  });

  it("refuses to unload what is not loaded, or the base model", async () => {
    const res = await post("/v1/unload_lora_adapter", { lora_name: "nope" });
    expect(res.status).toBe(404);
    expect(((await res.json()) as OpenAIErrorBody).error.message).toMatch(/cannot be found/);
    expect((await post("/v1/unload_lora_adapter", { lora_name: "smol" })).status).toBe(400);
  });
});
