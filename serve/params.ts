// Request bodies of the OpenAI endpoints (with vLLM's extras), validated with zod, and their
// sampling fields mapped onto SamplingParams. Unknown fields are accepted and ignored, as vLLM does.
import { z } from "zod";
import { badRequest } from "./errors.js";
import { DEFAULT_SAMPLING, type SamplingParams } from "./generate.js";

/** Most alternatives a request may ask for per position (vLLM's default `--max-logprobs`). */
export const MAX_LOGPROBS = 20;
/** Most choices per request (`n`); each runs on its own sequence. */
export const MAX_N = 16;

const stop = z.union([z.string(), z.array(z.string())]).nullish();

const sampling = {
  model: z.string().nullish(),
  stream: z.boolean().nullish(),
  stream_options: z.looseObject({ include_usage: z.boolean().nullish(), continuous_usage_stats: z.boolean().nullish() }).nullish(),
  n: z.number().int().min(1).max(MAX_N).nullish(),
  temperature: z.number().min(0).nullish(),
  top_p: z.number().gt(0).max(1).nullish(),
  top_k: z.number().int().min(-1).nullish(),
  min_p: z.number().min(0).max(1).nullish(),
  seed: z.number().int().nullish(),
  max_tokens: z.number().int().min(0).nullish(),
  stop,
  stop_token_ids: z.array(z.number().int().min(0)).nullish(),
  frequency_penalty: z.number().min(-2).max(2).nullish(),
  presence_penalty: z.number().min(-2).max(2).nullish(),
  repetition_penalty: z.number().gt(0).nullish(),
  /** llama.cpp's names for the same knobs. */
  repeat_penalty: z.number().gt(0).nullish(),
  repeat_last_n: z.number().int().min(0).nullish(),
  logit_bias: z.record(z.string(), z.number().min(-100).max(100)).nullish(),
  ignore_eos: z.boolean().nullish(),
  skip_special_tokens: z.boolean().nullish(),
  include_stop_str_in_output: z.boolean().nullish(),
  prompt_logprobs: z.number().int().min(0).max(MAX_LOGPROBS).nullish(),
  return_token_ids: z.boolean().nullish(),
  return_tokens_as_token_ids: z.boolean().nullish(),
  response_format: z.looseObject({ type: z.enum(["text", "json_object", "json_schema"]), json_schema: z.unknown().optional() }).nullish(),
};

const contentPart = z.looseObject({ type: z.string(), text: z.string().optional() });
const toolCall = z.looseObject({
  id: z.string().optional(),
  type: z.literal("function").optional(),
  function: z.looseObject({ name: z.string(), arguments: z.union([z.string(), z.record(z.string(), z.unknown())]).optional() }),
});
const message = z.looseObject({
  role: z.string().min(1),
  content: z.union([z.string(), z.array(contentPart)]).nullish(),
  name: z.string().optional(),
  tool_calls: z.array(toolCall).nullish(),
  tool_call_id: z.string().optional(),
});
const tool = z.looseObject({
  type: z.literal("function"),
  function: z.looseObject({ name: z.string().min(1), description: z.string().optional(), parameters: z.record(z.string(), z.unknown()).optional() }),
});

export const chatRequestSchema = z.looseObject({
  ...sampling,
  messages: z.array(message).min(1, "messages must hold at least one message"),
  max_completion_tokens: z.number().int().min(0).nullish(),
  logprobs: z.boolean().nullish(),
  top_logprobs: z.number().int().min(0).max(MAX_LOGPROBS).nullish(),
  tools: z.array(tool).nullish(),
  tool_choice: z
    .union([z.enum(["none", "auto", "required"]), z.looseObject({ type: z.literal("function"), function: z.looseObject({ name: z.string() }) })])
    .nullish(),
  add_generation_prompt: z.boolean().nullish(),
  continue_final_message: z.boolean().nullish(),
  add_special_tokens: z.boolean().nullish(),
  chat_template: z.string().nullish(),
  chat_template_kwargs: z.record(z.string(), z.unknown()).nullish(),
  echo: z.boolean().nullish(),
});
export type ChatRequest = z.infer<typeof chatRequestSchema>;

const tokenIds = z.array(z.number().int().min(0));
export const completionRequestSchema = z.looseObject({
  ...sampling,
  prompt: z.union([z.string(), z.array(z.string()).min(1), tokenIds.min(1), z.array(tokenIds.min(1)).min(1)]),
  logprobs: z.number().int().min(0).max(MAX_LOGPROBS).nullish(),
  echo: z.boolean().nullish(),
  suffix: z.string().nullish(),
  add_special_tokens: z.boolean().nullish(),
});
export type CompletionRequest = z.infer<typeof completionRequestSchema>;

/** Parses a body or throws a 400 naming the offending fields. */
export function parseBody<T>(schema: z.ZodType<T>, body: unknown): T {
  const r = schema.safeParse(body);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  const where = issue.path.join(".");
  throw badRequest(`${where ? `${where}: ` : ""}${issue.message}`, where || null);
}

type SamplingFields = z.infer<z.ZodObject<typeof sampling>>;

/** The sampling part of a request, with vLLM's defaults (temperature 1, no filters) for what is unset. */
export function samplingFrom(
  req: SamplingFields,
  extra: { maxTokens: number | null; logprobs: number | null; vocabSize: number },
): SamplingParams {
  if (req.stream_options && !req.stream) throw badRequest("Stream options can only be defined when `stream=True`.", "stream_options");
  if (req.prompt_logprobs != null && req.stream) throw badRequest("`prompt_logprobs` are not available when `stream=True`.", "prompt_logprobs");
  const logitBias = new Map<number, number>();
  for (const [k, v] of Object.entries(req.logit_bias ?? {})) {
    const id = Number(k);
    if (!Number.isInteger(id) || id < 0 || id >= extra.vocabSize) throw badRequest(`logit_bias: token id ${k} is out of vocabulary`, "logit_bias");
    logitBias.set(id, v);
  }
  const stops = req.stop == null ? [] : (Array.isArray(req.stop) ? req.stop : [req.stop]).filter((s) => s.length > 0);
  return {
    ...DEFAULT_SAMPLING,
    temperature: req.temperature ?? DEFAULT_SAMPLING.temperature,
    topP: req.top_p ?? DEFAULT_SAMPLING.topP,
    topK: req.top_k ?? DEFAULT_SAMPLING.topK,
    minP: req.min_p ?? DEFAULT_SAMPLING.minP,
    seed: req.seed ?? null,
    repetitionPenalty: req.repetition_penalty ?? req.repeat_penalty ?? 1,
    frequencyPenalty: req.frequency_penalty ?? 0,
    presencePenalty: req.presence_penalty ?? 0,
    penaltyLastN: req.repeat_last_n ?? DEFAULT_SAMPLING.penaltyLastN,
    logitBias: logitBias.size ? logitBias : null,
    maxTokens: extra.maxTokens,
    stop: stops,
    stopTokenIds: req.stop_token_ids ?? [],
    ignoreEos: req.ignore_eos ?? false,
    includeStopStrInOutput: req.include_stop_str_in_output ?? false,
    logprobs: extra.logprobs,
    promptLogprobs: req.prompt_logprobs ?? null,
    skipSpecialTokens: req.skip_special_tokens ?? true,
  };
}
