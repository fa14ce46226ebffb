// Independent reference for the engine's log-probs, for tests: the same GGUF evaluated through
// node-llama-cpp's public API only (`controlledEvaluate` returning the full logits vector), with
// the log-softmax computed here in float64. Shares nothing with serve/llama-internals.ts but the
// model weights.
import type { ControlledEvaluateInputItem, LlamaModel, Token } from "node-llama-cpp";

export interface ReferencePosition {
  /** log p(next token) at T=1 over the whole vocabulary. */
  logprob: number;
  /** 1-based rank of the next token (1 + number of tokens with a larger logit). */
  rank: number;
  /** The rank if logits within 1e-3 of the token's were ordered either way (for comparing two evaluations). */
  rankBounds: [number, number];
  argmax: number;
  /** The top tokens, best first. */
  top: { token: number; logprob: number }[];
}

/**
 * For i in 1…n−1: the distribution after tokens[0..i−1], scored at tokens[i]. Entry i−1 of the
 * result describes position i. Runs on a fresh context (with `lora` applied when given).
 */
export async function referenceLogprobs(model: LlamaModel, tokens: number[], opts: { lora?: string; top?: number; from?: number } = {}): Promise<ReferencePosition[]> {
  const from = Math.max(1, opts.from ?? 1);
  const context = await model.createContext({
    contextSize: Math.max(256, tokens.length + 16),
    batchSize: Math.max(256, tokens.length + 16),
    ...(opts.lora ? { lora: { adapters: [{ filePath: opts.lora }] } } : {}),
  });
  try {
    const seq = context.getSequence();
    const items = tokens.slice(0, -1).map((t, i): ControlledEvaluateInputItem => (i + 1 >= from ? [t as Token, { generateNext: { logits: true } }] : (t as Token)));
    const out = await seq.controlledEvaluate(items);
    const result: ReferencePosition[] = [];
    for (let i = from - 1; i < tokens.length - 1; i++) {
      const logits = out[i]?.next.logits;
      if (!logits) throw new Error(`no logits at position ${i}`);
      let max = -Infinity;
      let argmax = -1;
      for (const [t, l] of logits) if (l > max) [max, argmax] = [l, t];
      let z = 0;
      for (const l of logits.values()) z += Math.exp(l - max);
      const logZ = max + Math.log(z);
      const target = tokens[i + 1]!;
      const lt = logits.get(target as Token);
      if (lt === undefined) throw new Error(`token ${target} missing from the logits`);
      let ahead = 0;
      let surelyAhead = 0;
      let maybeAhead = 0;
      for (const l of logits.values()) {
        if (l > lt) ahead++;
        if (l > lt + 1e-3) surelyAhead++;
        if (l > lt - 1e-3) maybeAhead++;
      }
      const top = [...logits.entries()]
        .sort((a, b) => b[1] - a[1])
        .slice(0, opts.top ?? 5)
        .map(([t, l]) => ({ token: t as number, logprob: l - logZ }));
      // maybeAhead counts the token itself.
      result.push({ logprob: lt - logZ, rank: ahead + 1, rankBounds: [surelyAhead + 1, maybeAhead], argmax, top });
    }
    return result;
  } finally {
    await context.dispose();
  }
}
