import { describe, expect, it } from "vitest";
import {
  CHATML_TEMPLATE,
  ChatTemplateError,
  ToolCallStreamParser,
  parseAssistantText,
  parseToolCalls,
  pythonJson,
  renderChat,
  templateHandlesTools,
  toolSystemPrompt,
  type AssistantStreamEvent,
} from "./chat-template.js";
import type { ChatMessage } from "./types.js";

// SmolLM2-135M-Instruct's template, verbatim from its GGUF (no tool support).
const SMOL =
  "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

// A template that renders tools itself, in the shape of Qwen2.5's (shortened, same logic for tools).
const QWENISH = [
  "{% if tools %}<|im_start|>system\n{% if messages[0]['role'] == 'system' %}{{ messages[0]['content'] }}{% else %}You are Qwen.{% endif %}",
  "{{ '\\n\\n# Tools\\n<tools>' }}{% for tool in tools %}{{ '\\n' + (tool | tojson) }}{% endfor %}{{ '\\n</tools><|im_end|>\\n' }}",
  "{% elif messages[0]['role'] == 'system' %}<|im_start|>system\n{{ messages[0]['content'] }}<|im_end|>\n{% endif %}",
  "{% for message in messages %}",
  "{% if message.role == 'user' or (message.role == 'system' and not loop.first) %}{{ '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}",
  "{% elif message.role == 'assistant' %}{{ '<|im_start|>assistant' }}{% if message.content %}{{ '\\n' + message.content }}{% endif %}",
  "{% for tc in message.tool_calls %}{{ '\\n<tool_call>\\n{\"name\": \"' + tc.function.name + '\", \"arguments\": ' + (tc.function.arguments | tojson) + '}\\n</tool_call>' }}{% endfor %}{{ '<|im_end|>\\n' }}",
  "{% elif message.role == 'tool' %}{{ '<|im_start|>user\\n<tool_response>\\n' + message.content + '\\n</tool_response><|im_end|>\\n' }}",
  "{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}",
].join("");

const weatherTool = {
  type: "function",
  function: {
    name: "get_weather",
    description: "Current weather in a city",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
  },
};

const toolHistory: ChatMessage[] = [
  { role: "user", content: "Weather in Paris?" },
  {
    role: "assistant",
    content: null,
    tool_calls: [{ id: "call_1", type: "function", function: { name: "get_weather", arguments: '{"city":"Paris"}' } }],
  },
  { role: "tool", tool_call_id: "call_1", content: '{"temp": 21}' },
  { role: "tool", tool_call_id: "call_2", content: "sunny" },
];

describe("renderChat", () => {
  it("renders SmolLM2's template exactly as the model expects", () => {
    const text = renderChat(SMOL, [{ role: "user", content: "Hi" }], { addGenerationPrompt: true });
    expect(text).toBe(
      "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n" +
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
    );
    const noPrompt = renderChat(SMOL, [{ role: "system", content: "S" }, { role: "user", content: [{ type: "text", text: "a" }, { type: "text", text: "b" }] }], {
      addGenerationPrompt: false,
    });
    expect(noPrompt).toBe("<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nab<|im_end|>\n");
  });

  it("falls back to ChatML when the model has no template, and maps developer to system", () => {
    const text = renderChat(null, [{ role: "developer", content: "rules" }, { role: "user", content: "x" }], { addGenerationPrompt: true });
    expect(text).toBe("<|im_start|>system\nrules<|im_end|>\n<|im_start|>user\nx<|im_end|>\n<|im_start|>assistant\n");
    expect(renderChat(CHATML_TEMPLATE, [{ role: "user", content: "x" }], { addGenerationPrompt: false })).toBe("<|im_start|>user\nx<|im_end|>\n");
  });

  it("injects tools into a template without tool support, in the Hermes format", () => {
    expect(templateHandlesTools(SMOL)).toBe(false);
    const text = renderChat(SMOL, [{ role: "system", content: "Be brief." }, ...toolHistory], { addGenerationPrompt: true, tools: [weatherTool] });
    expect(text).toBe(
      "<|im_start|>system\nBe brief.\n\n" +
        toolSystemPrompt([weatherTool]) +
        "<|im_end|>\n" +
        "<|im_start|>user\nWeather in Paris?<|im_end|>\n" +
        '<|im_start|>assistant\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call><|im_end|>\n' +
        '<|im_start|>user\n<tool_response>\n{"temp": 21}\n</tool_response>\n<tool_response>\nsunny\n</tool_response><|im_end|>\n' +
        "<|im_start|>assistant\n",
    );
    expect(toolSystemPrompt([weatherTool])).toContain(
      '{"type": "function", "function": {"name": "get_weather", "description": "Current weather in a city", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}',
    );
  });

  it("adds a system message for the tools when there is none, and renders tool history without tools", () => {
    const withTools = renderChat(SMOL, [{ role: "user", content: "hi" }], { addGenerationPrompt: true, tools: [weatherTool] });
    expect(withTools.startsWith("<|im_start|>system\n# Tools\n")).toBe(true);
    expect(withTools).not.toContain("SmolLM, trained by");
    const historyOnly = renderChat(SMOL, toolHistory, { addGenerationPrompt: false });
    expect(historyOnly).toContain("<tool_call>\n{\"name\": \"get_weather\"");
    expect(historyOnly).toContain("<|im_start|>user\n<tool_response>");
  });

  it("lets a template that knows tools render them, with arguments as a mapping", () => {
    expect(templateHandlesTools(QWENISH)).toBe(true);
    const text = renderChat(QWENISH, toolHistory, { addGenerationPrompt: true, tools: [weatherTool] });
    expect(text).toContain("You are Qwen.\n\n# Tools\n<tools>\n{\"type\": \"function\"");
    expect(text).toContain('<|im_start|>assistant\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call><|im_end|>');
    expect(text).toContain("<|im_start|>user\n<tool_response>\nsunny\n</tool_response><|im_end|>");
    expect(text.endsWith("<|im_start|>assistant\n")).toBe(true);
  });

  it("continues a final assistant message and passes template kwargs", () => {
    const msgs: ChatMessage[] = [{ role: "user", content: "Count" }, { role: "assistant", content: "1, 2," }];
    expect(renderChat(SMOL, msgs, { addGenerationPrompt: false, continueFinalMessage: true }).endsWith("<|im_start|>assistant\n1, 2,")).toBe(true);
    expect(() => renderChat(SMOL, msgs, { addGenerationPrompt: true, continueFinalMessage: true })).toThrow(ChatTemplateError);
    const t = "{{ bos_token }}{% if enable_thinking %}think{% else %}plain{% endif %}{{ eos_token }}";
    expect(renderChat(t, msgs, { addGenerationPrompt: false, bosToken: "<s>", eosToken: "</s>", kwargs: { enable_thinking: true } })).toBe("<s>think</s>");
  });

  it("reports a broken template or raise_exception as a ChatTemplateError", () => {
    expect(() => renderChat("{% for %}", [], { addGenerationPrompt: true })).toThrow(ChatTemplateError);
    expect(() => renderChat("{{ raise_exception('roles must alternate') }}", [], { addGenerationPrompt: true })).toThrow(/roles must alternate/);
  });

  it("writes JSON like Python's json.dumps", () => {
    expect(pythonJson({ a: [1, "x", null, true], b: { "c d": 1.5 } })).toBe('{"a": [1, "x", null, true], "b": {"c d": 1.5}}');
  });
});

