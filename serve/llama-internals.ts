// The few node-llama-cpp internals the engine relies on, in one place.
//
// Why: a server that reports vLLM-style log-probs must sample with the request's settings
// (temperature, top-p, penalties…) and, from the SAME logits, report the raw T=1 log-softmax of
// the sampled token and its top alternatives. node-llama-cpp's public API reads the logits of a
// position once, through one sampler chain, and reports values after that chain (scaled and
// truncated). So each decode step here samples twice from the same logits: once with the request's
// chain (which picks the token) and once with a bare greedy chain (which leaves the logits raw and
// yields the log-probs). It also frees a LoRA's weights once no context uses it, which the public
// API only does when the whole model is disposed (a leak when adapters are hot-swapped for hours).
//
// Tested against node-llama-cpp 3.22.x (pinned in package.json); `assertSupported` fails loudly at
// start-up if a different version changed these shapes, and serve/engine.test.ts exercises all of it.
import type { LlamaContextSequence, LlamaModel, Token } from "node-llama-cpp";

interface AddonSampler {
  applyConfig(config: Record<string, unknown>): void;
  dispose(): void;
}

type LogitsSpec = boolean | [tokens: number[], includeMax: boolean, includeMin: boolean, includeSelected: boolean, includeTop: number];

interface AddonContext {
  sampleToken(
    batchLogitIndex: number,
    sampler: AddonSampler,
    probabilities?: boolean,
    confidence?: boolean,
    logits?: LogitsSpec,
    totalLogitWeight?: boolean,
  ): Promise<number | [number, unknown, unknown, number[] | undefined, number | undefined]>;
}

interface SequenceInternals {
  _context: { _ctx: AddonContext };
  _contextShift: unknown;
  _decodeTokens(
    tokens: Token[],
    logits: (true | undefined)[],
    evaluationPriority: number,
    tokenMeter: unknown,
    contextShiftOptions: unknown,
    logitDataMapper: (batchLogitIndex: number, tokenIndex: number) => Promise<unknown> | unknown,
    afterBatchAction?: unknown,
  ): Promise<unknown[]>;
}

interface ModelInternals {
  _model: unknown;
  _llama: { _bindings: { AddonSampler: new (model: unknown) => AddonSampler } };
  _loraAdapters: Map<string, { dispose(): Promise<void>; usages: number }>;
}

export class UnsupportedLlamaError extends Error {}

/** Throws a clear error if this node-llama-cpp does not have the internals the engine uses. */
export function assertSupported(model: LlamaModel, seq: LlamaContextSequence): void {
  const m = model as unknown as Partial<ModelInternals>;
  const s = seq as unknown as Partial<SequenceInternals>;
  const missing: string[] = [];
  if (typeof m._llama?._bindings?.AddonSampler !== "function") missing.push("AddonSampler");
  if (!(m._loraAdapters instanceof Map)) missing.push("LlamaModel._loraAdapters");
  if (typeof s._decodeTokens !== "function") missing.push("LlamaContextSequence._decodeTokens");
  if (typeof s._context?._ctx?.sampleToken !== "function") missing.push("AddonContext.sampleToken");
  if (missing.length) {
    throw new UnsupportedLlamaError(
      `this node-llama-cpp build lacks ${missing.join(", ")}; clawloop serve needs node-llama-cpp 3.22.x`,
    );
  }
}

/** Sampler settings in the addon's own terms (see AddonSampler::ApplyConfig). Absent = off. */
export interface SamplerConfig {
  /** ≤ 0: greedy. */
  temperature: number;
  topK?: number;
  topP?: number;
  minP?: number;
  seed: number;
  repeatPenalty?: number;
  repeatPenaltyTokens?: Uint32Array;
  repeatPenaltyMaxTokens?: number;
  repeatPenaltyPresencePenalty?: number;
  repeatPenaltyFrequencyPenalty?: number;
  tokenBiasKeys?: Uint32Array;
  tokenBiasValues?: Float32Array;
  /** `LlamaGrammarEvaluationState._state` of a grammar constraining the output. */
  grammarEvaluationState?: unknown;
}

/** A native sampler chain; dispose it when the request ends. */
export class NativeSampler {
  private readonly sampler: AddonSampler;
  private disposed = false;

  constructor(model: LlamaModel) {
    const m = model as unknown as ModelInternals;
    this.sampler = new m._llama._bindings.AddonSampler(m._model);
  }

  /** Applies settings; unchanged settings keep their state (the seeded RNG is not re-seeded). */
  configure(config: SamplerConfig): void {
    const clean: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(config)) if (v !== undefined) clean[k] = v;
    this.sampler.applyConfig(clean);
  }

  get native(): AddonSampler {
    return this.sampler;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.sampler.dispose();
  }
}

/** Raw (T=1, unfiltered) next-token log-probs at one position. */
export interface RawLogprobs {
  /** log p of each requested token. */
  logprobs: Map<number, number>;
  /** The `top` most likely tokens, best first. */
  top: { token: number; logprob: number }[];
  /** 1-based rank of each `score` token in the distribution (only when ranks were asked for). */
  ranks: Map<number, number>;
}

