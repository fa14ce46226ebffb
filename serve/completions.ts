// POST /v1/completions, with vLLM's extras for scoring: a prompt may be token ids, `echo` returns
// it, `prompt_logprobs` scores every prompt token, and `max_tokens: 0` generates nothing. So a judge
// or teacher can score a given continuation S under a prompt T by sending T+S and reading
// `prompt_logprobs[i]` for the positions of S.
import crypto from "node:crypto";
import type { Token } from "node-llama-cpp";
import type { Engine, Lease } from "./engine.js";
import { HttpError, allSettledOrThrow, badRequest } from "./errors.js";
import {
  appendCompletionLogprobs,
  emptyCompletionLogprobs,
  promptLogprobs,
  promptTokensAsCompletionLogprobs,
  type CompletionLogprobs,
} from "./format.js";
import { responseFormatGrammar, type GrammarFactory } from "./grammar.js";
import { generate, type GeneratedToken, type PromptTokenLogprob, type SamplingParams } from "./generate.js";
import type { HandlerContext } from "./chat.js";
import { completionRequestSchema, parseBody, samplingFrom, type CompletionRequest } from "./params.js";

/** OpenAI's (and vLLM's) default for the legacy endpoint. */
const DEFAULT_MAX_TOKENS = 16;

interface PromptInput {
  text: string;
  ids: Token[];
}

function promptInputs(engine: Engine, req: CompletionRequest): PromptInput[] {
  const p = req.prompt;
  const addBos = req.add_special_tokens ?? true;
  const fromIds = (ids: number[]): PromptInput => {
    for (const id of ids) if (id >= engine.vocabSize) throw badRequest(`prompt: token id ${id} is out of vocabulary (size ${engine.vocabSize})`, "prompt");
    return { ids: ids as Token[], text: engine.detokenize(ids as Token[], true) };
  };
  const fromText = (text: string): PromptInput => ({ text, ids: engine.tokenize(text, { addBos, parseSpecial: true }) });
  if (typeof p === "string") return [fromText(p)];
  if (p.length && typeof p[0] === "number") return [fromIds(p as number[])];
  if (p.length && typeof p[0] === "string") return (p as string[]).map(fromText);
  return (p as number[][]).map(fromIds);
}

interface ChoiceResult {
  index: number;
  prompt: PromptInput;
  text: string;
  tokens: GeneratedToken[];
  promptLogprobs: (PromptTokenLogprob | null)[] | null;
  finishReason: string;
  stopReason: string | number | null;
  completionTokens: number;
}

function newId(): string {
  return `cmpl-${crypto.randomBytes(12).toString("hex")}`;
}

export async function handleCompletion(ctx: HandlerContext, body: unknown): Promise<void> {
  const req = parseBody(completionRequestSchema, body);
  if (req.suffix) throw badRequest("`suffix` is not supported by this server", "suffix");
  const prompts = promptInputs(ctx.engine, req);
  const logprobs = req.logprobs ?? null;
  const echo = req.echo ?? false;
  const params = samplingFrom(req, { maxTokens: req.max_tokens ?? DEFAULT_MAX_TOKENS, logprobs, vocabSize: ctx.engine.vocabSize });
  // Echo with log-probs reports the prompt's too (vLLM: echo sets prompt_logprobs to logprobs).
  if (echo && logprobs !== null) params.promptLogprobs = Math.max(params.promptLogprobs ?? 0, logprobs);
  const grammar = responseFormatGrammar(ctx.engine, req.response_format);
  const lease = ctx.engine.lease(req.model);
  try {
    if (req.stream) await streamCompletion(ctx, lease, req, prompts, params, grammar);
    else await complete(ctx, lease, req, prompts, params, grammar);
  } finally {
    lease.release();
  }
}

function choicesOf(req: CompletionRequest, prompts: PromptInput[]): { index: number; prompt: PromptInput; seedOffset: number }[] {
  const n = req.n ?? 1;
  return prompts.flatMap((prompt, p) => Array.from({ length: n }, (_, j) => ({ index: p * n + j, prompt, seedOffset: j })));
}

async function runChoice(
  ctx: HandlerContext,
  lease: Lease,
  params: SamplingParams,
  choice: { index: number; prompt: PromptInput; seedOffset: number },
  grammarFactory: GrammarFactory | null,
  onPrompt: ((lps: (PromptTokenLogprob | null)[] | null) => void) | null,
  onTokens: ((tokens: GeneratedToken[], text: string) => void) | null,
): Promise<ChoiceResult> {
  const result: ChoiceResult = {
    index: choice.index,
    prompt: choice.prompt,
    text: "",
    tokens: [],
    promptLogprobs: null,
    finishReason: "length",
    stopReason: null,
    completionTokens: 0,
  };
  const p: SamplingParams = { ...params, seed: params.seed === null ? null : params.seed + choice.seedOffset, grammar: grammarFactory ? grammarFactory() : null };
  for await (const ev of generate(ctx.engine, { slot: lease.slot, prompt: choice.prompt.ids, params: p, signal: ctx.signal })) {
    if (ev.type === "prompt") {
      result.promptLogprobs = ev.promptLogprobs;
      onPrompt?.(ev.promptLogprobs);
    } else if (ev.type === "tokens") {
      result.tokens.push(...ev.tokens);
      result.text += ev.text;
      onTokens?.(ev.tokens, ev.text);
    } else {
      result.finishReason = ev.finishReason;
      result.stopReason = ev.stopReason;
      result.completionTokens = ev.completionTokens;
    }
  }
  return result;
}

