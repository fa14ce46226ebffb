// The embedded engine against the real SmolLM2-135M-Instruct GGUF: wire shapes (vLLM's), SSE
// framing byte by byte, token ids and raw log-probs checked against an independent computation,
// prompt log-probs for scoring, tools, concurrency, cancellation, and bad input.
import type { Token } from "node-llama-cpp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { renderChat, type ChatMessage, type OpenAIErrorBody } from "../core/index.js";
import { referenceLogprobs } from "../test/support/llama-reference.js";
import { startServer, type RunningServer } from "./index.js";

const MODEL = process.env.CLAWLOOP_TEST_MODEL!;
const PARALLEL = 3;
let server: RunningServer;

beforeAll(async () => {
  // One thread: vitest runs two test files at once on two cores, and llama.cpp threads spin while
  // they wait for each other, so two files with two threads each would crawl.
  server = await startServer({ model: MODEL, port: 0, contextSize: 1024, parallel: PARALLEL, servedModelName: "smol", threads: 1 });
});
afterAll(async () => {
  await server?.close();
});

async function post(path: string, body: unknown, init: RequestInit = {}): Promise<Response> {
  return fetch(server.url + path, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: typeof body === "string" ? body : JSON.stringify(body),
    ...init,
  });
}

async function postJson(path: string, body: unknown): Promise<{ status: number; json: any }> {
  const res = await post(path, body);
  return { status: res.status, json: await res.json() };
}

/** Parses an SSE body, insisting on OpenAI's exact framing. */
function parseSse(raw: string): { events: any[]; done: boolean } {
  expect(raw.endsWith("data: [DONE]\n\n")).toBe(true);
  const blocks = raw.split("\n\n");
  expect(blocks.pop()).toBe("");
  const events: any[] = [];
  let done = false;
  for (const block of blocks) {
    expect(block.startsWith("data: ")).toBe(true);
    expect(block.includes("\n")).toBe(false);
    const payload = block.slice("data: ".length);
    if (payload === "[DONE]") {
      done = true;
      continue;
    }
    expect(done).toBe(false);
    events.push(JSON.parse(payload));
  }
  return { events, done };
}

const messages: ChatMessage[] = [
  { role: "system", content: "You are a concise assistant." },
  { role: "user", content: "Name three colors." },
];

function renderedIds(msgs: ChatMessage[], tools: unknown[] | null = null): Token[] {
  const e = server.engine;
  const text = renderChat(e.chatTemplate, msgs, { addGenerationPrompt: true, tools, bosToken: e.bosToken, eosToken: e.eosToken });
  return e.model.tokenize(text, true);
}

