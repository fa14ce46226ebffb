// vLLM's POST /tokenize and /detokenize: the exact ids the engine would feed the model, so a judge
// or trainer can build a teacher prompt (messages with a hint) and score a continuation under it.
import type { Token } from "node-llama-cpp";
import { z } from "zod";
import { ChatTemplateError, renderChat, type ChatMessage } from "../core/index.js";
import type { Engine } from "./engine.js";
import { badRequest } from "./errors.js";
import { parseBody } from "./params.js";

const chatTokenizeSchema = z.looseObject({
    model: z.string().nullish(),
    messages: z.array(z.looseObject({ role: z.string() })).min(1),
    tools: z.array(z.unknown()).nullish(),
    add_generation_prompt: z.boolean().nullish(),
    continue_final_message: z.boolean().nullish(),
    add_special_tokens: z.boolean().nullish(),
    chat_template: z.string().nullish(),
    chat_template_kwargs: z.record(z.string(), z.unknown()).nullish(),
    return_token_strs: z.boolean().nullish(),
});

const textTokenizeSchema = z.looseObject({
  model: z.string().nullish(),
  prompt: z.string(),
  add_special_tokens: z.boolean().nullish(),
  return_token_strs: z.boolean().nullish(),
});

export function tokenize(engine: Engine, body: unknown): { count: number; max_model_len: number; tokens: number[]; token_strs?: string[] } {
  const isChat = typeof body === "object" && body !== null && "messages" in body;
  let ids: number[];
  let strs = false;
  if (isChat) {
    const req = parseBody(chatTokenizeSchema, body);
    strs = req.return_token_strs ?? false;
    const continueFinal = req.continue_final_message ?? false;
    let text: string;
    try {
      text = renderChat(req.chat_template ?? engine.chatTemplate, req.messages as ChatMessage[], {
        tools: req.tools ?? null,
        addGenerationPrompt: req.add_generation_prompt ?? !continueFinal,
        continueFinalMessage: continueFinal,
        bosToken: engine.bosToken,
        eosToken: engine.eosToken,
        kwargs: req.chat_template_kwargs ?? undefined,
      });
    } catch (err) {
      if (err instanceof ChatTemplateError) throw badRequest(err.message, "messages");
      throw err;
    }
    ids = engine.tokenize(text, { addBos: req.add_special_tokens ?? false, parseSpecial: true });
  } else {
    const req = parseBody(textTokenizeSchema, body);
    strs = req.return_token_strs ?? false;
    ids = engine.tokenize(req.prompt, { addBos: req.add_special_tokens ?? true, parseSpecial: true });
  }
  const out: { count: number; max_model_len: number; tokens: number[]; token_strs?: string[] } = {
    count: ids.length,
    max_model_len: engine.contextSize,
    tokens: ids,
  };
  if (strs) out.token_strs = ids.map((id) => engine.tokenText(id));
  return out;
}

const detokenizeSchema = z.looseObject({ model: z.string().nullish(), tokens: z.array(z.number().int().min(0)) });

export function detokenize(engine: Engine, body: unknown): { prompt: string } {
  const req = parseBody(detokenizeSchema, body);
  for (const id of req.tokens) if (id >= engine.vocabSize) throw badRequest(`tokens: token id ${id} is out of vocabulary`, "tokens");
  // Ids of the vocabulary (checked above); node-llama-cpp's Token is a number with a type brand.
  return { prompt: engine.detokenize(req.tokens as Token[], true) };
}