function usage(results: { prompt: PromptInput; completionTokens: number; index: number }[], n: number) {
  // Each distinct prompt counts once, however many choices it has (as vLLM counts).
  const prompt = results.filter((r) => r.index % n === 0).reduce((a, r) => a + r.prompt.ids.length, 0);
  const completion = results.reduce((a, r) => a + r.completionTokens, 0);
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}

async function complete(
  ctx: HandlerContext,
  lease: Lease,
  req: CompletionRequest,
  prompts: PromptInput[],
  params: SamplingParams,
  grammar: GrammarFactory | null,
): Promise<void> {
  const echo = req.echo ?? false;
  const asIds = req.return_tokens_as_token_ids ?? false;
  const results = await allSettledOrThrow(choicesOf(req, prompts).map((c) => runChoice(ctx, lease, params, c, grammar, null, null)));
  const body = {
    id: newId(),
    object: "text_completion",
    created: Math.floor(Date.now() / 1000),
    model: lease.slot.name,
    choices: results.map((r) => {
      let logprobs: CompletionLogprobs | null = null;
      if (params.logprobs !== null) {
        logprobs = emptyCompletionLogprobs();
        let offset = 0;
        if (echo) offset = appendCompletionLogprobs(ctx.engine, logprobs, promptTokensAsCompletionLogprobs(r.prompt.ids, r.promptLogprobs), asIds, 0);
        appendCompletionLogprobs(ctx.engine, logprobs, r.tokens, asIds, offset);
      }
      const choice: Record<string, unknown> = {
        index: r.index,
        text: (echo ? r.prompt.text : "") + r.text,
        logprobs,
        finish_reason: r.finishReason,
        stop_reason: r.stopReason,
      };
      if (req.prompt_logprobs != null) choice.prompt_logprobs = r.promptLogprobs ? promptLogprobs(ctx.engine, r.promptLogprobs) : null;
      if (req.return_token_ids) {
        choice.prompt_token_ids = r.prompt.ids;
        choice.token_ids = r.tokens.map((t) => t.id);
      }
      return choice;
    }),
    usage: usage(results, req.n ?? 1),
  };
  ctx.reply.json(200, body);
}

async function streamCompletion(
  ctx: HandlerContext,
  lease: Lease,
  req: CompletionRequest,
  prompts: PromptInput[],
  params: SamplingParams,
  grammar: GrammarFactory | null,
): Promise<void> {
  const sse = ctx.reply.stream();
  const id = newId();
  const created = Math.floor(Date.now() / 1000);
  const model = lease.slot.name;
  const echo = req.echo ?? false;
  const asIds = req.return_tokens_as_token_ids ?? false;
  const wantIds = req.return_token_ids === true;
  const includeUsage = req.stream_options?.include_usage === true;
  const chunk = (choice: Record<string, unknown>) => {
    const c: Record<string, unknown> = { id, object: "text_completion", created, model, choices: [choice] };
    if (includeUsage) c.usage = null;
    return c;
  };
  try {
    const results = await allSettledOrThrow(
      choicesOf(req, prompts).map((c) => {
        let offset = 0;
        let first = true;
        return runChoice(
          ctx,
          lease,
          params,
          c,
          grammar,
          (lps) => {
            // The first chunk of a choice: the echoed prompt and/or its ids.
            if (!echo && !wantIds) return;
            const choice: Record<string, unknown> = { index: c.index, text: echo ? c.prompt.text : "", logprobs: null, finish_reason: null };
            if (echo && params.logprobs !== null) {
              const lp = emptyCompletionLogprobs();
              offset = appendCompletionLogprobs(ctx.engine, lp, promptTokensAsCompletionLogprobs(c.prompt.ids, lps), asIds, 0);
              choice.logprobs = lp;
            }
            if (wantIds) choice.prompt_token_ids = c.prompt.ids;
            first = false;
            sse.send(chunk(choice));
          },
          (tokens, text) => {
            if (!text && params.logprobs === null && !wantIds) return;
            const choice: Record<string, unknown> = { index: c.index, text, logprobs: null, finish_reason: null };
            if (params.logprobs !== null) {
              const lp = emptyCompletionLogprobs();
              offset = appendCompletionLogprobs(ctx.engine, lp, tokens, asIds, offset);
              choice.logprobs = lp;
            }
            if (wantIds) {
              choice.token_ids = tokens.map((t) => t.id);
              if (first) choice.prompt_token_ids = c.prompt.ids;
            }
            first = false;
            sse.send(chunk(choice));
          },
        ).then((r) => {
          sse.send(chunk({ index: r.index, text: "", logprobs: null, finish_reason: r.finishReason, stop_reason: r.stopReason }));
          return r;
        });
      }),
    );
    if (includeUsage) sse.send({ id, object: "text_completion", created, model, choices: [], usage: usage(results, req.n ?? 1) });
    sse.done();
  } catch (err) {
    if (ctx.signal.aborted) throw err;
    sse.error(err instanceof HttpError ? err : new HttpError(500, (err as Error).message));
  }
}
