// One generation on a slot: prompt in, tokens out, with the request's sampling and vLLM-style
// raw log-probs. Streams events so the HTTP layer can forward each token as it is made.
//
// Log-prob semantics (same as vLLM's default `raw_logprobs`): every reported log-prob is the
// log-softmax of the model's raw logits at T=1, before temperature, penalties, logit bias and
// top-k/top-p/min-p, read from the very logits the token was sampled from. They are the sampling
// distribution exactly when the request samples at temperature 1 with no filters.
import type { LlamaContextSequence, LlamaGrammarEvaluationState, Token } from "node-llama-cpp";
import type { Engine, Slot } from "./engine.js";
import { AbortedError, badRequest } from "./errors.js";
import { decode, NativeSampler, type PositionRequest, type SamplerConfig } from "./llama-internals.js";

export interface SamplingParams {
  /** ≤ 0: greedy. */
  temperature: number;
  topP: number;
  /** ≤ 0: off. */
  topK: number;
  minP: number;
  /** null: a fresh random seed per request. */
  seed: number | null;
  repetitionPenalty: number;
  frequencyPenalty: number;
  presencePenalty: number;
  /** Penalties look at this many of the latest generated tokens (llama.cpp's `repeat_last_n`). */
  penaltyLastN: number;
  logitBias: Map<number, number> | null;
  /** null: until the context is full. */
  maxTokens: number | null;
  stop: string[];
  stopTokenIds: number[];
  ignoreEos: boolean;
  includeStopStrInOutput: boolean;
  /** null: no log-probs; k ≥ 0: the sampled token's and k alternatives. */
  logprobs: number | null;
  /** null: none; k ≥ 0: every prompt token's log-prob and k alternatives (vLLM's `prompt_logprobs`). */
  promptLogprobs: number | null;
  skipSpecialTokens: boolean;
  /** Constrains the output to one JSON value (forced tool calls); generation ends when it is complete. */
  grammar: LlamaGrammarEvaluationState | null;
}

export const DEFAULT_SAMPLING: SamplingParams = {
  temperature: 1,
  topP: 1,
  topK: 0,
  minP: 0,
  seed: null,
  repetitionPenalty: 1,
  frequencyPenalty: 0,
  presencePenalty: 0,
  penaltyLastN: 64,
  logitBias: null,
  maxTokens: null,
  stop: [],
  stopTokenIds: [],
  ignoreEos: false,
  includeStopStrInOutput: false,
  logprobs: null,
  promptLogprobs: null,
  skipSpecialTokens: true,
  grammar: null,
};

export interface TokenLogprob {
  token: number;
  logprob: number;
}

export interface GeneratedToken {
  id: number;
  /** Raw log-prob of the token (null when log-probs were not asked for). */
  logprob: number | null;
  top: TokenLogprob[];
}

export interface PromptTokenLogprob {
  token: number;
  logprob: number;
  rank: number;
  top: TokenLogprob[];
}

export type FinishReason = "stop" | "length";

export type GenerateEvent =
  | { type: "prompt"; promptTokens: number; cachedTokens: number; promptLogprobs: (PromptTokenLogprob | null)[] | null }
  | { type: "tokens"; tokens: GeneratedToken[]; text: string }
  | { type: "end"; finishReason: FinishReason; stopReason: string | number | null; text: string; completionTokens: number };

export interface GenerateRequest {
  slot: Slot;
  prompt: Token[];
  params: SamplingParams;
  signal: AbortSignal;
}

function randomSeed(): number {
  return Math.floor(Math.random() * 0xffffffff);
}

export function samplerConfig(params: SamplingParams): SamplerConfig {
  const config: SamplerConfig = { temperature: params.temperature > 0 ? params.temperature : 0, seed: params.seed ?? randomSeed() };
  if (params.temperature > 0) {
    // Filters that would not filter are left out: a top-k of the whole vocabulary still sorts it.
    if (params.topK > 0) config.topK = params.topK;
    if (params.topP < 1) config.topP = params.topP;
    if (params.minP > 0) config.minP = params.minP;
  }
  if (params.repetitionPenalty !== 1 || params.frequencyPenalty !== 0 || params.presencePenalty !== 0) {
    // The chain accepts each sampled token itself, so it starts from an empty history.
    config.repeatPenalty = params.repetitionPenalty;
    config.repeatPenaltyTokens = new Uint32Array(0);
    config.repeatPenaltyMaxTokens = params.penaltyLastN;
    config.repeatPenaltyFrequencyPenalty = params.frequencyPenalty;
    config.repeatPenaltyPresencePenalty = params.presencePenalty;
  }
  if (params.logitBias?.size) {
    config.tokenBiasKeys = Uint32Array.from(params.logitBias.keys());
    config.tokenBiasValues = Float32Array.from(params.logitBias.values());
  }
  if (params.grammar) config.grammarEvaluationState = (params.grammar as unknown as { _state: unknown })._state;
  return config;
}

