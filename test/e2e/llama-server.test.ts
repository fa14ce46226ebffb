// The sidecar and the `llamacpp` adapter driver against a real llama.cpp `llama-server` (built from
// the llama.cpp source node-llama-cpp ships: test/support/llama-server.ts) serving the SmolLM2
// fixture, with a real GGUF LoRA adapter applied at start (`--lora`).
//
// What the sidecar, the driver and the scripted stand-in (fixtures/upstream, kind "llamacpp")
// assume about llama-server is checked here against the server itself: kind detection; that asking
// for log-probs on the client's behalf and hiding them again gives the client what it would have
// had directly (chunk by chunk, ignoring only ids, timestamps and timings); that the recorded token
// ids and log-probs are the completion's (detokenized by the server, and equal to what a client
// asking for them gets), and that none are recorded where llama-server's entries do not spell the
// answer (characters over several tokens); the end-of-turn token; tools + stream; error
// pass-through; client aborts; back-to-back calls after a stream (llama-server closes the
// connection); the stand-in's shapes against the real ones; the driver's view of `/lora-adapters`.
//
// Every request sets `cache_prompt: false` and `temperature: 0`: llama-server otherwise reuses the
// KV cache of the previous request, and logits are not bit-identical across batch shapes, so a
// direct call and the same call through the sidecar could differ in the last digits.
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLoraAdapter, LlamaCppDriver, DriverError, type LoraAdapter, type LoraConfig } from "../../adapters/index.js";
import { loadConfig, silentLogger, type Turn } from "../../core/index.js";
import { startLoraServer } from "../../fixtures/servers/lora.js";
import { startScriptedUpstream } from "../../fixtures/upstream/index.js";
import { startSidecar, type SidecarHandle } from "../../sidecar/index.js";
import { writeVersion } from "../support/adapter-versions.js";
import { ensureLlamaServer, startLlamaServer, type LlamaServer } from "../support/llama-server.js";
import { until } from "../support/until.js";

// JSON answers, read field by field.
type Obj = Record<string, any>;

const SMOL = { architecture: "llama", numHeads: 9, numKvHeads: 3 };
/** SmolLM2's end-of-turn token, `<|im_end|>`. */
const EOS = 2;
function smolAdapter(seed: number, bScale: number): LoraAdapter {
  const config: LoraConfig = {
    rank: 8,
    alpha: 8,
    targets: ["q", "v"],
    numLayers: 30,
    baseModel: "SmolLM2-135M-Instruct",
    dims: { q: { in: 576, out: 576 }, v: { in: 576, out: 192 } },
  };
  const adapter = createLoraAdapter(config, seed);
  for (const b of adapter.b.values()) for (let i = 0; i < b.length; i++) b[i] = bScale * Math.sin(seed * 7 + i);
  return adapter;
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "llama-server-e2e-"));
const adaptersDir = path.join(tmp, "adapters");
let server: LlamaServer;
let sc: SidecarHandle;
let v1: string;
let v2: string;

beforeAll(async () => {
  // Normally built by the global setup already; this builds (or waits for a build) otherwise.
  await ensureLlamaServer();
  v1 = writeVersion(adaptersDir, 1, { adapter: smolAdapter(1, 0.05), gguf: SMOL });
  v2 = writeVersion(adaptersDir, 2, { adapter: smolAdapter(2, 0.05), gguf: SMOL });
  server = await startLlamaServer({ model: process.env.CLAWLOOP_TEST_MODEL!, lora: [path.join(v1, "adapter.gguf")], ctx: 2048, threads: 2 });
  const config = loadConfig({ flags: { dataDir: path.join(tmp, "data"), sidecar: { upstream: `${server.url}/v1`, port: 0 } }, env: {} });
  sc = await startSidecar(config, { logger: silentLogger, storeHost: "main" });
}, 60 * 60_000);

