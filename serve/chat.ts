// POST /v1/chat/completions: the conversation is rendered with the model's own template
// (core/chat-template.ts, shared with the trainer), generated on the slot the request's `model`
// names, and answered as OpenAI/vLLM do — streamed or not, with tool calls, log-probs and token ids.
import crypto from "node:crypto";
import type { Token } from "node-llama-cpp";
import {
  ChatTemplateError,
  ToolCallStreamParser,
  TOOL_CALL_OPEN,
  renderChat,
  type AssistantStreamEvent,
  type ChatMessage,
  type ToolCall,
  type ToolCallDelta,
} from "../core/index.js";
import type { Engine, Lease } from "./engine.js";
import { HttpError, allSettledOrThrow, badRequest } from "./errors.js";
import { chatLogprobs, promptLogprobs, type PromptLogprobsOut } from "./format.js";
import { forcedToolCallGrammar, responseFormatGrammar, type GrammarFactory, type ToolDef } from "./grammar.js";
import { generate, type FinishReason, type GeneratedToken, type SamplingParams } from "./generate.js";
import type { Reply } from "./http.js";
import { chatRequestSchema, parseBody, samplingFrom, type ChatRequest } from "./params.js";

export interface HandlerContext {
  engine: Engine;
  signal: AbortSignal;
  reply: Reply;
}

interface PreparedChat {
  req: ChatRequest;
  prompt: Token[];
  /** Text the server put after the generation prompt (a forced `<tool_call>` opening). */
  prefill: string;
  tools: boolean;
  reasoning: boolean;
  params: SamplingParams;
  /** A fresh grammar state per choice when the output is constrained. */
  grammar: GrammarFactory | null;
}

export function prepareChat(engine: Engine, body: unknown): PreparedChat {
  const req = parseBody(chatRequestSchema, body);
  if (req.echo) throw badRequest("`echo` is not supported for chat completions by this server; use /v1/completions", "echo");
  if (req.top_logprobs != null && req.top_logprobs > 0 && !req.logprobs) {
    throw badRequest("`top_logprobs` needs `logprobs` set to true", "top_logprobs");
  }
  const toolChoice = req.tool_choice ?? "auto";
  const tools = (toolChoice === "none" ? [] : (req.tools ?? [])) as ToolDef[];
  if ((toolChoice === "required" || typeof toolChoice === "object") && !tools.length) {
    throw badRequest("tool_choice asks for a tool call but no tools were given", "tool_choice");
  }
  const continueFinal = req.continue_final_message ?? false;
  const addGenerationPrompt = req.add_generation_prompt ?? !continueFinal;
  const template = req.chat_template ?? engine.chatTemplate;
  let text: string;
  try {
    text = renderChat(template, req.messages as ChatMessage[], {
      tools: tools.length ? tools : null,
      addGenerationPrompt,
      continueFinalMessage: continueFinal,
      bosToken: engine.bosToken,
      eosToken: engine.eosToken,
      kwargs: req.chat_template_kwargs ?? undefined,
    });
  } catch (err) {
    if (err instanceof ChatTemplateError) throw badRequest(err.message, "messages");
    throw err;
  }
  const toolGrammar = tools.length ? forcedToolCallGrammar(engine, tools, toolChoice) : null;
  const formatGrammar = responseFormatGrammar(engine, req.response_format);
  if (toolGrammar && formatGrammar) throw badRequest("a forced tool call and response_format cannot be combined", "response_format");
  const grammar = toolGrammar ?? formatGrammar;
  const prefill = toolGrammar ? `${TOOL_CALL_OPEN}\n` : "";
  const prompt = engine.tokenize(text + prefill, { addBos: req.add_special_tokens ?? false, parseSpecial: true });
  const params = samplingFrom(req, {
    maxTokens: req.max_completion_tokens ?? req.max_tokens ?? null,
    logprobs: req.logprobs ? (req.top_logprobs ?? 0) : null,
    vocabSize: engine.vocabSize,
  });
  // Reasoning is split off only for templates of reasoning models (they mention <think>), like a
  // vLLM server started with a reasoning parser for them.
  const reasoning = /<think>/.test(template ?? "");
  return { req, prompt, prefill, tools: tools.length > 0, reasoning, params, grammar };
}

