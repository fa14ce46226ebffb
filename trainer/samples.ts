// Training samples: the token ids a judged exchange was (or would be) served with, its reward,
// its hint and, for distillation, the teacher's prompt (the same conversation with the hint).
import type { ChatMessage, Judgment, Reward, Sample, ToolCall, TrainMode, Turn } from "../core/index.js";
import { signalsFor } from "./advantages.js";
import { appendHint } from "./hint.js";
import { renderExchange } from "./render.js";
import type { ChatTokenizer } from "./engine/model/types.js";

export type SkipReason =
  /** The judgment carries nothing this mode trains on (r = 0 without a hint in `combined`, …). */
  | "no-signal"
  /** The reply has neither text nor tool calls. */
  | "empty-response"
  /** The reply alone does not fit in train.maxTokens. */
  | "too-long"
  /** The exchange could not be turned into tokens (template error, unsupported prompt). */
  | "unrenderable";

export const SKIP_REASONS: readonly SkipReason[] = ["no-signal", "empty-response", "too-long", "unrenderable"];

export type SampleResult = { sample: Sample } | { skip: SkipReason; detail: string };

export interface SampleContext {
  mode: TrainMode;
  tokenizer: ChatTokenizer;
  /** Longest prompt + response; longer samples lose the left of their prompt. */
  maxTokens: number;
  /** The model's vocabulary size: ids at or above it come from another model. */
  vocabSize?: number;
}

/** One judged exchange, from a recorded turn or an offline JSONL line. */
export interface Exchange {
  id: string;
  turnId: string;
  /** Chat conversation before the reply (null for `/v1/completions` turns). */
  messages: ChatMessage[] | null;
  /** `/v1/completions` prompt, when there are no messages. */
  prompt?: unknown;
  tools?: unknown[];
  reply: { content: string; toolCalls: ToolCall[]; reasoning: string | null };
  reward: Reward;
  hint: string | null;
  /** What the server saw and sampled, where it returned them. */
  promptTokenIds?: number[] | null;
  completionTokenIds?: number[] | null;
  completionLogprobs?: number[] | null;
}

export function assistantMessage(reply: Exchange["reply"]): ChatMessage {
  const msg: ChatMessage = { role: "assistant", content: reply.content.length || !reply.toolCalls.length ? reply.content : null };
  if (reply.toolCalls.length) msg.tool_calls = reply.toolCalls;
  if (reply.reasoning) msg.reasoning_content = reply.reasoning;
  return msg;
}

/** Keeps the last `budget` tokens: a long prompt loses its beginning, never the turn being trained. */
export function cutLeft(ids: number[], budget: number): number[] {
  return ids.length > budget ? ids.slice(ids.length - budget) : ids;
}

export function buildSample(ex: Exchange, ctx: SampleContext): SampleResult {
  const hint = ex.hint && ex.hint.trim() ? ex.hint.trim() : null;
  const canDistil = hint !== null && ex.messages !== null && ex.messages.length > 0;
  const signals = signalsFor(ctx.mode, ex.reward, canDistil);
  if (!signals.rl && !signals.opd) {
    const why =
      hint && !canDistil
        ? "a hint needs a chat conversation to be appended to"
        : `mode ${ctx.mode} has nothing to learn from reward ${ex.reward}${hint ? " with a hint" : " without a hint"}`;
    return { skip: "no-signal", detail: why };
  }
  if (!ex.reply.content && !ex.reply.toolCalls.length) return { skip: "empty-response", detail: "the reply is empty" };

  let promptIds: number[];
  let responseIds: number[];
  let behaviour: number[] | null = null;
  try {
    if (ex.promptTokenIds?.length && ex.completionTokenIds?.length) {
      promptIds = ex.promptTokenIds;
      responseIds = ex.completionTokenIds;
      if (ex.completionLogprobs && ex.completionLogprobs.length === responseIds.length) behaviour = ex.completionLogprobs;
    } else if (ex.messages) {
      ({ promptIds, responseIds } = renderExchange(ctx.tokenizer, ex.messages, assistantMessage(ex.reply), ex.tools));
    } else {
      ({ promptIds, responseIds } = renderCompletion(ctx.tokenizer, ex.prompt, ex.reply.content));
    }
  } catch (err) {
    return { skip: "unrenderable", detail: (err as Error).message };
  }

  if (ctx.vocabSize !== undefined) {
    const bad = [...promptIds, ...responseIds].find((id) => !Number.isInteger(id) || id < 0 || id >= ctx.vocabSize!);
    if (bad !== undefined) {
      return { skip: "unrenderable", detail: `token id ${bad} is outside the model's vocabulary of ${ctx.vocabSize} (was the turn served by another model than train.model?)` };
    }
  }
  if (responseIds.length >= ctx.maxTokens) {
    return { skip: "too-long", detail: `the reply has ${responseIds.length} tokens; train.maxTokens is ${ctx.maxTokens}` };
  }
  const budget = ctx.maxTokens - responseIds.length;

  let teacherPromptTokenIds: number[] | null = null;
  if (signals.opd && hint && ex.messages) {
    try {
      const tools = ex.tools && ex.tools.length ? { tools: ex.tools } : {};
      teacherPromptTokenIds = cutLeft(
        ctx.tokenizer.encodeChat(appendHint(ex.messages, hint), { ...tools, addGenerationPrompt: true }),
        budget,
      );
    } catch (err) {
      return { skip: "unrenderable", detail: `teacher prompt: ${(err as Error).message}` };
    }
  }
  return {
    sample: {
      id: ex.id,
      turnId: ex.turnId,
      promptTokenIds: cutLeft(promptIds, budget),
      responseTokenIds: responseIds,
      behaviourLogprobs: behaviour,
      reward: ex.reward,
      hint,
      teacherPromptTokenIds,
    },
  };
}

function renderCompletion(tokenizer: ChatTokenizer, prompt: unknown, text: string): { promptIds: number[]; responseIds: number[] } {
  let promptIds: number[];
  if (typeof prompt === "string") promptIds = tokenizer.encode(prompt, { addSpecial: true, parseSpecial: true });
  else if (Array.isArray(prompt) && prompt.every((t) => Number.isInteger(t))) promptIds = prompt as number[];
  else throw new Error("only a single string or token-id prompt of /v1/completions can be trained on");
  const responseIds = tokenizer.encode(text, { addSpecial: false, parseSpecial: false });
  if (!responseIds.length) throw new Error("the completion is empty");
  return { promptIds, responseIds };
}

/** The exchange a judged turn describes; null when the turn is not a trainable main-line call. */
export function exchangeFromTurn(turn: Turn, judgment: Pick<Judgment, "score" | "hint">): Exchange | null {
  if (turn.turnType !== "main" || turn.status !== "ok" || !turn.response) return null;
  return {
    id: turn.id,
    turnId: turn.id,
    messages: turn.endpoint === "chat" ? (turn.request.messages ?? []) : null,
    prompt: turn.request.prompt,
    tools: turn.request.tools,
    reply: { content: turn.response.content ?? "", toolCalls: turn.response.toolCalls ?? [], reasoning: turn.response.reasoning },
    reward: judgment.score,
    hint: judgment.hint,
    promptTokenIds: turn.promptTokenIds,
    completionTokenIds: turn.completionTokenIds,
    completionLogprobs: turn.completionLogprobs,
  };
}
