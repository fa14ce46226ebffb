// The slice of the OpenAI wire format that clawloop reads and writes. Loose on purpose: servers add
// fields (token_ids, reasoning_content, timings, …) and every unknown field must survive.
import type { ChatMessage, ToolCall } from "./types.js";

export interface ChatCompletionRequest {
  model: string;
  messages: ChatMessage[];
  stream?: boolean;
  stream_options?: { include_usage?: boolean; [k: string]: unknown } | null;
  tools?: unknown[];
  tool_choice?: unknown;
  temperature?: number;
  top_p?: number;
  max_tokens?: number;
  max_completion_tokens?: number;
  logprobs?: boolean;
  top_logprobs?: number;
  n?: number;
  [k: string]: unknown;
}

export interface CompletionRequest {
  model: string;
  prompt: string | string[] | number[] | number[][];
  stream?: boolean;
  max_tokens?: number;
  logprobs?: number | null;
  echo?: boolean;
  [k: string]: unknown;
}

export interface ChatLogprobToken {
  token: string;
  logprob: number;
  bytes?: number[] | null;
  top_logprobs?: { token: string; logprob: number; bytes?: number[] | null }[];
}

export interface ChatChoice {
  index: number;
  message: ChatMessage & { tool_calls?: ToolCall[] };
  logprobs?: { content: ChatLogprobToken[] | null } | null;
  finish_reason: string | null;
  token_ids?: number[];
  [k: string]: unknown;
}

export interface ChatCompletionResponse {
  id: string;
  object: "chat.completion";
  created: number;
  model: string;
  choices: ChatChoice[];
  usage?: { prompt_tokens: number; completion_tokens: number; total_tokens: number } | null;
  prompt_token_ids?: number[];
  [k: string]: unknown;
}

export interface ToolCallDelta {
  index: number;
  id?: string;
  type?: "function";
  function?: { name?: string; arguments?: string };
}

export interface ChatChunkChoice {
  index: number;
  delta: { role?: string; content?: string | null; reasoning_content?: string | null; reasoning?: string | null; tool_calls?: ToolCallDelta[] };
  logprobs?: { content: ChatLogprobToken[] | null } | null;
  finish_reason: string | null;
  token_ids?: number[];
  [k: string]: unknown;
}

export interface ChatCompletionChunk {
  id: string;
  object: "chat.completion.chunk";
  created: number;
  model: string;
  choices: ChatChunkChoice[];
  usage?: { prompt_tokens: number; completion_tokens: number; total_tokens: number } | null;
  prompt_token_ids?: number[];
  [k: string]: unknown;
}

/** The error body OpenAI-compatible servers return. */
export interface OpenAIErrorBody {
  error: { message: string; type: string; param?: string | null; code?: string | number | null };
}

export function openAIError(message: string, type = "invalid_request_error", code: string | null = null): OpenAIErrorBody {
  return { error: { message, type, param: null, code } };
}
