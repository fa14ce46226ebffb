// The chat template renderer shared by the embedded engine (serve/) and the trainer's tokenizer, so
// both turn a conversation into exactly the same text. Templates are the model's own Jinja source
// (GGUF `tokenizer.chat_template` or tokenizer_config.json), rendered with @huggingface/jinja.
//
// Tools. A template that mentions `tools` renders them itself (Qwen2.5/3, Hermes, …). A template
// without tool support (SmolLM2's) gets them injected in the Hermes/Qwen2.5 format: a `# Tools`
// block in the system message, past calls rendered as `<tool_call>{json}</tool_call>` in the
// assistant's content, and tool results as a user message of `<tool_response>` blocks. Either way
// the model answers a call as
//
//   <tool_call>
//   {"name": "get_weather", "arguments": {"city": "Paris"}}
//   </tool_call>
//
// which `parseToolCalls` (whole text) and `ToolCallStreamParser` (streamed text) turn back into
// OpenAI `tool_calls`. A leading `<think>…</think>` block (Qwen3 and friends) is split off as
// reasoning.
import crypto from "node:crypto";
import { Template } from "@huggingface/jinja";
import type { ChatMessage, ContentPart, ToolCall } from "./types.js";

/** ChatML, used when a model carries no template of its own (the same fallback llama.cpp uses). */
export const CHATML_TEMPLATE =
  "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

export const TOOL_CALL_OPEN = "<tool_call>";
export const TOOL_CALL_CLOSE = "</tool_call>";
const THINK_OPEN = "<think>";
const THINK_CLOSE = "</think>";

/** An OpenAI tool definition (`{"type":"function","function":{name, description, parameters}}`). */
export interface ToolDefinition {
  type: "function";
  function: { name: string; description?: string; parameters?: unknown; [k: string]: unknown };
  [k: string]: unknown;
}

export interface RenderChatOptions {
  /** OpenAI tool definitions offered to the model; null or empty: none. */
  tools?: unknown[] | null;
  /** End with the assistant header so the model answers next. */
  addGenerationPrompt: boolean;
  bosToken?: string | null;
  eosToken?: string | null;
  /** Extra template variables, like vLLM's `chat_template_kwargs` (e.g. `enable_thinking`). */
  kwargs?: Record<string, unknown>;
  /**
   * Leave the final (assistant) message open so the model continues it, like vLLM's
   * `continue_final_message`: the text is cut right after that message's content.
   */
  continueFinalMessage?: boolean;
  /** How tools reach the model: the template's own way, injected, or decided by the template ("auto"). */
  toolMode?: "auto" | "native" | "injected";
}

export class ChatTemplateError extends Error {}

const compiled = new Map<string, Template>();

function compile(source: string): Template {
  let t = compiled.get(source);
  if (!t) {
    try {
      t = new Template(source);
    } catch (err) {
      throw new ChatTemplateError(`the chat template does not parse: ${(err as Error).message}`);
    }
    // Templates are few (one per model); the cache only saves re-parsing per request.
    if (compiled.size > 32) compiled.clear();
    compiled.set(source, t);
  }
  return t;
}

/** Whether the template renders `tools` itself (it references the variable). */
export function templateHandlesTools(template: string): boolean {
  return /\btools\b/.test(template);
}

/** Text of a message's content: strings as they are, text parts joined, null as "". */
export function contentText(content: ChatMessage["content"]): string {
  if (content == null) return "";
  if (typeof content === "string") return content;
  return content
    .filter((p: ContentPart) => p.type === "text" || typeof p.text === "string")
    .map((p: ContentPart) => p.text ?? "")
    .join("");
}

/** JSON the way Python's `json.dumps` writes it by default (", " and ": "), as models were trained on. */
export function pythonJson(value: unknown): string {
  if (value === null || value === undefined) return "null";
  if (Array.isArray(value)) return `[${value.map(pythonJson).join(", ")}]`;
  if (typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}: ${pythonJson(v)}`).join(", ")}}`;
  }
  return JSON.stringify(value) ?? "null";
}

/** Tool-call arguments as an object when they are a JSON object string (templates expect a mapping). */
function argumentsValue(args: unknown): unknown {
  if (typeof args !== "string") return args ?? {};
  try {
    return JSON.parse(args) as unknown;
  } catch {
    return args;
  }
}

/** The `# Tools` system block of the Hermes/Qwen2.5 format. */
export function toolSystemPrompt(tools: unknown[]): string {
  return (
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n" +
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n" +
    tools.map((t) => pythonJson(t)).join("\n") +
    "\n</tools>\n\nFor each function call, return a json object with function name and arguments within " +
    "<tool_call></tool_call> XML tags:\n<tool_call>\n" +
    '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>'
  );
}

/** One call as the model writes it. */
export function formatToolCall(name: string, args: unknown): string {
  return `${TOOL_CALL_OPEN}\n${pythonJson({ name, arguments: argumentsValue(args) })}\n${TOOL_CALL_CLOSE}`;
}