/**
 * Turns token ids into text as they come, holding back bytes of a character split across tokens
 * and giving the detokenizer the preceding tokens for context (leading-space rules).
 */
export class TextDecoderStream {
  private pending: Token[] = [];
  private context: Token[] = [];

  constructor(
    private readonly engine: Engine,
    private readonly special: boolean,
  ) {}

  push(id: Token): string {
    this.pending.push(id);
    const text = this.engine.detokenize(this.pending, this.special, this.context);
    // A trailing U+FFFD is an incomplete UTF-8 sequence; wait (a little) for the rest of it.
    if (text.endsWith("\uFFFD") && this.pending.length < 4) return "";
    return this.take(text);
  }

  flush(): string {
    if (!this.pending.length) return "";
    return this.take(this.engine.detokenize(this.pending, this.special, this.context));
  }

  private take(text: string): string {
    this.context = [...this.context, ...this.pending].slice(-8);
    this.pending = [];
    return text;
  }
}

/** Finds stop strings in streamed text, holding back what could still become one. */
export class StopMatcher {
  private held = "";

  constructor(
    private readonly stops: string[],
    private readonly includeStop: boolean,
  ) {}

  /** Returns the text that is safe to emit, and the stop string if one completed. */
  push(text: string): { text: string; stop: string | null } {
    if (!this.stops.length) return { text, stop: null };
    this.held += text;
    let first = -1;
    let which: string | null = null;
    for (const s of this.stops) {
      const at = this.held.indexOf(s);
      if (at >= 0 && (first < 0 || at < first)) {
        first = at;
        which = s;
      }
    }
    if (which !== null) {
      const out = this.held.slice(0, first + (this.includeStop ? which.length : 0));
      this.held = "";
      return { text: out, stop: which };
    }
    let keep = 0;
    for (const s of this.stops) {
      for (let n = Math.min(s.length - 1, this.held.length); n > keep; n--) {
        if (this.held.endsWith(s.slice(0, n))) {
          keep = n;
          break;
        }
      }
    }
    const out = this.held.slice(0, this.held.length - keep);
    this.held = this.held.slice(out.length);
    return { text: out, stop: null };
  }

  flush(): string {
    const out = this.held;
    this.held = "";
    return out;
  }
}

/** Prompt length check shared by the endpoints (vLLM's wording). */
export function checkPromptFits(engine: Engine, promptTokens: number): void {
  if (promptTokens === 0) throw badRequest("The prompt is empty.");
  if (promptTokens >= engine.contextSize) {
    throw badRequest(
      `This model's maximum context length is ${engine.contextSize} tokens. However, your request has ${promptTokens} input tokens. Please reduce the length of the input messages.`,
    );
  }
}

/**
 * Runs one generation. The sequence is borrowed from the slot for the duration; the caller
 * holds the slot's lease. Ends with an `end` event unless aborted (then throws AbortedError).
 */
