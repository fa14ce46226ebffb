// Per-token log-probs from real llama.cpp (node-llama-cpp), optionally with a GGUF LoRA adapter:
// the reference that the trainer engine's own scoring and our adapter files are checked against.
//
//   const ref = await openLlamaScorer(modelPath);
//   const base = await ref.logprobs(tokens);                  // log p(t_i | t_<i), i = 1..n-1
//   const tuned = await ref.logprobs(tokens, "adapter.gguf"); // same, with the LoRA applied (scale 1)
//   await ref.close();
//
// Log-probs are the raw T=1 log-softmax of the logits over the whole vocabulary, computed as
// logit[t] − maxLogit − ln Σ exp(logit − maxLogit) from node-llama-cpp's `controlledEvaluate`.
import { getLlama, type Llama, type LlamaModel, type Token } from "node-llama-cpp";

export interface LlamaScorer {
  llama: Llama;
  model: LlamaModel;
  /** log p(tokens[i] | tokens[<i]) for i = 1 … n−1, on a fresh context (with `loraFile` applied). */
  logprobs(tokens: number[], loraFile?: string | null): Promise<number[]>;
  close(): Promise<void>;
}

export async function openLlamaScorer(modelPath: string, opts: { threads?: number } = {}): Promise<LlamaScorer> {
  const llama = await getLlama({ build: "never", gpu: false });
  const model = await llama.loadModel({ modelPath });
  return {
    llama,
    model,
    async logprobs(tokens, loraFile) {
      if (tokens.length < 2) return [];
      const context = await model.createContext({
        contextSize: Math.max(256, tokens.length + 8),
        batchSize: Math.max(256, tokens.length + 8),
        threads: opts.threads ?? 2,
        ...(loraFile ? { lora: { adapters: [{ filePath: loraFile, scale: 1 }] } } : {}),
      });
      try {
        const seq = context.getSequence();
        const items = tokens.slice(0, -1).map(
          (t, i) =>
            [t as Token, { generateNext: { logits: { filter: { tokens: [tokens[i + 1] as Token], includeMax: true } }, totalLogitWeight: true } }] as const,
        );
        const out = await seq.controlledEvaluate(items as never);
        return out.map((r, i) => {
          const logits = r?.next.logits;
          const total = r?.next.totalLogitWeight;
          if (!logits || total === undefined) throw new Error(`llama.cpp returned no logits at position ${i}`);
          const max = Math.max(...logits.values());
          return logits.get(tokens[i + 1] as Token)! - max - Math.log(total);
        });
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
