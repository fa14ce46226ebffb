// How a conversation and the assistant's reply become prompt and response token ids with the
// model's own chat template. The prompt is what a server feeds the model for the request; the
// response is what the template renders for the reply, up to and including its end-of-turn token.
import type { ChatMessage } from "../core/index.js";
import type { ChatTokenizer } from "./engine/model/types.js";

export interface RenderedExchange {
  promptIds: number[];
  responseIds: number[];
}

export function renderExchange(
  tokenizer: ChatTokenizer,
  messages: ChatMessage[],
  assistant: ChatMessage,
  tools?: unknown[],
): RenderedExchange {
  const toolOpt = tools && tools.length ? { tools } : {};
  const promptIds = tokenizer.encodeChat(messages, { ...toolOpt, addGenerationPrompt: true });
  const full = tokenizer.encodeChat([...messages, assistant], { ...toolOpt, addGenerationPrompt: false });
  for (let i = 0; i < promptIds.length; i++) {
    if (full[i] !== promptIds[i]) {
      throw new Error("the chat template does not render the prompt as a prefix of the conversation with the reply");
    }
  }
  let responseIds = full.slice(promptIds.length);
  // A server stops at the end-of-turn token; what the template adds after it was never generated.
  const eos = new Set(tokenizer.eosTokenIds);
  for (let i = responseIds.length - 1; i >= 0; i--) {
    if (eos.has(responseIds[i]!)) {
      responseIds = responseIds.slice(0, i + 1);
      break;
    }
  }
  if (responseIds.length === 0) throw new Error("the chat template renders the reply as no tokens");
  return { promptIds, responseIds };
}