interface ChoiceState {
  index: number;
  parser: ToolCallStreamParser;
  content: string;
  reasoning: string;
  toolCalls: ToolCall[];
  tokens: GeneratedToken[];
  finishReason: FinishReason | "tool_calls" | null;
  stopReason: string | number | null;
  completionTokens: number;
}

function applyEvents(state: ChoiceState, events: AssistantStreamEvent[], delta: Record<string, unknown>): void {
  const toolDeltas: ToolCallDelta[] = [];
  for (const e of events) {
    if (e.type === "content") {
      state.content += e.text;
      delta.content = ((delta.content as string | undefined) ?? "") + e.text;
    } else if (e.type === "reasoning") {
      state.reasoning += e.text;
      delta.reasoning_content = ((delta.reasoning_content as string | undefined) ?? "") + e.text;
    } else {
      state.toolCalls.push(e.call);
      toolDeltas.push({ index: e.index, id: e.call.id, type: "function", function: { name: e.call.function.name, arguments: e.call.function.arguments } });
    }
  }
  if (toolDeltas.length) delta.tool_calls = toolDeltas;
}

/** Runs one choice, calling `onStep` with each token's parsed output (for streaming). */
async function runChoice(
  ctx: HandlerContext,
  lease: Lease,
  prep: PreparedChat,
  index: number,
  onStep: ((state: ChoiceState, delta: Record<string, unknown>, tokens: GeneratedToken[]) => void) | null,
  onPrompt: ((promptLogprobs: PromptLogprobsOut | null) => void) | null,
): Promise<ChoiceState> {
  const state: ChoiceState = {
    index,
    parser: new ToolCallStreamParser({ tools: prep.tools, reasoning: prep.reasoning }),
    content: "",
    reasoning: "",
    toolCalls: [],
    tokens: [],
    finishReason: null,
    stopReason: null,
    completionTokens: 0,
  };
  const seed = prep.params.seed === null ? null : prep.params.seed + index;
  const params: SamplingParams = { ...prep.params, seed, grammar: prep.grammar ? prep.grammar() : null };
  // The forced opening is part of the prompt, but the parser must see it to recognise the call.
  if (prep.prefill) state.parser.push(prep.prefill);
  for await (const ev of generate(ctx.engine, { slot: lease.slot, prompt: prep.prompt, params, signal: ctx.signal })) {
    if (ev.type === "prompt") {
      onPrompt?.(ev.promptLogprobs ? promptLogprobs(ctx.engine, ev.promptLogprobs) : null);
    } else if (ev.type === "tokens") {
      state.tokens.push(...ev.tokens);
      const delta: Record<string, unknown> = {};
      applyEvents(state, ev.text ? state.parser.push(ev.text) : [], delta);
      onStep?.(state, delta, ev.tokens);
    } else {
      const delta: Record<string, unknown> = {};
      applyEvents(state, state.parser.finish(), delta);
      if (Object.keys(delta).length) onStep?.(state, delta, []);
      state.completionTokens = ev.completionTokens;
      state.stopReason = ev.stopReason;
      state.finishReason = ev.finishReason === "stop" && state.toolCalls.length ? "tool_calls" : ev.finishReason;
    }
  }
  return state;
}

function newId(prefix: string): string {
  return `${prefix}-${crypto.randomBytes(12).toString("hex")}`;
}

export async function handleChat(ctx: HandlerContext, body: unknown): Promise<void> {
  const prep = prepareChat(ctx.engine, body);
  const lease = ctx.engine.lease(prep.req.model);
  try {
    if (prep.req.stream) await streamChat(ctx, lease, prep);
    else await completeChat(ctx, lease, prep);
  } finally {
    lease.release();
  }
}

