import { describe, expect, it } from "vitest";
import { applyStrip, injectFields, injectFieldsRaw, planCapture } from "./capture.js";
import { ResponseAssembler } from "./assembler.js";

describe("injectFields", () => {
  it("adds fields without touching a byte of what the client wrote", () => {
    const body = '{ "model" : "m",\n  "temperature": 1.0, "big": 12345678901234567890 }  ';
    const out = injectFields(body, { logprobs: true, top_logprobs: 0 });
    expect(out).toBe('{ "model" : "m",\n  "temperature": 1.0, "big": 12345678901234567890 ,"logprobs":true,"top_logprobs":0}  ');
    expect(JSON.parse(out)).toMatchObject({ logprobs: true, top_logprobs: 0, model: "m" });
    expect(injectFields("{}", { a: 1 })).toBe('{"a":1}');
    expect(injectFields(" { } ", { a: 1 })).toBe(' { "a":1} ');
  });

  it("does the same on the body's bytes, multi-byte text included", () => {
    const add = { logprobs: true, top_logprobs: 0 };
    for (const body of ['{ "model" : "m",\n  "temperature": 1.0 }  ', "{}", " { } ", '{"messages":[{"role":"user","content":"héllo 🦀 }"}]}\n']) {
      expect(injectFieldsRaw(Buffer.from(body), add).toString("utf8")).toBe(injectFields(body, add));
    }
    const raw = Buffer.from('{"a":1}');
    expect(injectFieldsRaw(raw, {})).toBe(raw);
    expect(() => injectFieldsRaw(Buffer.from("[1]"), add)).toThrow(/not a JSON object/);
  });
});

describe("planCapture", () => {
  const chat = (extra: Record<string, unknown> = {}) => ({ model: "m", messages: [], ...extra });

  it("asks vLLM-dialect servers for log-probs and token ids, unless the client set them", () => {
    expect(planCapture("vllm", "chat", chat(), true).add).toEqual({ logprobs: true, top_logprobs: 0, return_token_ids: true });
    expect(planCapture("clawloop", "chat", chat({ logprobs: true, top_logprobs: 3 }), true).add).toEqual({ return_token_ids: true });
    expect(planCapture("vllm", "chat", chat({ logprobs: false, return_token_ids: false }), true).strip).toBeNull();
    expect(planCapture("vllm", "completions", { prompt: "x" }, true).add).toEqual({ logprobs: 0, return_token_ids: true });
  });

  it("leaves streaming SGLang, tools+stream llama.cpp, Ollama, OpenAI and unknown servers alone", () => {
    expect(planCapture("sglang", "chat", chat({ stream: true }), true).strip).toBeNull();
    expect(planCapture("sglang", "chat", chat(), true).add).toEqual({
      logprobs: true,
      top_logprobs: 0,
      return_prompt_token_ids: true,
      return_meta_info: true,
    });
    expect(planCapture("llamacpp", "chat", chat({ stream: true, tools: [{}] }), true).strip).toBeNull();
    expect(planCapture("llamacpp", "chat", chat({ stream: true }), true).add).toEqual({ logprobs: true, top_logprobs: 1 });
    expect(planCapture("ollama", "chat", chat(), true).strip).toBeNull();
    expect(planCapture("openai", "chat", chat(), true).strip).toBeNull();
    expect(planCapture(null, "chat", chat(), true).strip).toBeNull();
    expect(planCapture("vllm", "chat", chat(), false).strip).toBeNull();
  });
});

describe("applyStrip", () => {
  it("resets vLLM's fields to null and drops chunks that exist only because of them", () => {
    const spec = planCapture("vllm", "chat", { messages: [] }, true).strip!;
    const chunk = {
      id: "x",
      choices: [{ index: 0, delta: { content: "a" }, logprobs: { content: [] }, finish_reason: null, token_ids: [5] }],
      prompt_token_ids: [1, 2],
    };
    expect(applyStrip(chunk, spec, true)).toEqual({ changed: true, drop: false });
    expect(chunk).toEqual({ id: "x", choices: [{ index: 0, delta: { content: "a" }, logprobs: null, finish_reason: null, token_ids: null }], prompt_token_ids: null });
    const marker = { choices: [{ index: 0, delta: {}, logprobs: { content: [] }, finish_reason: null, token_ids: [9] }] };
    expect(applyStrip(marker, spec, true).drop).toBe(true);
    const finishing = { choices: [{ index: 0, delta: {}, logprobs: null, finish_reason: "stop", token_ids: [9] }] };
    expect(applyStrip(finishing, spec, true).drop).toBe(false);
  });

  it("keeps empty chunks the client would have had anyway (it asked for log-probs)", () => {
    const spec = planCapture("vllm", "chat", { messages: [], logprobs: true }, true).strip!;
    const marker = { choices: [{ index: 0, delta: {}, logprobs: { content: [] }, finish_reason: null, token_ids: [9] }] };
    expect(applyStrip(marker, spec, true)).toEqual({ changed: true, drop: false });
    expect(marker.choices[0]!.logprobs).toEqual({ content: [] });
  });

  it("removes llama.cpp's logprobs key", () => {
    const spec = planCapture("llamacpp", "chat", { messages: [] }, true).strip!;
    const chunk: Record<string, unknown> = { choices: [{ delta: { content: "a" }, finish_reason: null, index: 0, logprobs: { content: [] } }] };
    applyStrip(chunk, spec, true);
    expect(chunk).toEqual({ choices: [{ delta: { content: "a" }, finish_reason: null, index: 0 }] });
  });
});