export async function* generate(engine: Engine, req: GenerateRequest): AsyncGenerator<GenerateEvent, void, void> {
  const { slot, prompt, params, signal } = req;
  checkPromptFits(engine, prompt.length);
  const room = engine.contextSize - 1 - prompt.length;
  const maxTokens = Math.max(0, Math.min(params.maxTokens ?? room, room));
  const seq = await slot.acquireSequence(prompt, signal);
  const sampler = maxTokens > 0 ? new NativeSampler(engine.model) : null;
  // The raw-logits reader is per generation too: samplers run on llama.cpp worker threads and keep
  // their candidate buffer in the sampler, so one shared by concurrent generations (other
  // sequences, other adapters' contexts) races on it — log-probs came back off by up to 12 nats.
  const greedy = new NativeSampler(engine.model);
  greedy.configure({ temperature: 0, seed: 0 });
  engine.stats.generations++;
  let ended = false;
  try {
    sampler?.configure(samplerConfig(params));
    const wantLogprobs = params.logprobs !== null;
    const top = params.logprobs ?? 0;

    // Reuse the cached prefix, but evaluate at least the last prompt token (its logits pick the
    // first output token), and everything when prompt log-probs are wanted.
    let reuse = Math.min(commonPrefixOf(seq, prompt), prompt.length - 1);
    if (params.promptLogprobs !== null) reuse = 0;
    if (seq.nextTokenIndex > reuse) await seq.eraseContextTokenRanges([{ start: reuse, end: seq.nextTokenIndex }]);
    const toEval = prompt.slice(reuse);
    const positions = new Map<number, PositionRequest>();
    if (params.promptLogprobs !== null) {
      for (let i = 0; i + 1 < toEval.length; i++) {
        positions.set(i, { score: [toEval[i + 1]!], top: params.promptLogprobs, logprobs: true, ranks: true });
      }
    }
    const last = toEval.length - 1;
    if (sampler) positions.set(last, { ...(positions.get(last) ?? { top, logprobs: false }), sampler, top, logprobs: wantLogprobs });

    let results = await decode(seq, toEval, positions, greedy);
    let promptLogprobs: (PromptTokenLogprob | null)[] | null = null;
    if (params.promptLogprobs !== null) {
      promptLogprobs = [null];
      for (let i = 0; i + 1 < toEval.length; i++) {
        const raw = results.get(i)?.raw;
        const token = toEval[i + 1]!;
        if (!raw) throw new Error(`no logits for prompt position ${i}`);
        promptLogprobs.push({ token, logprob: raw.logprobs.get(token)!, rank: raw.ranks.get(token) ?? 0, top: raw.top });
      }
    }
    yield { type: "prompt", promptTokens: prompt.length, cachedTokens: reuse, promptLogprobs };
    if (!sampler) {
      ended = true;
      yield { type: "end", finishReason: "length", stopReason: null, text: "", completionTokens: 0 };
      return;
    }

    const text = new TextDecoderStream(engine, !params.skipSpecialTokens);
    const stops = new StopMatcher(params.stop, params.includeStopStrInOutput);
    const stopIds = new Set(params.stopTokenIds);
    let all = "";
    let produced = 0;
    let at = last;
    for (;;) {
      if (signal.aborted) throw new AbortedError();
      const r = results.get(at);
      if (!r || r.token === null) throw new Error("llama.cpp sampled no token");
      const id = r.token as Token;
      produced++;
      engine.stats.generatedTokens++;
      const tok: GeneratedToken = {
        id,
        logprob: r.raw ? r.raw.logprobs.get(id)! : null,
        top: r.raw ? r.raw.top : [],
      };
      let finish: FinishReason | null = null;
      let stopReason: string | number | null = null;
      let piece = "";
      if (stopIds.has(id)) {
        finish = "stop";
        stopReason = id;
      } else if (!params.ignoreEos && engine.isEog(id)) {
        finish = "stop";
      } else {
        const out = stops.push(text.push(id));
        piece = out.text;
        if (out.stop !== null) {
          finish = "stop";
          stopReason = out.stop;
        }
      }
      // A JSON grammar would allow trailing whitespace forever: stop once the value is complete.
      if (!finish && params.grammar && isCompleteJson(all + piece)) finish = "stop";
      if (!finish && produced >= maxTokens) finish = "length";
      if (finish && typeof stopReason !== "string") {
        // Ended by EOS, a stop token or length: what was held back is output after all.
        const out = stops.push(text.flush());
        piece += out.text;
        if (out.stop !== null) {
          finish = "stop";
          stopReason = out.stop;
        } else piece += stops.flush();
      }
      all += piece;
      yield { type: "tokens", tokens: [tok], text: piece };
      if (finish) {
        ended = true;
        yield { type: "end", finishReason: finish, stopReason, text: all, completionTokens: produced };
        return;
      }
      results = await decode(seq, [id], new Map([[0, { sampler, top, logprobs: wantLogprobs }]]), greedy);
      at = 0;
    }
  } catch (err) {
    if (err instanceof AbortedError || signal.aborted) engine.stats.aborted++;
    else engine.stats.failed++;
    ended = true;
    throw err;
  } finally {
    // A consumer that stops iterating early (client gone) lands here without an error.
    if (!ended) engine.stats.aborted++;
    sampler?.dispose();
    greedy.dispose();
    slot.releaseSequence(seq);
  }
}

function isCompleteJson(text: string): boolean {
  const t = text.trim();
  if (!t.endsWith("}") && !t.endsWith("]")) return false;
  try {
    JSON.parse(t);
    return true;
  } catch {
    return false;
  }
}

function commonPrefixOf(seq: LlamaContextSequence, prompt: readonly Token[]): number {
  const cached = seq.contextTokens;
  const n = Math.min(cached.length, prompt.length);
  let i = 0;
  while (i < n && cached[i] === prompt[i]) i++;
  return i;
}
