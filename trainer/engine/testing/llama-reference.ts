// Per-token log-probs from llama.cpp (node-llama-cpp, prebuilt CPU binary), the reference for the
// engine's forward pass and for adapter round trips.
//
// log p(next) = logit[next] − max logit − ln Σ exp(logit − max logit), from controlledEvaluate with
// `logits.filter = { tokens: [next], includeTop: 1 }` and `totalLogitWeight`. (`includeMax` is not
// the way to get the max: node-llama-cpp adds the max logit only when its token is already in
// the filter, so with it the target's own logit would pose as the max.)
import { getLlama, LlamaLogLevel, type ControlledEvaluateInputItem, type Llama, type LlamaModel, type Token } from "node-llama-cpp";

export interface LlamaReference {
  /** log p(tokens[i] | tokens[<i]) for i = from … n−1 (from ≥ 1), on a fresh context. */
  logprobs(tokens: number[], opts?: { from?: number; loraFile?: string | null; loraScale?: number }): Promise<number[]>;
  close(): Promise<void>;
}

export async function openLlamaReference(modelPath: string, opts: { threads?: number } = {}): Promise<LlamaReference> {
  const llama: Llama = await getLlama({ build: "never", gpu: false, logLevel: LlamaLogLevel.error });
  const model: LlamaModel = await llama.loadModel({ modelPath });
  return {
    async logprobs(tokens, o = {}) {
      const from = Math.max(1, o.from ?? 1);
      if (tokens.length <= from) return [];
      const size = Math.max(256, tokens.length + 8);
      const context = await model.createContext({
        contextSize: size,
        batchSize: size,
        threads: opts.threads ?? 2,
        ...(o.loraFile ? { lora: { adapters: [{ filePath: o.loraFile, scale: o.loraScale ?? 1 }] } } : {}),
      });
      try {
        const items = tokens.slice(0, -1).map((t, i): ControlledEvaluateInputItem =>
          i + 1 >= from
            ? [t as Token, { generateNext: { logits: { filter: { tokens: [tokens[i + 1] as Token], includeTop: 1 } }, totalLogitWeight: true } }]
            : (t as Token),
        );
        const out = await context.getSequence().controlledEvaluate(items);
        const result: number[] = [];
        for (let i = from - 1; i < tokens.length - 1; i++) {
          const next = out[i]?.next;
          const target = next?.logits?.get(tokens[i + 1] as Token);
          if (!next?.logits || target === undefined || next.totalLogitWeight === undefined) {
            throw new Error(`llama.cpp returned no logits at position ${i}`);
          }
          const max = Math.max(...next.logits.values());
          result.push(target - max - Math.log(next.totalLogitWeight));
        }
        return result;
      } finally {
        await context.dispose();
      }
    },
    async close() {
      await model.dispose();
      await llama.dispose();
    },
  };
}