/** What to read at a position whose logits are computed. */
export interface PositionRequest {
  /** Sample the next token with this sampler (the last position of a step). */
  sampler?: NativeSampler;
  /** Tokens whose raw log-probs to report (besides a sampled one). */
  score?: number[];
  /** How many top alternatives to report (0: none). */
  top: number;
  /** Report raw log-probs at all (sampling alone does not need them). */
  logprobs: boolean;
  /** Also report the exact rank of the `score` tokens. */
  ranks?: boolean;
}

export interface PositionResult {
  token: number | null;
  raw: RawLogprobs | null;
}

/**
 * Evaluates `tokens` on the sequence (appending to what it holds) and, at each index listed in
 * `positions`, reads the logits: samples with the request's chain and/or reports raw log-probs.
 * The caller owns the sequence: no other evaluation may run on it meanwhile.
 */
export async function decode(
  seq: LlamaContextSequence,
  tokens: Token[],
  positions: Map<number, PositionRequest>,
  greedy: NativeSampler,
): Promise<Map<number, PositionResult>> {
  const s = seq as unknown as SequenceInternals;
  const ctx = s._context._ctx;
  const logits: (true | undefined)[] = [];
  for (const i of positions.keys()) logits[i] = true;
  const results = new Map<number, PositionResult>();
  await s._decodeTokens(
    tokens,
    logits,
    5,
    seq.tokenMeter,
    s._contextShift,
    async (batchLogitIndex: number, tokenIndex: number) => {
      const req = positions.get(tokenIndex);
      if (!req) return undefined;
      let token: number | null = null;
      if (req.sampler) {
        const sampled = await ctx.sampleToken(batchLogitIndex, req.sampler.native);
        const id = typeof sampled === "number" ? sampled : sampled[0];
        token = id < 0 ? null : id;
      }
      let raw: RawLogprobs | null = null;
      if (req.logprobs) {
        const wanted = [...(req.score ?? [])];
        if (token != null) wanted.push(token);
        // The greedy chain leaves logits untouched, so these are raw; its selected token is the
        // arg-max, whose logit normalizes: log p(x) = l(x) − l(max) − ln Σ exp(l − l(max)).
        const out = await ctx.sampleToken(batchLogitIndex, greedy.native, false, false, [wanted, false, false, true, req.top], true);
        if (typeof out === "number") throw new Error("node-llama-cpp returned no logits");
        const [argmax, , , pairs, total] = out;
        if (!pairs || total === undefined) throw new Error("node-llama-cpp returned no logits");
        const logitOf = new Map<number, number>();
        for (let i = 0; i + 1 < pairs.length; i += 2) logitOf.set(pairs[i]!, pairs[i + 1]!);
        const max = logitOf.get(argmax);
        if (max === undefined) throw new Error("node-llama-cpp did not return the arg-max logit");
        const logZ = max + Math.log(total);
        const logprobs = new Map<number, number>();
        for (const t of wanted) {
          const l = logitOf.get(t);
          logprobs.set(t, l === undefined ? -Infinity : l - logZ);
        }
        const top = [...logitOf.entries()]
          .sort((a, b) => b[1] - a[1])
          .slice(0, req.top)
          .map(([t, l]) => ({ token: t, logprob: l - logZ }));
        const ranks = new Map<number, number>();
        if (req.ranks && req.score?.length) {
          const sorted = [...logitOf.entries()].sort((a, b) => b[1] - a[1]);
          let full: number[] | null = null;
          for (const t of req.score) {
            const l = logitOf.get(t)!;
            const at = sorted.findIndex(([tok]) => tok === t);
            // Ties count as ahead only when strictly greater, so the rank is 1 + #(logit > l).
            if (at >= 0 && at < req.top) {
              ranks.set(t, 1 + sorted.filter(([, v]) => v > l).length);
              continue;
            }
            if (t === argmax) {
              ranks.set(t, 1);
              continue;
            }
            // Outside the top list: count over the whole vocabulary (rare, and only for prompt log-probs).
            if (!full) {
              const all = await ctx.sampleToken(batchLogitIndex, greedy.native, false, false, true, false);
              if (typeof all === "number" || !all[3]) throw new Error("node-llama-cpp returned no logits");
              full = all[3];
            }
            let ahead = 0;
            for (let i = 1; i < full.length; i += 2) if (full[i]! > l) ahead++;
            ranks.set(t, 1 + ahead);
          }
        }
        raw = { logprobs, top, ranks };
      }
      results.set(tokenIndex, { token, raw });
      return undefined;
    },
  );
  return results;
}

/** Frees a LoRA's weights held by the model; call only when no context uses it any more. */
export async function releaseLora(model: LlamaModel, resolvedPath: string): Promise<boolean> {
  const m = model as unknown as ModelInternals;
  const lora = m._loraAdapters.get(resolvedPath);
  if (!lora) return false;
  m._loraAdapters.delete(resolvedPath);
  await lora.dispose();
  return true;
}
