// Log-probs in the exact shapes vLLM returns them.
import type { ChatLogprobToken } from "../core/index.js";
import type { Engine } from "./engine.js";
import type { GeneratedToken, PromptTokenLogprob } from "./generate.js";

/** How a token is named in log-probs: its text, or `token_id:<id>` (vLLM's `return_tokens_as_token_ids`). */
export function tokenLabel(engine: Engine, id: number, asIds: boolean): string {
  return asIds ? `token_id:${id}` : engine.tokenText(id);
}

function utf8Bytes(text: string): number[] {
  return Array.from(Buffer.from(text, "utf8"));
}

/** Chat: `choices[].logprobs.content[] = {token, logprob, bytes, top_logprobs}`. */
export function chatLogprobs(engine: Engine, tokens: GeneratedToken[], asIds: boolean): ChatLogprobToken[] {
  return tokens.map((t) => {
    const token = tokenLabel(engine, t.id, asIds);
    return {
      token,
      logprob: t.logprob ?? 0,
      bytes: utf8Bytes(token),
      top_logprobs: t.top.map((alt) => {
        const label = tokenLabel(engine, alt.token, asIds);
        return { token: label, logprob: alt.logprob, bytes: utf8Bytes(label) };
      }),
    };
  });
}

export interface CompletionLogprobs {
  tokens: string[];
  token_logprobs: (number | null)[];
  top_logprobs: (Record<string, number> | null)[];
  text_offset: number[];
}

export function emptyCompletionLogprobs(): CompletionLogprobs {
  return { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] };
}

/**
 * Completions: `{tokens, token_logprobs, top_logprobs, text_offset}`, appended to `into`. Each
 * `top_logprobs` entry holds the k alternatives plus the chosen token, as vLLM's does.
 */
export function appendCompletionLogprobs(
  engine: Engine,
  into: CompletionLogprobs,
  tokens: { id: number; logprob: number | null; top: { token: number; logprob: number }[] }[],
  asIds: boolean,
  offset: number,
): number {
  let at = offset;
  for (const t of tokens) {
    const label = tokenLabel(engine, t.id, asIds);
    into.tokens.push(label);
    into.token_logprobs.push(t.logprob);
    if (t.logprob === null) into.top_logprobs.push(null);
    else {
      const top: Record<string, number> = {};
      for (const alt of t.top) top[tokenLabel(engine, alt.token, asIds)] = alt.logprob;
      top[label] = t.logprob;
      into.top_logprobs.push(top);
    }
    into.text_offset.push(at);
    at += engine.tokenText(t.id).length;
  }
  return at;
}

export type PromptLogprobsOut = (Record<string, { logprob: number; rank: number; decoded_token: string }> | null)[];

/** vLLM's `prompt_logprobs`: null for the first token, then `{"<id>": {logprob, rank, decoded_token}}`. */
export function promptLogprobs(engine: Engine, entries: (PromptTokenLogprob | null)[]): PromptLogprobsOut {
  return entries.map((e) => {
    if (!e) return null;
    const out: Record<string, { logprob: number; rank: number; decoded_token: string }> = {};
    e.top.forEach((alt, i) => {
      out[String(alt.token)] = { logprob: alt.logprob, rank: i + 1, decoded_token: engine.tokenText(alt.token) };
    });
    out[String(e.token)] = { logprob: e.logprob, rank: e.rank, decoded_token: engine.tokenText(e.token) };
    return out;
  });
}

/** Generated tokens as a completions log-prob list entry (no top alternatives: the prompt side). */
export function promptTokensAsCompletionLogprobs(
  prompt: number[],
  entries: (PromptTokenLogprob | null)[] | null,
): { id: number; logprob: number | null; top: { token: number; logprob: number }[] }[] {
  return prompt.map((id, i) => {
    const e = entries?.[i] ?? null;
    return { id, logprob: e ? e.logprob : null, top: e ? e.top : [] };
  });
}
