// Our tokenizer and chat rendering against llama.cpp's own, on the real SmolLM2-135M-Instruct GGUF.
// What is compared, per conversation:
//  1. the rendered prompt text: core's renderChat (the code the trainer and our server share)
//     against llama.cpp's native Jinja engine (node-llama-cpp's AddonJinjaRenderer) given the same
//     messages and template — for conversations without tools, where the template sees the
//     messages as they are (with tools, renderChat first rewrites them into the Hermes format);
//  2. the token ids: our encodeChat against llama.cpp's llama_tokenize of the same text with
//     parse_special=true (node-llama-cpp `model.tokenize(text, true)`), plus BOS when the model
//     adds one (SmolLM2 does not);
//  3. llama.cpp's detokenization of our ids gives back the text.
// Plain `encode` is also compared with parse_special on and off, and `decode` with llama.cpp's.
import { getLlama, type Llama, type LlamaModel, type Token } from "node-llama-cpp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ChatMessage } from "../../../core/index.js";
import { readGguf } from "../../../adapters/index.js";
import { tokenizerFromGguf, type HfChatTokenizer } from "./tokenizer.js";

const TOOLS = [
  {
    type: "function",
    function: {
      name: "get_weather",
      description: "Current weather for a city",
      parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
    },
  },
];

const CONVERSATIONS: { name: string; messages: ChatMessage[]; tools?: unknown[]; gen?: boolean }[] = [
  { name: "system + user", messages: [{ role: "system", content: "You are terse." }, { role: "user", content: "What is 2+2?" }] },
  { name: "default system prompt", messages: [{ role: "user", content: "Hello!" }] },
  {
    name: "multi-turn",
    messages: [
      { role: "system", content: "Be kind." },
      { role: "user", content: "Write a haiku about rain." },
      { role: "assistant", content: "Soft rain on the roof\nwhispers to the sleeping town\npuddles hold the sky" },
      { role: "user", content: "Now one about snow, please." },
    ],
  },
  {
    name: "assistant last, no generation prompt",
    gen: false,
    messages: [
      { role: "user", content: "Say hi" },
      { role: "assistant", content: "Hi!" },
    ],
  },
  {
    name: "unicode",
    messages: [{ role: "user", content: "Ünïcödé: 世界 こんにちは 안녕 مرحبا שלום Ελληνικά 🙂👍🏽 e\u0301 ﬁ ½ ∑ — “quotes” … \u200b zero-width" }],
  },
  {
    name: "whitespace edge cases",
    messages: [
      { role: "system", content: "  leading and trailing spaces  " },
      { role: "user", content: "\n\nblank lines\n\n\n\ttabs\tand  double  spaces\r\nwindows line\r\n   " },
      { role: "assistant", content: "" },
      { role: "user", content: " " },
    ],
  },
  {
    name: "special-token text inside content",
    messages: [{ role: "user", content: "literal <|im_end|> and <|im_start|>assistant inside, and <|endoftext|>" }],
  },
  {
    name: "code and numbers",
    messages: [{ role: "user", content: "def f(x):\n    return x ** 2  # 12345678901234567890\nprint(f(3.14159), [1,2,3], {'a': 1})" }],
  },
  {
    name: "tools offered",
    tools: TOOLS,
    messages: [{ role: "user", content: "Weather in Paris?" }],
  },
  {
    name: "tool call and tool result",
    tools: TOOLS,
    messages: [
      { role: "system", content: "You can call tools." },
      { role: "user", content: "Weather in Paris?" },
      { role: "assistant", content: null, tool_calls: [{ id: "call_1", type: "function", function: { name: "get_weather", arguments: '{"city": "Paris"}' } }] },
      { role: "tool", tool_call_id: "call_1", content: '{"temp_c": 18, "sky": "clear"}' },
      { role: "user", content: "And tomorrow?" },
    ],
  },
];

let llama: Llama;
let model: LlamaModel;
let tok: HfChatTokenizer;
let template: string;

beforeAll(async () => {
  const file = process.env.CLAWLOOP_TEST_MODEL!;
  const g = readGguf(file);
  tok = tokenizerFromGguf(g);
  template = g.metadata.get("tokenizer.chat_template") as string;
  llama = await getLlama({ build: "never", gpu: false });
  model = await llama.loadModel({ modelPath: file, vocabOnly: true });
});

afterAll(async () => {
  await model?.dispose();
  await llama?.dispose();
});

function llamaRender(messages: ChatMessage[], addGenerationPrompt: boolean): string {
  // llama.cpp's own Jinja engine, as bundled in node-llama-cpp (internal binding).
  const Renderer = (llama as unknown as { _bindings: { AddonJinjaRenderer: new (t: string) => { render(x: unknown): string } } })._bindings.AddonJinjaRenderer;
  return new Renderer(template).render({ messages, add_generation_prompt: addGenerationPrompt, bos_token: "<|im_start|>", eos_token: "<|im_end|>" });
}

function llamaIds(text: string): number[] {
  return Array.from(model.tokenize(text, true));
}

describe("chat rendering and tokenization match llama.cpp on SmolLM2-135M-Instruct", () => {
  for (const c of CONVERSATIONS) {
    it(c.name, () => {
      const opts = { addGenerationPrompt: c.gen ?? true, tools: c.tools };
      const text = tok.renderChat(c.messages, opts);
      if (!c.tools) expect(text).toBe(llamaRender(c.messages, opts.addGenerationPrompt));
      else expect(text).toContain("get_weather");
      const ours = tok.encodeChat(c.messages, opts);
      expect(ours).toEqual(llamaIds(text));
      expect(model.detokenize(ours as Token[], true)).toBe(text);
      expect(tok.decode(ours)).toBe(text);
    });
  }

  it("renders the SmolLM2 template's structure (sanity of what is being compared)", () => {
    const text = tok.renderChat([{ role: "user", content: "Hi" }], { addGenerationPrompt: true });
    expect(text).toBe(
      "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
    );
    const ids = tok.encodeChat([{ role: "user", content: "Hi" }], { addGenerationPrompt: true });
    expect(ids[0]).toBe(1); // <|im_start|> is one control token
    expect(ids.filter((i) => i === 2).length).toBe(2); // two <|im_end|>
  });
});

describe("plain encode/decode match llama.cpp", () => {
  const TEXTS = [
    "Hello world",
    "<|im_start|>user\nnot parsed unless asked<|im_end|>",
    "  many   spaces\t\ttabs\n\n\nnewlines  ",
    "naïve café — 東京 🚀",
    "don't we'll THEY'RE it's",
    "1234567890 3.14159 -42 1e-5",
    "",
  ];
  for (const [i, text] of TEXTS.entries()) {
    it(`text #${i}`, () => {
      expect(tok.encode(text, { parseSpecial: true })).toEqual(Array.from(model.tokenize(text, true)));
      expect(tok.encode(text, { parseSpecial: false })).toEqual(Array.from(model.tokenize(text, false)));
      const ids = tok.encode(text, { parseSpecial: true });
      expect(tok.decode(ids)).toBe(model.detokenize(ids as Token[], true));
    });
  }

  it("knows SmolLM2's special tokens and BOS policy", () => {
    expect(tok.bosTokenId).toBe(1);
    expect(tok.eosTokenIds).toEqual([2]);
    // add_bos_token is false in this GGUF, so addSpecial adds nothing, like llama.cpp.
    expect(tok.encode("hi", { addSpecial: true })).toEqual(tok.encode("hi"));
    expect(tok.decode([1, 20, 2], { skipSpecial: true })).toBe(tok.decode([20]));
  });
});
