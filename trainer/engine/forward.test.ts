// The engine's forward pass on the real SmolLM2-135M-Instruct (Q4_1 GGUF) against llama.cpp on
// the same tokens.
//
// Two llama.cpp references, same run:
//  - the original Q4_1 file. llama.cpp multiplies Q4_1 weights with activations it first
//    quantizes to 8 bits (Q8_1, per 32-value block), so its arithmetic is not f32 arithmetic on
//    the dequantized weights, which is what we compute;
//  - an F32 copy of the same file (every tensor dequantized by our reader, nothing else changed).
//    llama.cpp then runs f32 matmuls on exactly our weights; what remains is its f16 KV cache
//    (K and V rounded to 11 significant bits) and summation order.
// So the bound that holds us to the same function is the one against the F32 copy: mean |Δ| ≤
// 5e-3 and max |Δ| ≤ 5e-2 nats (f16 rounding of K/V, ~5e-4 relative, through 30 layers; measured
// ≈1.4e-3 / 1.6e-2). Against the Q4_1 file the gap is llama.cpp's own quantized-vs-f32 gap,
// measured here in the same run; we require ours to be within it plus the F32 tolerance.
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureSmolLM2 } from "../../test/support/model-fixture.js";
import { Engine, loadModel, type LoadedModel } from "./index.js";
import { ensureDequantizedGguf } from "./testing/dequantized-gguf.js";
import { openLlamaReference } from "./testing/llama-reference.js";

const CONVERSATIONS = [
  [
    { role: "system", content: "You are a helpful assistant." },
    { role: "user", content: "What is the capital of France? Answer in one sentence." },
    { role: "assistant", content: "The capital of France is Paris, a city famous for the Eiffel Tower." },
  ],
  [
    { role: "user", content: "Write a short poem about the sea, four lines." },
    { role: "assistant", content: "Waves roll in with silver light,\nGulls cry out in morning flight,\nSalt and foam upon the shore,\nThe sea keeps singing evermore." },
  ],
  [
    { role: "user", content: "List three prime numbers greater than 10 and explain how you checked them." },
    { role: "assistant", content: "11, 13 and 17. None is divisible by 2, 3 or any other number up to its square root." },
    { role: "user", content: "Now write a TypeScript function that checks primality." },
    {
      role: "assistant",
      content: "function isPrime(n: number): boolean {\n  if (n < 2) return false;\n  for (let d = 2; d * d <= n; d++) if (n % d === 0) return false;\n  return true;\n}",
    },
  ],
];

interface Gap {
  mean: number;
  max: number;
}

function gap(a: number[][], b: number[][]): Gap {
  let n = 0;
  let sum = 0;
  let max = 0;
  a.forEach((xs, i) =>
    xs.forEach((x, j) => {
      const d = Math.abs(x - b[i]![j]!);
      sum += d;
      n++;
      max = Math.max(max, d);
    }),
  );
  return { mean: sum / n, max };
}

describe("forward pass on SmolLM2-135M-Instruct Q4_1 against llama.cpp", () => {
  let modelPath: string;
  let model: LoadedModel;
  let engine: Engine;
  let sequences: number[][];

  beforeAll(async () => {
    modelPath = process.env.CLAWLOOP_TEST_MODEL ?? (await ensureSmolLM2());
    model = await loadModel(modelPath);
    engine = await Engine.create({ model, lora: { rank: 8, alpha: 16, targets: ["q", "v"] }, threads: 2, maxTokens: 512 });
    sequences = CONVERSATIONS.map((c) => model.tokenizer.encodeChat(c, { addGenerationPrompt: false }));
  });

  afterAll(() => {
    engine?.close();
    model?.close();
  });

  it("matches llama.cpp on the same weights, and on Q4_1 within llama.cpp's own quantization gap", async () => {
    // Score every token after the first.
    const ours = await engine.score(
      sequences.map((s) => ({ promptIds: s.slice(0, 1), responseIds: s.slice(1) })),
      null,
    );
    const f32Path = ensureDequantizedGguf(modelPath, path.dirname(modelPath));
    const score = async (file: string) => {
      const ref = await openLlamaReference(file);
      try {
        const out: number[][] = [];
        for (const s of sequences) out.push(await ref.logprobs(s));
        return out;
      } finally {
        await ref.close();
      }
    };
    const llamaQ41 = await score(modelPath);
    const llamaF32 = await score(f32Path);

    const vsF32 = gap(ours, llamaF32);
    const vsQ41 = gap(ours, llamaQ41);
    const quantization = gap(llamaF32, llamaQ41);
    const tokens = ours.reduce((n, xs) => n + xs.length, 0);
    console.log(
      `forward vs llama.cpp over ${tokens} tokens: F32 copy mean ${vsF32.mean.toExponential(2)} max ${vsF32.max.toExponential(2)}; ` +
        `Q4_1 mean ${vsQ41.mean.toFixed(4)} max ${vsQ41.max.toFixed(3)}; llama.cpp's own Q4_1-vs-F32 gap mean ${quantization.mean.toFixed(4)} max ${quantization.max.toFixed(3)}`,
    );
    expect(tokens).toBeGreaterThan(150);
    expect(ours.every((xs, i) => xs.length === sequences[i]!.length - 1)).toBe(true);

    // Same weights, f32 arithmetic: tight.
    expect(vsF32.mean).toBeLessThan(5e-3);
    expect(vsF32.max).toBeLessThan(5e-2);
    // Q4_1 file: within what llama.cpp's quantized arithmetic moves its own log-probs, plus the above.
    expect(vsQ41.mean).toBeLessThanOrEqual(quantization.mean + 5e-3);
    expect(vsQ41.max).toBeLessThanOrEqual(quantization.max + 5e-2);
    // And that gap is what 8-bit activations do to a 135M model, not a broken file: small on average.
    expect(quantization.mean).toBeLessThan(0.2);
  }, 600_000);
});