describe("tool-call parsing", () => {
  let n = 0;
  const ids = () => `call_${++n}`;

  it("parses Hermes blocks with content before them", () => {
    n = 0;
    const out = parseToolCalls('Let me check.\n\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n<tool_call>\n{"name": "b", "parameters": {}}\n</tool_call>', ids);
    expect(out.content).toBe("Let me check.");
    expect(out.toolCalls).toEqual([
      { id: "call_1", type: "function", function: { name: "get_weather", arguments: '{"city":"Paris"}' } },
      { id: "call_2", type: "function", function: { name: "b", arguments: "{}" } },
    ]);
  });

  it("keeps malformed calls as content and accepts an unterminated final call", () => {
    expect(parseToolCalls("<tool_call>\nnot json\n</tool_call>").toolCalls).toEqual([]);
    expect(parseToolCalls("<tool_call>\nnot json\n</tool_call>").content).toBe("<tool_call>\nnot json\n</tool_call>");
    const open = parseToolCalls('<tool_call>\n{"name": "x", "arguments": {"a": 1}}');
    expect(open.content).toBeNull();
    expect(open.toolCalls[0]?.function).toEqual({ name: "x", arguments: '{"a":1}' });
    expect(parseToolCalls("plain answer").toolCalls).toEqual([]);
  });

  it("splits a leading <think> block off as reasoning", () => {
    const out = parseAssistantText("<think>\nhmm\n</think>\n\nAnswer", { tools: false, reasoning: true });
    expect(out).toEqual({ content: "Answer", reasoning: "\nhmm\n", toolCalls: [] });
    expect(parseAssistantText("<think>x</think>y", { tools: false }).content).toBe("<think>x</think>y");
  });

  it("streams to the same result wherever the text is cut, holding back partial tags", () => {
    const text = 'Sure.\n<tool_call>\n{"name": "f", "arguments": {"q": "<tool"}}\n</tool_call>\n<tool_call>\n{"name": "g", "arguments": {}}\n</tool_call>';
    n = 0;
    const whole = parseToolCalls(text, ids);
    for (let cut = 0; cut <= text.length; cut++) {
      for (const step of [1, 3, 7]) {
        let k = 0;
        const parser = new ToolCallStreamParser({ tools: true, reasoning: true, makeId: () => `call_${++k}` });
        const events: AssistantStreamEvent[] = [...parser.push(text.slice(0, cut))];
        for (let i = cut; i < text.length; i += step) events.push(...parser.push(text.slice(i, i + step)));
        events.push(...parser.finish());
        const content = events.filter((e) => e.type === "content").map((e) => (e as { text: string }).text).join("");
        const calls = events.filter((e) => e.type === "tool_call").map((e) => (e as { call: unknown }).call);
        expect(content).toBe(whole.content ?? "");
        expect(calls.map((c) => (c as { function: unknown }).function)).toEqual(whole.toolCalls.map((c) => c.function));
      }
    }
  });

  it("never emits text that later turns out to be a tag", () => {
    const parser = new ToolCallStreamParser({ tools: true });
    expect(parser.push("Hello <tool")).toEqual([{ type: "content", text: "Hello" }]);
    expect(parser.push("_call>")).toEqual([]);
    expect(parser.push('{"name":"f","arguments":{}}</tool_call>')).toEqual([
      { type: "tool_call", index: 0, call: expect.objectContaining({ function: { name: "f", arguments: "{}" } }) },
    ]);
    const plain = new ToolCallStreamParser({ tools: true });
    expect([...plain.push("a <toolbox"), ...plain.finish()].map((e) => (e as { text: string }).text).join("")).toBe("a <toolbox");
  });
});