/** Messages as a template that knows tools expects them: `developer` as `system`, text content, parsed arguments. */
function nativeMessages(messages: ChatMessage[]): Record<string, unknown>[] {
  return messages.map((m) => {
    const out: Record<string, unknown> = { ...m, role: m.role === "developer" ? "system" : m.role, content: contentText(m.content) };
    if (m.tool_calls?.length) {
      out.tool_calls = m.tool_calls.map((tc) => ({
        ...tc,
        function: { ...tc.function, arguments: argumentsValue(tc.function?.arguments) },
      }));
    }
    return out;
  });
}

/** Messages rewritten into the injected Hermes format for a template that knows nothing of tools. */
function injectedMessages(messages: ChatMessage[], tools: unknown[] | null): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const m of messages) {
    const role = m.role === "developer" ? "system" : m.role;
    if (role === "tool") {
      const block = `<tool_response>\n${contentText(m.content)}\n</tool_response>`;
      const prev = out[out.length - 1];
      // Consecutive results share one user message, as Qwen's template does.
      if (prev && prev.__toolResults === true) prev.content = `${String(prev.content)}\n${block}`;
      else out.push({ role: "user", content: block, __toolResults: true });
      continue;
    }
    if (role === "assistant" && m.tool_calls?.length) {
      const calls = m.tool_calls.map((tc) => formatToolCall(tc.function.name, tc.function.arguments)).join("\n");
      const text = contentText(m.content);
      out.push({ role, content: text ? `${text}\n${calls}` : calls });
      continue;
    }
    out.push({ role, content: contentText(m.content) });
  }
  if (tools?.length) {
    const block = toolSystemPrompt(tools);
    const first = out[0];
    if (first && first.role === "system") first.content = `${String(first.content)}\n\n${block}`;
    else out.unshift({ role: "system", content: block });
  }
  return out.map(({ __toolResults: _drop, ...rest }) => rest);
}

/**
 * Renders a conversation with a model's chat template. Throws `ChatTemplateError` when the template
 * fails (it called `raise_exception`, or the messages do not fit it).
 */
export function renderChat(template: string | null | undefined, messages: ChatMessage[], opts: RenderChatOptions): string {
  const source = template || CHATML_TEMPLATE;
  const tools = opts.tools?.length ? opts.tools : null;
  const mode = opts.toolMode ?? "auto";
  const native = mode === "native" || (mode === "auto" && templateHandlesTools(source));
  const hasToolHistory = messages.some((m) => m.role === "tool" || (m.tool_calls?.length ?? 0) > 0);
  const rendered = native || (!tools && !hasToolHistory) ? nativeMessages(messages) : injectedMessages(messages, tools);
  const continueFinal = opts.continueFinalMessage === true;
  if (continueFinal && opts.addGenerationPrompt) {
    throw new ChatTemplateError("continueFinalMessage and addGenerationPrompt cannot both be set");
  }
  let text: string;
  try {
    text = compile(source).render({
      ...(opts.kwargs ?? {}),
      messages: rendered,
      tools: native ? tools : null,
      add_generation_prompt: opts.addGenerationPrompt,
      bos_token: opts.bosToken ?? "",
      eos_token: opts.eosToken ?? "",
    });
  } catch (err) {
    if (err instanceof ChatTemplateError) throw err;
    throw new ChatTemplateError(`the chat template failed: ${(err as Error).message}`);
  }
  if (continueFinal) {
    const last = rendered[rendered.length - 1];
    const finalText = last ? String(last.content ?? "") : "";
    const at = finalText ? text.lastIndexOf(finalText) : -1;
    if (last?.role !== "assistant" || at < 0) {
      throw new ChatTemplateError("continueFinalMessage needs a final assistant message whose content the template renders");
    }
    text = text.slice(0, at + finalText.length);
  }
  return text;
}

/** A tool-call id in OpenAI's style. */
export function newToolCallId(): string {
  return `call_${crypto.randomBytes(12).toString("hex")}`;
}

/** A call body `{"name", "arguments"|"parameters"}` → ToolCall, or null when it is not one. */
function toToolCall(json: string, makeId: () => string): ToolCall | null {
  let value: unknown;
  try {
    value = JSON.parse(json.trim());
  } catch {
    return null;
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) return null;
  const obj = value as Record<string, unknown>;
  if (typeof obj.name !== "string" || !obj.name) return null;
  const args = obj.arguments ?? obj.parameters ?? {};
  return {
    id: makeId(),
    type: "function",
    function: { name: obj.name, arguments: typeof args === "string" ? args : JSON.stringify(args) },
  };
}

export interface ParsedAssistant {
  /** Visible text, without tool calls and reasoning; null when nothing is left. */
  content: string | null;
  reasoning: string | null;
  toolCalls: ToolCall[];
}

export type AssistantStreamEvent =
  | { type: "content"; text: string }
  | { type: "reasoning"; text: string }
  | { type: "tool_call"; index: number; call: ToolCall };

/** Longest suffix of `text` that is a proper prefix of `tag` (text we must hold back). */
function partialTagSuffix(text: string, tag: string): number {
  for (let n = Math.min(text.length, tag.length - 1); n > 0; n--) {
    if (tag.startsWith(text.slice(text.length - n))) return n;
  }
  return 0;
}

