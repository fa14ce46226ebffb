// Adapter round trip on the real SmolLM2-135M-Instruct: train a LoRA for a few real steps with the
// engine and AdamW, write it as a GGUF LoRA with the adapters' writer, load it into llama.cpp, and
// check that it moves llama.cpp's log-probs as the engine predicts: per token,
// δ = log π_adapter − log π_base, ours against llama.cpp's.
//
// Against llama.cpp on an F32 copy of the base (the weights we compute with), the deltas must
// agree tightly: same function, f32 arithmetic, f16 KV cache. Against the Q4_1 file, llama.cpp's
// 8-bit activation rounding perturbs base and adapted runs alike, so deltas still agree closely.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeGgufLora } from "../../adapters/index.js";
import { ensureSmolLM2 } from "../../test/support/model-fixture.js";
import { AdamW, Engine, loadModel, type LoadedModel, type TrainItem } from "./index.js";
import { ensureDequantizedGguf } from "./testing/dequantized-gguf.js";
import { openLlamaReference } from "./testing/llama-reference.js";

const TRAIN = [
  {
    messages: [{ role: "user", content: "Say hello to the team in one short sentence." }],
    reply: "Hello team, great to be working with all of you!",
    advantage: 1,
  },
  {
    messages: [{ role: "user", content: "What is 7 times 8?" }],
    reply: "7 times 8 is 54.",
    advantage: -1,
  },
];
const HELD_OUT = [
  { role: "user", content: "Greet the new colleague, please." },
  { role: "assistant", content: "Welcome aboard! We are glad to have you with us." },
];

function stats(a: number[][], b: number[][]) {
  let n = 0;
  let sum = 0;
  let max = 0;
  let dot = 0;
  let na = 0;
  let nb = 0;
  a.forEach((xs, i) =>
    xs.forEach((x, j) => {
      const y = b[i]![j]!;
      const d = Math.abs(x - y);
      n++;
      sum += d;
      max = Math.max(max, d);
      dot += x * y;
      na += x * x;
      nb += y * y;
    }),
  );
  return { mean: sum / n, max, cosine: dot / Math.sqrt(na * nb) };
}

const minus = (a: number[][], b: number[][]) => a.map((xs, i) => xs.map((x, j) => x - b[i]![j]!));
const meanAbs = (a: number[][]) => a.flat().reduce((s, x) => s + Math.abs(x), 0) / a.flat().length;

describe("GGUF LoRA round trip through llama.cpp", () => {
  let modelPath: string;
  let model: LoadedModel;
  let engine: Engine;
  let dir: string;

  beforeAll(async () => {
    modelPath = process.env.CLAWLOOP_TEST_MODEL ?? (await ensureSmolLM2());
    model = await loadModel(modelPath);
    engine = await Engine.create({ model, lora: { rank: 8, alpha: 16, targets: ["q", "k", "v", "o", "gate", "up", "down"] }, threads: 2, maxTokens: 256 });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "clawloop-roundtrip-"));
  });

  afterAll(() => {
    engine?.close();
    model?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it("shifts llama.cpp's log-probs the way the engine predicts", async () => {
    const tok = model.tokenizer;
    const items = TRAIN.map((t) => {
      const promptIds = tok.encodeChat(t.messages, { addGenerationPrompt: true });
      const full = tok.encodeChat([...t.messages, { role: "assistant", content: t.reply }], { addGenerationPrompt: false });
      expect(full.slice(0, promptIds.length)).toEqual(promptIds);
      return { promptIds, responseIds: full.slice(promptIds.length), advantage: t.advantage };
    });

    // A few real steps: on-policy old log-probs, binary-RL advantages, AdamW.
    const adapter = engine.newAdapter(42, model.name);
    const optimizer = new AdamW({ lr: 1e-3, weightDecay: 0.01 });
    for (let step = 0; step < 3; step++) {
      const old = await engine.score(items, adapter);
      const batch: TrainItem[] = items.map((it, i) => ({
        promptIds: it.promptIds,
        responseIds: it.responseIds,
        advantages: it.responseIds.map(() => it.advantage),
        oldLogprobs: old[i]!,
      }));
      const r = await engine.trainStep(batch, adapter, { epsLow: 0.2, epsHigh: 0.28, klCoef: 0 });
      expect(Number.isFinite(r.loss)).toBe(true);
      optimizer.step(adapter, r.gradients);
    }

    const file = path.join(dir, "adapter.gguf");
    const c = model.weights.config;
    writeGgufLora(file, adapter, { architecture: c.architecture, numHeads: c.numHeads, numKvHeads: c.numKvHeads });

    const sequences = [
      ...items.map((it) => [...it.promptIds, ...it.responseIds]),
      tok.encodeChat(HELD_OUT, { addGenerationPrompt: false }),
    ];
    const asItems = sequences.map((s) => ({ promptIds: s.slice(0, 1), responseIds: s.slice(1) }));
    const ours = minus(await engine.score(asItems, adapter), await engine.score(asItems, null));

    const deltas = async (base: string) => {
      const ref = await openLlamaReference(base);
      try {
        const out: number[][] = [];
        for (const s of sequences) out.push(minus([await ref.logprobs(s, { loraFile: file })], [await ref.logprobs(s)])[0]!);
        return out;
      } finally {
        await ref.close();
      }
    };
    const f32 = await deltas(ensureDequantizedGguf(modelPath, path.dirname(modelPath)));
    const q41 = await deltas(modelPath);

    const shift = meanAbs(ours);
    const vsF32 = stats(ours, f32);
    const vsQ41 = stats(ours, q41);
    console.log(
      `adapter round trip: mean |δ| ours ${shift.toFixed(4)}; vs llama.cpp F32 base mean |Δδ| ${vsF32.mean.toExponential(2)} max ${vsF32.max.toExponential(2)} cos ${vsF32.cosine.toFixed(5)}; ` +
        `vs Q4_1 base mean |Δδ| ${vsQ41.mean.toFixed(4)} max ${vsQ41.max.toFixed(3)} cos ${vsQ41.cosine.toFixed(4)}`,
    );
    // The adapter really moves the model (rewarded reply up, penalized reply down)…
    expect(shift).toBeGreaterThan(0.05);
    // …and llama.cpp, given our GGUF, moves the same way by the same amounts.
    expect(vsF32.mean).toBeLessThan(5e-3 + 0.02 * shift);
    expect(vsF32.max).toBeLessThan(5e-2 + 0.1 * Math.max(...ours.flat().map(Math.abs)));
    expect(vsF32.cosine).toBeGreaterThan(0.999);
    expect(vsQ41.cosine).toBeGreaterThan(0.95);
    expect(vsQ41.mean).toBeLessThan(0.25 * shift + 0.01);
  }, 600_000); // ~40 s alone; a shared 2-core CI machine can stretch it several times
});