describe("ResponseAssembler", () => {
  it("joins tool-call deltas by index (id/name from the first fragment only)", () => {
    const a = new ResponseAssembler();
    a.addChunk({ id: "c1", choices: [{ index: 0, delta: { role: "assistant", content: "" } }] });
    a.addChunk({ choices: [{ index: 0, delta: { tool_calls: [{ index: 1, id: "t2", type: "function", function: { name: "cat", arguments: "" } }] } }] });
    a.addChunk({ choices: [{ index: 0, delta: { tool_calls: [{ index: 0, id: "t1", type: "function", function: { name: "ls", arguments: '{"p' } }] } }] });
    a.addChunk({ choices: [{ index: 0, delta: { tool_calls: [{ index: 0, function: { arguments: '":1}' } }, { index: 1, function: { arguments: "{}" } }] } }] });
    a.addChunk({ choices: [{ index: 0, delta: { reasoning_content: "hm" }, finish_reason: "tool_calls" }] });
    a.addChunk({ choices: [], usage: { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 } });
    const r = a.result();
    expect(r.response).toEqual({
      id: "c1",
      content: "",
      reasoning: "hm",
      finishReason: "tool_calls",
      toolCalls: [
        { id: "t1", type: "function", function: { name: "ls", arguments: '{"p":1}' } },
        { id: "t2", type: "function", function: { name: "cat", arguments: "{}" } },
      ],
    });
    expect(r.usage).toEqual({ promptTokens: 3, completionTokens: 4, totalTokens: 7 });
  });

  it("reads ids from vLLM token_ids, llama.cpp log-prob entries, SGLang meta info and token_id: strings", () => {
    const v = new ResponseAssembler();
    v.addChunk({ prompt_token_ids: [1, 2], choices: [{ index: 0, delta: {}, logprobs: { content: [{ token: "a", logprob: -1 }] }, token_ids: [7] }] });
    expect(v.result()).toMatchObject({ promptTokenIds: [1, 2], completionTokenIds: [7], completionLogprobs: [-1] });
    const l = new ResponseAssembler();
    l.addChunk({ choices: [{ index: 0, delta: { content: "a" }, logprobs: { content: [{ id: 9, token: "a", logprob: -0.5 }] } }] });
    expect(l.result()).toMatchObject({ completionTokenIds: [9], completionLogprobs: [-0.5], promptTokenIds: null });
    const s = new ResponseAssembler();
    s.addResponse({ choices: [{ index: 0, message: { content: "a" }, prompt_token_ids: [3], meta_info: { output_token_logprobs: [[-0.25, 11, null]] } }] });
    expect(s.result()).toMatchObject({ completionTokenIds: [11], completionLogprobs: [-0.25], promptTokenIds: [3] });
    const t = new ResponseAssembler();
    t.addChunk({ choices: [{ index: 0, delta: {}, logprobs: { content: [{ token: "token_id:42", logprob: -2 }] } }] });
    expect(t.result()).toMatchObject({ completionTokenIds: [42], completionLogprobs: [-2] });
  });

  it("drops log-probs it cannot align with ids, and reports mid-stream errors", () => {
    const a = new ResponseAssembler();
    a.addChunk({ choices: [{ index: 0, delta: {}, logprobs: { content: [{ token: "a", logprob: -1 }, { token: "b", logprob: -1 }] }, token_ids: [1] }] });
    expect(a.result()).toMatchObject({ completionTokenIds: [1], completionLogprobs: null });
    a.addChunk({ error: { message: "boom", type: "x" } });
    expect(a.result().error).toBe("boom");
  });
});