export interface StreamParserOptions {
  /** Look for `<tool_call>` blocks (when the request offered tools). */
  tools: boolean;
  /** Split a leading `<think>…</think>` block off as reasoning. */
  reasoning?: boolean;
  makeId?: () => string;
}

/**
 * Splits streamed model text into content, reasoning and tool calls as it arrives. Text that could
 * still turn out to be a tag, and trailing whitespace before a possible tool call, is held back
 * until it is decided; `finish()` flushes the rest. A call whose JSON does not parse stays content.
 */
export class ToolCallStreamParser {
  private buf = "";
  private state: "start" | "reasoning" | "text" | "call" = "start";
  private calls = 0;
  private readonly makeId: () => string;

  constructor(private readonly opts: StreamParserOptions) {
    this.makeId = opts.makeId ?? newToolCallId;
    if (!opts.reasoning) this.state = "text";
  }

  get toolCallCount(): number {
    return this.calls;
  }

  push(text: string): AssistantStreamEvent[] {
    this.buf += text;
    return this.drain(false);
  }

  finish(): AssistantStreamEvent[] {
    return this.drain(true);
  }

  private drain(final: boolean): AssistantStreamEvent[] {
    const out: AssistantStreamEvent[] = [];
    for (;;) {
      if (this.state === "start") {
        const trimmed = this.buf.trimStart();
        if (trimmed.startsWith(THINK_OPEN)) {
          this.buf = trimmed.slice(THINK_OPEN.length);
          this.state = "reasoning";
          continue;
        }
        if (!final && THINK_OPEN.startsWith(trimmed)) return out;
        this.state = "text";
        continue;
      }
      if (this.state === "reasoning") {
        const at = this.buf.indexOf(THINK_CLOSE);
        if (at >= 0) {
          if (at > 0) out.push({ type: "reasoning", text: this.buf.slice(0, at) });
          this.buf = this.buf.slice(at + THINK_CLOSE.length).replace(/^\s+/, "");
          this.state = "text";
          continue;
        }
        const keep = final ? 0 : partialTagSuffix(this.buf, THINK_CLOSE);
        const emit = this.buf.slice(0, this.buf.length - keep);
        if (emit) out.push({ type: "reasoning", text: emit });
        this.buf = this.buf.slice(emit.length);
        return out;
      }
      if (this.state === "text") {
        const at = this.opts.tools ? this.buf.indexOf(TOOL_CALL_OPEN) : -1;
        if (at >= 0) {
          const before = this.buf.slice(0, at).replace(/\s+$/, "");
          if (before) out.push({ type: "content", text: before });
          this.buf = this.buf.slice(at + TOOL_CALL_OPEN.length);
          this.state = "call";
          continue;
        }
        let keep = 0;
        if (!final && this.opts.tools) {
          keep = partialTagSuffix(this.buf, TOOL_CALL_OPEN);
          // Whitespace right before a call is not content; hold it until we know.
          const head = this.buf.slice(0, this.buf.length - keep);
          keep += head.length - head.replace(/\s+$/, "").length;
        }
        const emit = this.buf.slice(0, this.buf.length - keep);
        if (emit) out.push({ type: "content", text: emit });
        this.buf = this.buf.slice(emit.length);
        return out;
      }
      // Inside a call.
      const end = this.buf.indexOf(TOOL_CALL_CLOSE);
      if (end < 0 && !final) return out;
      const body = end >= 0 ? this.buf.slice(0, end) : this.buf;
      const call = toToolCall(body, this.makeId);
      if (call) out.push({ type: "tool_call", index: this.calls++, call });
      else if (end >= 0 || body.trim()) {
        out.push({ type: "content", text: TOOL_CALL_OPEN + body + (end >= 0 ? TOOL_CALL_CLOSE : "") });
      }
      this.buf = end >= 0 ? this.buf.slice(end + TOOL_CALL_CLOSE.length).replace(/^\s+/, "") : "";
      this.state = "text";
      if (end < 0) return out;
    }
  }
}

/** Splits a complete assistant text into content, reasoning and tool calls (see ToolCallStreamParser). */
export function parseAssistantText(text: string, opts: StreamParserOptions): ParsedAssistant {
  const parser = new ToolCallStreamParser(opts);
  const events = [...parser.push(text), ...parser.finish()];
  let content = "";
  let reasoning = "";
  const toolCalls: ToolCall[] = [];
  for (const e of events) {
    if (e.type === "content") content += e.text;
    else if (e.type === "reasoning") reasoning += e.text;
    else toolCalls.push(e.call);
  }
  return { content: content || null, reasoning: reasoning || null, toolCalls };
}

/** Tool calls in a complete text (Hermes `<tool_call>` blocks). */
export function parseToolCalls(text: string, makeId: () => string = newToolCallId): { content: string | null; toolCalls: ToolCall[] } {
  const { content, toolCalls } = parseAssistantText(text, { tools: true, makeId });
  return { content, toolCalls };
}