describe("chat completions", () => {
  it("answers without streaming, with prompt ids, token ids and raw log-probs that match an independent computation", async () => {
    const { status, json } = await postJson("/v1/chat/completions", {
      model: "smol",
      messages,
      temperature: 0,
      max_tokens: 12,
      logprobs: true,
      top_logprobs: 3,
      return_token_ids: true,
    });
    expect(status).toBe(200);
    expect(json.object).toBe("chat.completion");
    expect(json.model).toBe("smol");
    const choice = json.choices[0];
    expect(choice.message.role).toBe("assistant");
    expect(["stop", "length"]).toContain(choice.finish_reason);
    // Prompt ids are the model's template rendered and tokenized by llama.cpp.
    expect(json.prompt_token_ids).toEqual(renderedIds(messages));
    // The wire's token ids are the model's own: typed as such to hand them back to llama.cpp.
    const ids: Token[] = choice.token_ids;
    expect(json.usage).toEqual({ prompt_tokens: json.prompt_token_ids.length, completion_tokens: ids.length, total_tokens: json.prompt_token_ids.length + ids.length });
    // The text is exactly the sampled ids, and llama.cpp tokenizes that text back to the same ids.
    const e = server.engine;
    const textIds = ids.filter((t) => !e.isEog(t));
    expect(e.model.detokenize(textIds)).toBe(choice.message.content);
    expect(e.model.tokenize(choice.message.content, false)).toEqual(textIds);
    // Log-probs: same tokens, values equal to the full-vocabulary log-softmax computed independently.
    const lp = choice.logprobs.content;
    expect(lp).toHaveLength(ids.length);
    const ref = await referenceLogprobs(e.model, [...json.prompt_token_ids, ...ids], { from: json.prompt_token_ids.length, top: 3 });
    for (let i = 0; i < ids.length; i++) {
      expect(lp[i].token).toBe(e.tokenText(ids[i]!));
      expect(lp[i].bytes).toEqual(Array.from(Buffer.from(lp[i].token, "utf8")));
      expect(Math.abs(lp[i].logprob - ref[i]!.logprob)).toBeLessThan(2e-3);
      // Greedy: the chosen token is the arg-max (up to numerical ties).
      expect(ref[i]!.logprob).toBeGreaterThan(ref[i]!.top[0]!.logprob - 2e-3);
      expect(lp[i].top_logprobs).toHaveLength(3);
      lp[i].top_logprobs.forEach((alt: any, k: number) => expect(Math.abs(alt.logprob - ref[i]!.top[k]!.logprob)).toBeLessThan(2e-3));
    }
  });

  it("streams with OpenAI's exact SSE framing: role first, deltas, finish, usage, [DONE]", async () => {
    const res = await post("/v1/chat/completions", {
      messages,
      max_tokens: 10,
      temperature: 0.7,
      seed: 7,
      stream: true,
      stream_options: { include_usage: true },
      logprobs: true,
      return_token_ids: true,
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/event-stream");
    expect(res.headers.get("x-clawloop-engine")).toMatch(/^\d+\.\d+\.\d+/);
    const { events } = parseSse(await res.text());
    const id = events[0].id;
    expect(events.every((e) => e.id === id && e.object === "chat.completion.chunk" && e.model === "smol")).toBe(true);
    expect(events[0].choices[0].delta).toEqual({ role: "assistant", content: "" });
    expect(events[0].prompt_token_ids).toEqual(renderedIds(messages));
    expect(events.slice(1).every((e) => e.prompt_token_ids === undefined)).toBe(true);
    const usage = events[events.length - 1];
    expect(usage.choices).toEqual([]);
    const body = events.slice(0, -1);
    expect(body.every((e) => e.usage === null)).toBe(true);
    const finishes = body.filter((e) => e.choices[0].finish_reason !== null);
    expect(finishes).toHaveLength(1);
    expect(finishes[0]).toBe(body[body.length - 1]);
    const ids = body.flatMap((e) => e.choices[0].token_ids ?? []);
    const text = body.map((e) => e.choices[0].delta.content ?? "").join("");
    const lps = body.flatMap((e) => e.choices[0].logprobs?.content ?? []);
    expect(lps).toHaveLength(ids.length);
    expect(usage.usage).toEqual({ prompt_tokens: events[0].prompt_token_ids.length, completion_tokens: ids.length, total_tokens: events[0].prompt_token_ids.length + ids.length });
    expect(server.engine.model.detokenize(ids.filter((t: number) => !server.engine.isEog(t)))).toBe(text);
    // Sampled at T=0.7, reported raw (T=1): still the independent full-vocabulary values.
    const ref = await referenceLogprobs(server.engine.model, [...events[0].prompt_token_ids, ...ids], { from: events[0].prompt_token_ids.length });
    lps.forEach((lp: any, i: number) => expect(Math.abs(lp.logprob - ref[i]!.logprob)).toBeLessThan(2e-3));
  });

  it("is reproducible with a seed and honours stop strings and max_tokens", async () => {
    const body = { messages: [{ role: "user", content: "Count from 1 to 20, separated by commas." }], temperature: 1, seed: 42, max_tokens: 16 };
    const a = (await postJson("/v1/chat/completions", body)).json.choices[0];
    const b = (await postJson("/v1/chat/completions", body)).json.choices[0];
    expect(b.message.content).toBe(a.message.content);
    const text: string = a.message.content;
    // Stop on a piece of what the model says: the output ends right before it.
    const stop = text.slice(Math.floor(text.length / 2), Math.floor(text.length / 2) + 2);
    const stopped = (await postJson("/v1/chat/completions", { ...body, stop: [stop] })).json.choices[0];
    expect(stopped.finish_reason).toBe("stop");
    expect(stopped.stop_reason).toBe(stop);
    expect(text.startsWith(stopped.message.content)).toBe(true);
    expect(stopped.message.content.includes(stop)).toBe(false);
    const short = (await postJson("/v1/chat/completions", { ...body, max_tokens: 3, return_token_ids: true })).json.choices[0];
    expect(short.token_ids).toHaveLength(3);
    expect(short.finish_reason).toBe("length");
  });
});

describe("tools", () => {
  const weather = {
    type: "function",
    function: {
      name: "get_weather",
      description: "Current weather in a city",
      parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
    },
  };

  it("renders a conversation with tool calls and tool results, and tokenizes it as the template says", async () => {
    const history: ChatMessage[] = [
      { role: "user", content: "Weather in Paris?" },
      { role: "assistant", content: null, tool_calls: [{ id: "call_1", type: "function", function: { name: "get_weather", arguments: '{"city":"Paris"}' } }] },
      { role: "tool", tool_call_id: "call_1", content: '{"temp_c": 21}' },
    ];
    const { status, json } = await postJson("/v1/chat/completions", { messages: history, tools: [weather], max_tokens: 4, return_token_ids: true });
    expect(status).toBe(200);
    expect(json.prompt_token_ids).toEqual(renderedIds(history, [weather]));
    const text = server.engine.model.detokenize(json.prompt_token_ids, true);
    expect(text).toContain('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>');
    expect(text).toContain('<tool_response>\n{"temp_c": 21}\n</tool_response>');
  });

  it("returns a forced tool call as OpenAI tool_calls with finish_reason tool_calls", async () => {
    const { json } = await postJson("/v1/chat/completions", {
      messages: [{ role: "user", content: "What is the weather in Paris?" }],
      tools: [weather],
      tool_choice: { type: "function", function: { name: "get_weather" } },
      temperature: 0,
      max_tokens: 40,
    });
    const choice = json.choices[0];
    expect(choice.finish_reason).toBe("tool_calls");
    expect(choice.message.content).toBeNull();
    expect(choice.message.tool_calls).toHaveLength(1);
    const call = choice.message.tool_calls[0];
    expect(call.type).toBe("function");
    expect(call.id).toMatch(/^call_/);
    expect(call.function.name).toBe("get_weather");
    expect(typeof JSON.parse(call.function.arguments).city).toBe("string");
  });

  it("streams a forced tool call as tool-call deltas", async () => {
    const res = await post("/v1/chat/completions", {
      messages: [{ role: "user", content: "Weather in Oslo?" }],
      tools: [weather],
      tool_choice: "required",
      temperature: 0,
      max_tokens: 40,
      stream: true,
    });
    const { events } = parseSse(await res.text());
    const deltas = events.flatMap((e) => e.choices[0]?.delta?.tool_calls ?? []);
    expect(deltas.length).toBeGreaterThan(0);
    expect(deltas[0]).toMatchObject({ index: 0, type: "function", function: { name: "get_weather" } });
    expect(deltas[0].id).toMatch(/^call_/);
    const args = deltas.filter((d: any) => d.index === 0).map((d: any) => d.function?.arguments ?? "").join("");
    expect(typeof JSON.parse(args).city).toBe("string");
    expect(events[events.length - 1].choices[0].finish_reason).toBe("tool_calls");
    expect(events.every((e) => !e.choices[0]?.delta?.content)).toBe(true);
  });
});

describe("response_format", () => {
  it("constrains the output to a JSON object, or to a JSON schema", async () => {
    const obj = await postJson("/v1/chat/completions", {
      messages: [{ role: "user", content: "Describe a cat as JSON." }],
      response_format: { type: "json_object" },
      temperature: 0,
      max_tokens: 60,
    });
    expect(obj.json.choices[0].finish_reason).toBe("stop");
    expect(typeof JSON.parse(obj.json.choices[0].message.content)).toBe("object");
    const schema = { type: "object", properties: { color: { type: "string" }, legs: { type: "integer" } }, required: ["color", "legs"] };
    const fit = await postJson("/v1/completions", {
      prompt: "A cat, as JSON: ",
      response_format: { type: "json_schema", json_schema: { name: "cat", schema } },
      temperature: 0,
      max_tokens: 40,
    });
    const value = JSON.parse(fit.json.choices[0].text);
    expect(typeof value.color).toBe("string");
    expect(Number.isInteger(value.legs)).toBe(true);
  });
});

describe("completions and scoring", () => {
  it("scores a given continuation with prompt_logprobs, echo and max_tokens 0 (the teacher pass)", async () => {
    const e = server.engine;
    const prompt = renderedIds([{ role: "user", content: "What is 2+2?" }]);
    const continuation = e.model.tokenize("The answer is 4.", false);
    const all = [...prompt, ...continuation];
    const { status, json } = await postJson("/v1/completions", { prompt: all, max_tokens: 0, echo: true, prompt_logprobs: 2, logprobs: 1, return_token_ids: true });
    expect(status).toBe(200);
    const choice = json.choices[0];
    expect(choice.text).toBe(e.model.detokenize(all, true));
    expect(choice.prompt_token_ids).toEqual(all);
    expect(choice.token_ids).toEqual([]);
    expect(json.usage).toEqual({ prompt_tokens: all.length, completion_tokens: 0, total_tokens: all.length });
    const pl = choice.prompt_logprobs;
    expect(pl).toHaveLength(all.length);
    expect(pl[0]).toBeNull();
    const ref = await referenceLogprobs(e.model, all, { top: 2 });
    for (let i = 1; i < all.length; i++) {
      const entry = pl[i][String(all[i])];
      expect(Math.abs(entry.logprob - ref[i - 1]!.logprob)).toBeLessThan(1e-3);
      // Ranks agree up to logits closer than the two evaluations' rounding differences.
      expect(entry.rank).toBeGreaterThanOrEqual(ref[i - 1]!.rankBounds[0]);
      expect(entry.rank).toBeLessThanOrEqual(ref[i - 1]!.rankBounds[1]);
      expect(entry.decoded_token).toBe(e.tokenText(all[i]!));
      // The k=2 alternatives are the true top two.
      for (const alt of ref[i - 1]!.top) expect(Math.abs(pl[i][String(alt.token)]?.logprob - alt.logprob)).toBeLessThan(1e-3);
    }
    // echo + logprobs: the legacy shape covers the prompt, first entry null.
    expect(choice.logprobs.tokens).toHaveLength(all.length);
    expect(choice.logprobs.token_logprobs[0]).toBeNull();
    expect(Math.abs(choice.logprobs.token_logprobs[1] - ref[0]!.logprob)).toBeLessThan(1e-3);
    expect(choice.logprobs.text_offset[1]).toBe(e.tokenText(all[0]!).length);
  });

  it("completes a string prompt, streamed and not, with legacy log-probs", async () => {
    const plain = await postJson("/v1/completions", { prompt: "The capital of France is", max_tokens: 5, temperature: 0, logprobs: 2 });
    expect(plain.status).toBe(200);
    const c = plain.json.choices[0];
    expect(plain.json.object).toBe("text_completion");
    expect(c.logprobs.tokens).toHaveLength(5);
    expect(c.logprobs.tokens.join("")).toBe(c.text);
    expect(Object.keys(c.logprobs.top_logprobs[0]).length).toBeGreaterThanOrEqual(2);
    const res = await post("/v1/completions", { prompt: "The capital of France is", max_tokens: 5, temperature: 0, stream: true, stream_options: { include_usage: true } });
    const { events } = parseSse(await res.text());
    expect(events[events.length - 1].usage.completion_tokens).toBe(5);
    expect(events.slice(0, -1).every((e) => e.object === "text_completion")).toBe(true);
    expect(events.slice(0, -1).filter((e) => e.choices[0].finish_reason === "length")).toHaveLength(1);
  });

  it("tokenizes and detokenizes like vLLM", async () => {
    const chat = await postJson("/tokenize", { messages, add_generation_prompt: true, return_token_strs: true });
    expect(chat.json.tokens).toEqual(renderedIds(messages));
    expect(chat.json.count).toBe(chat.json.tokens.length);
    expect(chat.json.max_model_len).toBe(1024);
    expect(chat.json.token_strs.join("")).toBe(server.engine.model.detokenize(chat.json.tokens, true));
    const de = await postJson("/detokenize", { tokens: chat.json.tokens });
    expect(de.json.prompt).toBe(server.engine.model.detokenize(chat.json.tokens, true));
  });
});

describe("serving several requests", () => {
  it("serves more concurrent requests than sequences, none failing", async () => {
    const n = PARALLEL + 3;
    const results = await Promise.all(
      Array.from({ length: n }, (_, i) =>
        postJson("/v1/chat/completions", { messages: [{ role: "user", content: `Say a word about the number ${i}.` }], max_tokens: 6, seed: i, return_token_ids: true }),
      ),
    );
    for (const r of results) {
      expect(r.status).toBe(200);
      expect(r.json.choices[0].token_ids.length).toBeGreaterThan(0);
    }
    expect(server.engine.slot()!.idle).toBe(PARALLEL);
  });

  it("returns n choices", async () => {
    const { json } = await postJson("/v1/chat/completions", { messages, n: 2, max_tokens: 4, seed: 3, return_token_ids: true });
    expect(json.choices.map((c: any) => c.index)).toEqual([0, 1]);
    expect(json.usage.completion_tokens).toBe(json.choices[0].token_ids.length + json.choices[1].token_ids.length);
  });

  it("stops generating when the client goes away, and frees the sequence", async () => {
    const before = { ...server.engine.stats };
    const controller = new AbortController();
    const res = await post("/v1/chat/completions", { messages, max_tokens: 400, ignore_eos: true, stream: true }, { signal: controller.signal });
    const reader = res.body!.getReader();
    let got = "";
    while (!got.includes("\n\n") || got.split("\n\n").length < 4) got += new TextDecoder().decode((await reader.read()).value);
    controller.abort();
    for (let i = 0; i < 400 && server.engine.slot()!.idle < PARALLEL; i++) await new Promise((r) => setTimeout(r, 25));
    expect(server.engine.slot()!.idle).toBe(PARALLEL);
    expect(server.engine.stats.aborted).toBe(before.aborted + 1);
    expect(server.engine.stats.generatedTokens - before.generatedTokens).toBeLessThan(400);
    // The server is fine afterwards.
    expect((await postJson("/v1/chat/completions", { messages, max_tokens: 2 })).status).toBe(200);
  });
});

describe("identity and bad input", () => {
  it("identifies itself and lists the model", async () => {
    const v = await (await fetch(server.url + "/version")).json();
    expect(v).toMatchObject({ engine: "clawloop", model: "smol" });
    const models = (await (await fetch(server.url + "/v1/models")).json()) as { object: string; data: Record<string, unknown>[] };
    expect(models.object).toBe("list");
    expect(models.data[0]).toMatchObject({ id: "smol", object: "model", owned_by: "clawloop", parent: null, max_model_len: 1024 });
    expect((await fetch(server.url + "/health")).status).toBe(200);
  });

  it.each([
    ["malformed JSON", "/v1/chat/completions", "{not json", 400, /not valid JSON/],
    ["an empty body", "/v1/chat/completions", "", 400, /empty/],
    ["no messages", "/v1/chat/completions", { model: "smol" }, 400, /messages/],
    ["empty messages", "/v1/chat/completions", { messages: [] }, 400, /at least one/],
    ["an unknown model", "/v1/chat/completions", { model: "nope", messages }, 404, /does not exist/],
    ["too many top_logprobs", "/v1/chat/completions", { messages, logprobs: true, top_logprobs: 50 }, 400, /top_logprobs/],
    ["stream_options without stream", "/v1/chat/completions", { messages, stream_options: { include_usage: true } }, 400, /stream/],
    ["prompt_logprobs with stream", "/v1/completions", { prompt: "x", stream: true, prompt_logprobs: 1 }, 400, /prompt_logprobs/],
    ["a token id out of vocabulary", "/v1/completions", { prompt: [1, 99999999] }, 400, /vocabulary/],
    ["a prompt longer than the context", "/v1/completions", { prompt: Array.from({ length: 1100 }, () => 28) }, 400, /maximum context length/],
    ["n above the limit", "/v1/chat/completions", { messages, n: 100 }, 400, /n/],
    ["a tool_choice naming no offered tool", "/v1/chat/completions", { messages, tools: [{ type: "function", function: { name: "a" } }], tool_choice: { type: "function", function: { name: "b" } } }, 400, /tool_choice/],
    ["a json_schema format without a schema", "/v1/chat/completions", { messages, response_format: { type: "json_schema", json_schema: { name: "x" } } }, 400, /schema/],
    ["an unknown route", "/v1/nothing", {}, 404, /no route/],
  ])("rejects %s with a clear error", async (_what, path, body, status, message) => {
    const res = await post(path, body);
    expect(res.status).toBe(status);
    const json = (await res.json()) as OpenAIErrorBody;
    expect(json.error.message).toMatch(message);
    expect(json.error.code).toBe(status);
    expect(typeof json.error.type).toBe("string");
  });

  it("rejects the wrong method", async () => {
    const res = await fetch(server.url + "/v1/chat/completions");
    expect(res.status).toBe(405);
  });
});