async function completeChat(ctx: HandlerContext, lease: Lease, prep: PreparedChat): Promise<void> {
  const n = prep.req.n ?? 1;
  let promptLps: PromptLogprobsOut | null = null;
  const states = await allSettledOrThrow(
    Array.from({ length: n }, (_, i) =>
      runChoice(ctx, lease, prep, i, null, i === 0 ? (p) => (promptLps = p) : null),
    ),
  );
  const asIds = prep.req.return_tokens_as_token_ids ?? false;
  const completion = states.reduce((a, s) => a + s.completionTokens, 0);
  const body: Record<string, unknown> = {
    id: newId("chatcmpl"),
    object: "chat.completion",
    created: Math.floor(Date.now() / 1000),
    model: lease.slot.name,
    choices: states.map((s) => {
      const message: Record<string, unknown> = {
        role: "assistant",
        content: s.content || (s.toolCalls.length ? null : ""),
        tool_calls: s.toolCalls,
      };
      if (s.reasoning) message.reasoning_content = s.reasoning;
      const choice: Record<string, unknown> = {
        index: s.index,
        message,
        logprobs: prep.params.logprobs !== null ? { content: chatLogprobs(ctx.engine, s.tokens, asIds) } : null,
        finish_reason: s.finishReason,
        stop_reason: s.stopReason,
      };
      if (prep.req.return_token_ids) choice.token_ids = s.tokens.map((t) => t.id);
      return choice;
    }),
    usage: { prompt_tokens: prep.prompt.length, completion_tokens: completion, total_tokens: prep.prompt.length + completion },
  };
  if (prep.params.promptLogprobs !== null) body.prompt_logprobs = promptLps;
  if (prep.req.return_token_ids) body.prompt_token_ids = prep.prompt;
  ctx.reply.json(200, body);
}

async function streamChat(ctx: HandlerContext, lease: Lease, prep: PreparedChat): Promise<void> {
  const sse = ctx.reply.stream();
  const id = newId("chatcmpl");
  const created = Math.floor(Date.now() / 1000);
  const model = lease.slot.name;
  const includeUsage = prep.req.stream_options?.include_usage === true;
  const wantLogprobs = prep.params.logprobs !== null;
  const wantIds = prep.req.return_token_ids === true;
  const asIds = prep.req.return_tokens_as_token_ids ?? false;
  const n = prep.req.n ?? 1;
  const chunk = (choices: unknown[], extra: Record<string, unknown> = {}) => {
    const c: Record<string, unknown> = { id, object: "chat.completion.chunk", created, model, choices, ...extra };
    if (includeUsage) c.usage = null;
    return c;
  };
  // First: the role, per choice (the first chunk also carries the prompt's token ids).
  for (let i = 0; i < n; i++) {
    const choice: Record<string, unknown> = { index: i, delta: { role: "assistant", content: "" }, logprobs: null, finish_reason: null };
    sse.send(chunk([choice], i === 0 && wantIds ? { prompt_token_ids: prep.prompt } : {}));
  }
  try {
    const states = await allSettledOrThrow(
      Array.from({ length: n }, (_, i) =>
        runChoice(
          ctx,
          lease,
          prep,
          i,
          (state, delta, tokens) => {
            const hasDelta = Object.keys(delta).length > 0;
            if (!hasDelta && !(tokens.length && (wantLogprobs || wantIds))) return;
            const choice: Record<string, unknown> = {
              index: state.index,
              delta,
              logprobs: wantLogprobs && tokens.length ? { content: chatLogprobs(ctx.engine, tokens, asIds) } : null,
              finish_reason: null,
            };
            if (wantIds) choice.token_ids = tokens.map((t) => t.id);
            sse.send(chunk([choice]));
          },
          null,
        ).then((state) => {
          const last: Record<string, unknown> = { index: state.index, delta: {}, logprobs: null, finish_reason: state.finishReason, stop_reason: state.stopReason };
          if (wantIds) last.token_ids = [];
          sse.send(chunk([last]));
          return state;
        }),
      ),
    );
    if (includeUsage) {
      const completion = states.reduce((a, s) => a + s.completionTokens, 0);
      sse.send({
        id,
        object: "chat.completion.chunk",
        created,
        model,
        choices: [],
        usage: { prompt_tokens: prep.prompt.length, completion_tokens: completion, total_tokens: prep.prompt.length + completion },
      });
    }
    sse.done();
  } catch (err) {
    if (ctx.signal.aborted) throw err;
    sse.error(err instanceof HttpError ? err : new HttpError(500, (err as Error).message));
  }
}