afterAll(async () => {
  await sc?.close();
  await server?.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

// --- small clients --------------------------------------------------------------------------

const MESSAGES = [
  { role: "system", content: "You are a helpful assistant." },
  { role: "user", content: "Name three colors of the rainbow." },
];
const chatBody = (extra: Obj = {}): Obj => ({ model: "smol", messages: MESSAGES, max_tokens: 20, temperature: 0, seed: 7, cache_prompt: false, ...extra });

/**
 * A POST on a connection of its own: llama-server closes its connection after a streamed answer
 * while announcing keep-alive, so a pooled client (fetch) would now and then reuse a dead socket.
 */
function post(base: string, pathname: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; type: string | null; text: string }> {
  return new Promise((resolve, reject) => {
    const data = Buffer.from(JSON.stringify(body));
    const req = http.request(base + pathname, { method: "POST", agent: false, headers: { "content-type": "application/json", "content-length": data.length, ...headers } }, (res) => {
      const parts: Buffer[] = [];
      res.on("data", (c: Buffer) => parts.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, type: res.headers["content-type"] ?? null, text: Buffer.concat(parts).toString("utf8") }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(data);
  });
}

/** A GET on a connection of its own (see `post`), parsed. */
function get<T = Obj>(url: string): Promise<T> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { agent: false }, (res) => {
        const parts: Buffer[] = [];
        res.on("data", (c: Buffer) => parts.push(c));
        res.on("end", () => resolve(JSON.parse(Buffer.concat(parts).toString("utf8")) as T));
        res.on("error", reject);
      })
      .on("error", reject);
  });
}

/** The SSE events' data fields, in order (`[DONE]` kept as the string). */
function events(text: string): (Obj | "[DONE]")[] {
  return text
    .split("\n\n")
    .filter((e) => e.trim())
    .map((e) => {
      const data = e
        .split("\n")
        .filter((l) => l.startsWith("data: "))
        .map((l) => l.slice(6))
        .join("\n");
      return data === "[DONE]" ? "[DONE]" : (JSON.parse(data) as Obj);
    });
}

/** What differs between two identical calls: ids, timestamps, timings. */
function stable<T>(v: T): T {
  if (Array.isArray(v)) return v.map(stable) as T;
  if (v && typeof v === "object") {
    const out: Obj = {};
    for (const [k, x] of Object.entries(v)) if (!["id", "created", "timings"].includes(k)) out[k] = stable(x);
    return out as T;
  }
  return v;
}

let sessionN = 0;
const session = () => ({ "x-session-id": `ls-${++sessionN}` });

async function turnOf(headers: { "x-session-id": string }): Promise<Turn> {
  return until(`the turn of ${headers["x-session-id"]}`, async () => (await sc.store.list("turns", { where: { sessionId: headers["x-session-id"] } }))[0]);
}

async function detokenize(ids: number[]): Promise<string> {
  const r = await post(server.url, "/detokenize", { tokens: ids });
  expect(r.status).toBe(200);
  return (JSON.parse(r.text) as { content: string }).content;
}

/** A chat call straight to llama-server that asks for log-probs itself: its answer, and its entries' (`logprobs.content[]`) ids and log-probs. */
async function askedForLogprobs(body: Obj = {}): Promise<{ own: Obj; ids: number[]; lps: number[] }> {
  const own = JSON.parse((await post(server.url, "/v1/chat/completions", chatBody({ ...body, logprobs: true, top_logprobs: 1 }))).text) as Obj;
  const entries = own.choices[0].logprobs.content as Obj[];
  return { own, ids: entries.map((e) => e.id as number), lps: entries.map((e) => e.logprob as number) };
}

/** The recorded ids and log-probs are those a client asking for them itself gets. */
async function expectAsAskedFor(ids: number[], lps: number[]): Promise<void> {
  const ref = await askedForLogprobs();
  expect(ids).toEqual(ref.ids);
  lps.forEach((lp, i) => expect(lp).toBeCloseTo(ref.lps[i]!, 5));
}

/**
 * The same call straight to llama-server and through the sidecar: the client must get the direct
 * answer (bar ids, timestamps and timings). Returns the sidecar's answer parsed: a stream's events,
 * else the one body.
 */
async function sameAsDirect(pathname: string, body: Obj, headers: Record<string, string>): Promise<(Obj | "[DONE]")[]> {
  const direct = await post(server.url, pathname, body);
  const via = await post(sc.url, pathname, body, headers);
  expect(via.status).toBe(200);
  expect(via.type).toBe(direct.type);
  const parse = (text: string) => (body.stream === true ? events(text) : [JSON.parse(text) as Obj]);
  const v = parse(via.text);
  expect(v.map((e) => JSON.stringify(stable(e)))).toEqual(parse(direct.text).map((e) => JSON.stringify(stable(e))));
  return v;
}

// --- the sidecar in front of llama-server ---------------------------------------------------

describe("the sidecar in front of a real llama-server", () => {
  it("detects the kind llamacpp on its own", async () => {
    expect(await sc.upstream.detect()).toBe("llamacpp");
    expect(sc.upstream.kind).toBe("llamacpp");
  });

  it("non-streamed chat: the client gets the direct answer; the turn holds the completion's ids and log-probs", async () => {
    const h = session();
    const [v] = (await sameAsDirect("/v1/chat/completions", chatBody(), h)) as [Obj];
    expect(v.choices[0]).not.toHaveProperty("logprobs");
    const content = v.choices[0].message.content as string;
    expect(content.length).toBeGreaterThan(0);

    const turn = await turnOf(h);
    expect(turn.status).toBe("ok");
    expect(turn.response?.content).toBe(content);
    expect(turn.request.params).not.toHaveProperty("logprobs");
    const ids = turn.completionTokenIds!;
    expect(ids.length).toBeGreaterThan(0);
    expect(turn.completionLogprobs).toHaveLength(ids.length);
    expect(await detokenize(ids)).toBe(content);
    // The same call asking for log-probs itself: the same tokens and values.
    await expectAsAskedFor(ids, turn.completionLogprobs!);
    expect(turn.completionLogprobs!.every((lp) => lp <= 0)).toBe(true);
  });

  it("streamed chat: the client gets the direct chunks; the turn holds the completion's ids and log-probs", async () => {
    const h = session();
    const v = await sameAsDirect("/v1/chat/completions", chatBody({ stream: true, stream_options: { include_usage: true } }), h);
    expect(v.at(-1)).toBe("[DONE]");
    for (const e of v) if (e !== "[DONE]") for (const c of e.choices as Obj[]) expect(c).not.toHaveProperty("logprobs");
    const content = v.flatMap((e) => (e === "[DONE]" ? [] : (e.choices as Obj[]).map((c) => c.delta?.content ?? ""))).join("");
    const usage = (v.at(-2) as Obj).usage as Obj;

    const turn = await turnOf(h);
    expect(turn.status).toBe("ok");
    expect(turn.response?.content).toBe(content);
    expect(turn.usage?.completionTokens).toBe(usage.completion_tokens);
    const ids = turn.completionTokenIds!;
    expect(ids).not.toBeNull();
    expect(turn.completionLogprobs).toHaveLength(ids.length);
    expect(await detokenize(ids)).toBe(content);
    await expectAsAskedFor(ids, turn.completionLogprobs!);
  });

  it("an answer that ends by the end-of-turn token: non-streamed ids include it, streamed ones cannot (llama-server sends no entry for it)", async () => {
    const short = { messages: [{ role: "user", content: "Say just the word hello." }], max_tokens: 30 };
    for (const stream of [false, true]) {
      const h = session();
      const res = await post(sc.url, "/v1/chat/completions", chatBody({ ...short, ...(stream ? { stream: true } : {}) }), h);
      expect(res.status).toBe(200);
      const turn = await turnOf(h);
      expect(turn.response?.finishReason).toBe("stop");
      const content = turn.response!.content;
      const { own, ...ref } = await askedForLogprobs(short);
      expect(ref.ids.at(-1)).toBe(EOS);
      expect(own.usage.completion_tokens).toBe(ref.ids.length);
      // Streamed, the end-of-turn token adds no text, so llama-server sends no log-prob for it.
      expect(turn.completionTokenIds).toEqual(stream ? ref.ids.slice(0, -1) : ref.ids);
      expect(await detokenize(turn.completionTokenIds!)).toBe(stream ? content : `${content}<|im_end|>`);
    }
  });

  it("an answer whose characters span several tokens is recorded without ids: llama-server's entries do not spell it", async () => {
    const emoji = { messages: [{ role: "user", content: "Write three emojis about the sun." }], max_tokens: 12 };
    const { own, ...entries } = await askedForLogprobs(emoji);
    // One entry per completed character, with only its last token's id.
    expect(entries.ids.length).toBeLessThan(own.usage.completion_tokens as number);
    expect(await detokenize(entries.ids)).not.toBe(own.choices[0].message.content);
    for (const stream of [false, true]) {
      const h = session();
      const res = await post(sc.url, "/v1/chat/completions", chatBody({ ...emoji, ...(stream ? { stream: true } : {}) }), h);
      expect(res.status).toBe(200);
      const turn = await turnOf(h);
      expect(turn.status).toBe("ok");
      expect(turn.response?.content).toBe(own.choices[0].message.content);
      expect(turn.completionTokenIds).toBeNull();
      expect(turn.completionLogprobs).toBeNull();
    }
  });

  it("tools + stream: the sidecar asks for nothing (llama-server refuses log-probs there) and the client gets the direct answer", async () => {
    const tools = [{ type: "function", function: { name: "get_weather", parameters: { type: "object", properties: { city: { type: "string" } } } } }];
    const body = chatBody({ messages: [{ role: "user", content: "What is the weather in Paris?" }], tools, stream: true });
    const refused = await post(server.url, "/v1/chat/completions", { ...body, logprobs: true });
    expect(refused.status).toBe(400);
    expect(refused.text).toContain("logprobs is not supported with tools + stream");
    const h = session();
    await sameAsDirect("/v1/chat/completions", body, h);
    const turn = await turnOf(h);
    expect(turn.status).toBe("ok");
    expect(turn.completionTokenIds).toBeNull();
  });

  it("a client that asks for log-probs gets them untouched, streamed or not", async () => {
    for (const stream of [false, true]) {
      const h = session();
      const v = await sameAsDirect("/v1/chat/completions", chatBody({ logprobs: true, top_logprobs: 2, ...(stream ? { stream: true } : {}) }), h);
      const entries = v.flatMap((e) => (e === "[DONE]" ? [] : (e.choices as Obj[]).flatMap((c) => (c.logprobs?.content ?? []) as Obj[])));
      expect(entries.length).toBeGreaterThan(0);
      for (const e of entries) expect(e.top_logprobs).toHaveLength(2);
      const turn = await turnOf(h);
      expect(turn.completionTokenIds).toEqual(entries.map((e) => e.id));
      expect(turn.completionLogprobs).toEqual(entries.map((e) => e.logprob));
    }
  });

  it("/v1/completions, streamed or not: the client gets the direct answer; the turn holds its ids", async () => {
    for (const stream of [false, true]) {
      const h = session();
      const body = { model: "smol", prompt: "The three primary colors are", max_tokens: 12, temperature: 0, cache_prompt: false, ...(stream ? { stream: true } : {}) };
      const v = await sameAsDirect("/v1/completions", body, h);
      const text = v.flatMap((e) => (e === "[DONE]" ? [] : (e.choices as Obj[]).map((c) => c.text as string))).join("");
      const turn = await turnOf(h);
      expect(turn.endpoint).toBe("completions");
      expect(turn.response?.content).toBe(text);
      const ids = turn.completionTokenIds!;
      expect(ids).not.toBeNull();
      expect(turn.completionLogprobs).toHaveLength(ids.length);
      expect(await detokenize(ids)).toBe(text);
    }
  });

  it("streamed calls back to back all get through (llama-server closes the connection after a stream while announcing keep-alive)", async () => {
    // The server's side of it: a stream's response says `Keep-Alive: timeout=5, max=100`, and the
    // socket is closed anyway, so a client that reuses it at once gets ECONNRESET.
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const direct = (stream: boolean) =>
      new Promise<{ status?: number; error?: string; reused: boolean }>((resolve) => {
        const data = JSON.stringify({ prompt: "Hi", max_tokens: 1, stream, cache_prompt: false });
        const req = http.request(`${server.url}/v1/completions`, { method: "POST", agent, headers: { "content-type": "application/json" } }, (res) => {
          res.resume();
          res.on("end", () => resolve({ status: res.statusCode, reused: req.reusedSocket }));
        });
        req.on("error", (err: NodeJS.ErrnoException) => resolve({ error: err.code ?? err.message, reused: req.reusedSocket }));
        req.end(data);
      });
    await direct(true);
    const next = await direct(true);
    agent.destroy();
    expect(next).toEqual({ error: "ECONNRESET", reused: true });
    // Through the sidecar, whose connections to the upstream are kept alive: none may fail.
    const statuses: number[] = [];
    for (let i = 0; i < 8; i++) {
      const r = await post(sc.url, "/v1/chat/completions", chatBody({ max_tokens: 2, ...(i % 2 === 0 ? { stream: true } : {}) }), session());
      statuses.push(r.status);
    }
    expect(statuses).toEqual(Array(8).fill(200));
  });

  it("an error llama-server answers passes through unchanged and is recorded as upstream_error", async () => {
    const h = session();
    // llama-server: "top_logprobs requires logprobs to be set to true" (400).
    const body = chatBody({ top_logprobs: 3 });
    const direct = await post(server.url, "/v1/chat/completions", body);
    const via = await post(sc.url, "/v1/chat/completions", body, h);
    expect(direct.status).toBe(400);
    expect(via.status).toBe(400);
    expect(via.type).toBe(direct.type);
    expect(via.text).toBe(direct.text);
    const turn = await turnOf(h);
    expect(turn.status).toBe("upstream_error");
    expect(turn.upstreamStatus).toBe(400);
    expect(turn.error).toContain((JSON.parse(direct.text) as Obj).error.message);
  });

  it("a client that goes away mid-stream is recorded as client_aborted, and the server keeps serving", async () => {
    const h = session();
    const body = JSON.stringify(chatBody({ stream: true, max_tokens: 400, messages: [{ role: "user", content: "Write a very long story about a dragon." }] }));
    await new Promise<void>((resolve, reject) => {
      const req = http.request(`${sc.url}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json", ...h } });
      req.on("response", (res) => {
        let chunks = 0;
        res.on("data", () => {
          if (++chunks === 3) {
            req.destroy();
            resolve();
          }
        });
        res.on("error", () => undefined);
      });
      req.on("error", (err) => (err.message.includes("socket hang up") || err.message.includes("aborted") ? undefined : reject(err)));
      req.end(body);
    });
    const turn = await turnOf(h);
    expect(turn.status).toBe("client_aborted");
    const after = await post(sc.url, "/v1/chat/completions", chatBody(), session());
    expect(after.status).toBe(200);
  });
});

// --- the scripted stand-in follows the real server ---------------------------------------------

/** A JSON value's shape: keys in order, value types, arrays by their first element. */
function shape(v: unknown): unknown {
  if (v === null) return "null";
  if (Array.isArray(v)) return v.length ? [shape(v[0])] : [];
  if (typeof v === "object") return Object.entries(v).map(([k, x]) => [k, shape(x)]);
  return typeof v;
}

/** The shapes of a response: its body's, or a stream's events' with repeats in a row counted once. */
function shapes(text: string, stream: boolean): string[] {
  const all = stream ? events(text).map((e) => JSON.stringify(e === "[DONE]" ? e : shape(e))) : [JSON.stringify(shape(JSON.parse(text)))];
  return all.filter((x, i) => x !== all[i - 1]);
}

describe("the scripted llamacpp stand-in (fixtures/upstream)", () => {
  it("answers in the shapes, key order and statuses of the real llama-server", async () => {
    const standIn = await startScriptedUpstream({ kind: "llamacpp" });
    try {
      const chat = { model: "m", messages: [{ role: "user", content: "Say just the word hello." }], max_tokens: 30, temperature: 0, cache_prompt: false };
      const completion = { model: "m", prompt: "<|im_start|>user\nSay just the word hello.<|im_end|>\n<|im_start|>assistant\n", max_tokens: 30, temperature: 0, cache_prompt: false };
      const tools = [{ type: "function", function: { name: "f", parameters: { type: "object" } } }];
      const cases: [string, Obj][] = [
        ["/v1/chat/completions", chat],
        ["/v1/chat/completions", { ...chat, logprobs: true, top_logprobs: 2 }],
        ["/v1/chat/completions", { ...chat, stream: true }],
        ["/v1/chat/completions", { ...chat, stream: true, stream_options: { include_usage: true } }],
        ["/v1/chat/completions", { ...chat, stream: true, logprobs: true, top_logprobs: 1 }],
        ["/v1/chat/completions", { ...chat, top_logprobs: 2 }],
        ["/v1/chat/completions", { ...chat, logprobs: false, top_logprobs: 2 }],
        ["/v1/chat/completions", { ...chat, tools, stream: true, logprobs: true }],
        ["/v1/completions", completion],
        ["/v1/completions", { ...completion, logprobs: 1 }],
        ["/v1/completions", { ...completion, stream: true }],
        ["/v1/completions", { ...completion, stream: true, logprobs: 1 }],
        ["/v1/completions", { ...completion, stream: true, stream_options: { include_usage: true } }],
      ];
      for (const [pathname, body] of cases) {
        const real = await post(server.url, pathname, body);
        const scripted = await post(standIn.url, pathname, body);
        const what = `${pathname} ${JSON.stringify({ ...body, messages: undefined, prompt: undefined })}`;
        expect(scripted.status, what).toBe(real.status);
        const stream = body.stream === true && real.status === 200;
        expect(shapes(scripted.text, stream), what).toEqual(shapes(real.text, stream));
        if (real.status !== 200) expect(JSON.parse(scripted.text), what).toEqual(JSON.parse(real.text));
      }
      // What kind detection and the driver read.
      const models = async (url: string) => ((await get(`${url}/v1/models`)).data as Obj[])[0]!;
      expect(Object.keys(await models(standIn.url))).toEqual(Object.keys(await models(server.url)));
      const props = (url: string) => get(`${url}/props`);
      expect(Object.keys((await props(server.url)).default_generation_settings as Obj)).toEqual(expect.arrayContaining(Object.keys((await props(standIn.url)).default_generation_settings as Obj)));
    } finally {
      await standIn.close();
    }
  });
});

// --- the llamacpp adapter driver --------------------------------------------------------------

describe("the llamacpp adapter driver against a real llama-server", () => {
  const lora = () => get<Obj[]>(`${server.url}/lora-adapters`);
  /** Log-probs of the greedy answer under the server's current adapters, or with `scale` for adapter 0 on this request only. */
  const answer = async (scale?: number) => {
    const { ids, lps } = await askedForLogprobs(scale === undefined ? {} : { lora: [{ id: 0, scale }] });
    return { ids, lps };
  };

  it("sees the adapter llama-server started with, and that it is applied", async () => {
    const driver = new LlamaCppDriver({ url: `${server.url}/v1` });
    const entries = await lora();
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatchObject({ id: 0, path: path.join(v1, "adapter.gguf"), scale: 1 });
    // The scripted LoRA server the other driver tests use answers the same way.
    const scripted = await startLoraServer({ kind: "llamacpp", loras: [{ path: path.join(v1, "adapter.gguf") }] });
    try {
      expect(await get<Obj[]>(`${scripted.url}/lora-adapters`)).toEqual(entries);
    } finally {
      await scripted.close();
    }
    expect(await driver.loaded()).toEqual([path.join(v1, "adapter.gguf")]);
    await expect(driver.load(driver.servedName("v000001"), v1)).resolves.toBeUndefined();
    const err = await driver.load(driver.servedName("v000002"), v2).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(DriverError);
    expect((err as DriverError).permanent).toBe(true);
    expect((err as DriverError).message).toContain(`--lora ${path.join(v2, "adapter.gguf")}`);
    // The adapter really moves the answer: scale 1 (as loaded) against scale 0 on this request.
    const on = await answer();
    const off = await answer(0);
    // Identical requests give identical log-probs here, so answers that part, or a shift over the
    // tokens they share well above rounding, mean the adapter is applied (measured: the answers
    // part after 5 tokens, mean |Δ log p| 0.035 over those 5).
    const shared = on.ids.findIndex((id, i) => id !== off.ids[i]);
    const n = shared < 0 ? on.ids.length : shared;
    const shift = on.lps.slice(0, n).reduce((s, lp, i) => s + Math.abs(lp - off.lps[i]!), 0) / Math.max(1, n);
    console.log(`adapter on vs off: ${n} shared tokens, mean |Δ log p| ${shift.toFixed(3)}`);
    expect(n < on.ids.length || shift > 0.02).toBe(true);
    const base = await driver.baseModel();
    const probe = await driver.probe(driver.requestModel(driver.servedName("v000001"), base));
    expect(probe).toMatchObject({ ok: true, status: 200, error: null });
    expect(probe.text.length).toBeGreaterThan(0);
  });

  it("an adapter set to scale 0 at run time no longer counts as loaded, and is not applied", async () => {
    const driver = new LlamaCppDriver({ url: server.url });
    const off = await answer(0);
    const set = await post(server.url, "/lora-adapters", [{ id: 0, scale: 0 }]);
    expect(set.status).toBe(200);
    try {
      expect((await lora())[0]).toMatchObject({ id: 0, scale: 0 });
      expect(await driver.loaded()).toEqual([]);
      await expect(driver.load(driver.servedName("v000001"), v1)).rejects.toBeInstanceOf(DriverError);
      const now = await answer();
      expect(now.ids).toEqual(off.ids);
      now.lps.forEach((lp, i) => expect(lp).toBeCloseTo(off.lps[i]!, 4));
    } finally {
      await post(server.url, "/lora-adapters", [{ id: 0, scale: 1 }]);
    }
    expect(await driver.loaded()).toEqual([path.join(v1, "adapter.gguf")]);
  });
});
