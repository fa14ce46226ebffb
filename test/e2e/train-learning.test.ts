// Learning, measured on the real model: SmolLM2-135M-Instruct (Q4_1 GGUF) through the real
// engine, with samples built exactly as the train loop builds them (chat template, hint block).
//
// The preferred kind of answer is short ("Paris."); the other kind is long and padded ("Great
// question! … I hope this helps!"). Eight training questions give sixteen samples (+1 short,
// −1 long); four held-out questions, with a short and a long answer each, are only measured.
// Each mode trains a fresh adapter (rank 8, all seven projections) for 4 steps of 8 samples at
// lr 1e-3 (the default 5e-5 is for a live loop that steps for days; here 4 steps must show).
//
// Measured on held-out questions, per response token (mean log-prob):
// - rl: the short answers' log-prob rises and the long answers' falls;
// - opd: (hint "Answer in as few words as possible.", every sample r = 0) the teacher–student gap,
//   mean |log π(a | question + hint) − log π(a | question)| over the held-out answers' tokens,
//   shrinks: the student without the hint moves toward what the hint asks for;
// - combined: both.
// And a neutral paragraph (no chat template, unrelated to the task) keeps its per-token NLL
// within 0.1 nats (perplexity within ×1.105): the adapter should shape how the model answers,
// not its general language. Measured on this machine: |ΔNLL| 0.02–0.07 across the modes, while
// the task effects are 0.4–3 nats per token (see the printed table).
//
// The second part measures π_old's choice: llama.cpp's log-probs (what a llama.cpp-based server
// returns as behaviour log-probs) against the engine's fp32 recompute on the same tokens.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LoraAdapter } from "../../adapters/index.js";
import { loadConfig, type ChatMessage, type Sample, type TrainMode } from "../../core/index.js";
import type { ScoreItem, TrainEngine } from "../../trainer/compute.js";
import { appendHint } from "../../trainer/hint.js";
import type { LoadedModel } from "../../trainer/engine/model/types.js";
import { openLlamaReference } from "../../trainer/engine/testing/llama-reference.js";
import { offlineBatches } from "../../trainer/offline.js";
import { realBackend } from "../../trainer/real-backend.js";
import { renderExchange } from "../../trainer/index.js";
import { buildSample } from "../../trainer/samples.js";
import { stepSettings } from "../../trainer/loop.js";
import { trainOnBatch } from "../../trainer/step.js";

const HINT = "Answer in as few words as possible.";
const SYSTEM = "You are a helpful assistant.";

// [question, short (preferred), long (dispreferred)]
const TRAIN: [string, string, string][] = [
  ["What is the capital of France?", "Paris.", "Great question! The capital of France is Paris, a famous center of art and culture. I hope this helps!"],
  ["How many legs does a spider have?", "Eight.", "Great question! Spiders are arachnids, and like all arachnids they have eight legs. I hope this helps!"],
  ["What color is the sky on a clear day?", "Blue.", "Great question! On a clear day the sky looks blue because air scatters blue sunlight the most. I hope this helps!"],
  ["What is 3 times 4?", "12.", "Great question! Three times four means adding four three times, which gives twelve. I hope this helps!"],
  ["Which planet is closest to the Sun?", "Mercury.", "Great question! The planet closest to the Sun is Mercury, a small rocky world. I hope this helps!"],
  ["What do bees make?", "Honey.", "Great question! Bees make honey from the nectar of flowers and store it in their hives. I hope this helps!"],
  ["What is the freezing point of water in Celsius?", "0 °C.", "Great question! Under normal pressure, pure water freezes at zero degrees Celsius. I hope this helps!"],
  ["Who wrote Romeo and Juliet?", "Shakespeare.", "Great question! Romeo and Juliet was written by William Shakespeare in the 1590s. I hope this helps!"],
];
const HELD_OUT: [string, string, string][] = [
  ["What is the largest ocean on Earth?", "The Pacific.", "Great question! The largest ocean on Earth is the Pacific Ocean, which covers a third of the planet. I hope this helps!"],
  ["How many days are in a week?", "Seven.", "Great question! A week has seven days, a convention that goes back to ancient Babylon. I hope this helps!"],
  ["What gas do plants absorb from the air?", "Carbon dioxide.", "Great question! Plants absorb carbon dioxide from the air and turn it into sugar with sunlight. I hope this helps!"],
  ["What is the opposite of hot?", "Cold.", "Great question! The opposite of hot is cold, though people also say cool or chilly. I hope this helps!"],
];
const NEUTRAL =
  "The river runs through the middle of the old town, past the market square and the stone bridge. In spring the water rises " +
  "with melting snow from the hills, and in late summer it slows to a shallow stream where children wade and fish.";

const NEUTRAL_BOUND = 0.1;
const STEPS = 4;
const BATCH = 8;
const LR = 1e-3;
const SHAPE = { rank: 8, alpha: 16, targets: ["q", "k", "v", "o", "gate", "up", "down"] as const };

const messages = (q: string): ChatMessage[] => [
  { role: "system", content: SYSTEM },
  { role: "user", content: q },
];
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

let model: LoadedModel;
let engine: TrainEngine;

interface Measure {
  short: number;
  long: number;
  gap: number;
  neutralNll: number;
}

let evalItems: ScoreItem[];
let teacherItems: ScoreItem[];
let neutralItem: ScoreItem;

async function measure(adapter: LoraAdapter): Promise<Measure> {
  const all = await engine.score([...evalItems, ...teacherItems, neutralItem], adapter);
  const n = evalItems.length;
  const student = all.slice(0, n);
  const teacher = all.slice(n, 2 * n);
  return {
    short: mean(student.filter((_, i) => i % 2 === 0).map(mean)),
    long: mean(student.filter((_, i) => i % 2 === 1).map(mean)),
    gap: mean(student.map((s, i) => mean(s.map((lp, t) => Math.abs(teacher[i]![t]! - lp))))),
    neutralNll: -mean(all[2 * n]!),
  };
}

function trainingSamples(mode: TrainMode): Sample[] {
  const tok = model.tokenizer;
  return TRAIN.flatMap(([q, short, long], i) =>
    ([[`short-${i}`, short, 1], [`long-${i}`, long, -1]] as const).map(([id, answer, reward]) => {
      const r = buildSample(
        {
          id,
          turnId: id,
          messages: messages(q),
          reply: { content: answer, toolCalls: [], reasoning: null },
          reward: mode === "opd" ? 0 : reward,
          hint: mode === "rl" ? null : HINT,
        },
        { mode, tokenizer: tok, maxTokens: 256 },
      );
      if (!("sample" in r)) throw new Error(`${id}: ${r.detail}`);
      return r.sample;
    }),
  );
}

async function train(mode: TrainMode): Promise<{ before: Measure; after: Measure }> {
  const config = loadConfig({ env: {}, flags: { dataDir: "/nonexistent", train: { mode, lr: LR, ...SHAPE, targets: [...SHAPE.targets], maxTokens: 256 } } });
  const adapter = realBackend.newAdapter(model, { ...SHAPE, targets: [...SHAPE.targets] }, 0);
  const optimizer = realBackend.createOptimizer(config.train);
  const before = await measure(adapter);
  for (const batch of offlineBatches(trainingSamples(mode), BATCH, STEPS, 1)) {
    await trainOnBatch(engine, optimizer, adapter, batch, stepSettings(config));
  }
  const after = await measure(adapter);
  const f = (x: number) => x.toFixed(3);
  console.log(
    `${mode.padEnd(8)} short ${f(before.short)} → ${f(after.short)} | long ${f(before.long)} → ${f(after.long)} | ` +
      `gap ${f(before.gap)} → ${f(after.gap)} | neutral NLL ${f(before.neutralNll)} → ${f(after.neutralNll)}`,
  );
  return { before, after };
}

beforeAll(async () => {
  const file = process.env.CLAWLOOP_TEST_MODEL;
  if (!file) throw new Error("CLAWLOOP_TEST_MODEL is not set (test/support/global-setup.ts fetches the model)");
  model = await realBackend.loadModel(file);
  const config = loadConfig({ env: {}, flags: { dataDir: "/nonexistent", train: { maxTokens: 256 } } });
  engine = await realBackend.createEngine(model, { ...SHAPE, targets: [...SHAPE.targets] }, config.train);
  const tok = model.tokenizer;
  evalItems = HELD_OUT.flatMap(([q, s, l]) => [s, l].map((a) => renderExchange(tok, messages(q), { role: "assistant", content: a })));
  teacherItems = HELD_OUT.flatMap(([q, s, l]) =>
    [s, l].map((a) => ({
      promptIds: tok.encodeChat(appendHint(messages(q), HINT), { addGenerationPrompt: true }),
      responseIds: renderExchange(tok, messages(q), { role: "assistant", content: a }).responseIds,
    })),
  );
  neutralItem = { promptIds: [tok.bosTokenId ?? tok.eosTokenIds[0]!], responseIds: tok.encode(NEUTRAL, { parseSpecial: false }) };
});

afterAll(async () => {
  await engine?.close?.();
  model?.close();
});

describe("learning on SmolLM2-135M-Instruct (held-out questions)", () => {
  it("binary RL raises the preferred kind's log-prob and lowers the other's", async () => {
    const { before, after } = await train("rl");
    expect(after.short - before.short).toBeGreaterThan(0.5);
    expect(after.long - before.long).toBeLessThan(-0.1);
    expect(Math.abs(after.neutralNll - before.neutralNll)).toBeLessThan(NEUTRAL_BOUND);
  }, 900_000);

  it("distillation shrinks the teacher–student gap for the same hint", async () => {
    const { before, after } = await train("opd");
    expect(after.gap).toBeLessThan(0.7 * before.gap);
    expect(Math.abs(after.neutralNll - before.neutralNll)).toBeLessThan(NEUTRAL_BOUND);
  }, 900_000);

  it("combined does both", async () => {
    const { before, after } = await train("combined");
    expect(after.short - before.short).toBeGreaterThan(0.5);
    expect(after.long - before.long).toBeLessThan(-0.1);
    expect(after.gap).toBeLessThan(0.7 * before.gap);
    expect(Math.abs(after.neutralNll - before.neutralNll)).toBeLessThan(NEUTRAL_BOUND);
  }, 900_000);
});

describe("samples with the model's own chat template", () => {
  it("takes a turn that ends in tool calls, with the call as the template renders it, and its teacher prompt", () => {
    const tools = [{ type: "function", function: { name: "read_file", description: "Read a file", parameters: { type: "object", properties: { path: { type: "string" } } } } }];
    const call = { id: "c1", type: "function" as const, function: { name: "read_file", arguments: '{"path": "notes.txt"}' } };
    const r = buildSample(
      { id: "t", turnId: "t", messages: messages("What is in notes.txt?"), tools, reply: { content: "", toolCalls: [call], reasoning: null }, reward: -1, hint: "Check the file first." },
      { mode: "combined", tokenizer: model.tokenizer, maxTokens: 1024 },
    );
    if (!("sample" in r)) throw new Error(r.detail);
    const response = model.tokenizer.decode(r.sample.responseTokenIds);
    expect(response).toMatch(/^<tool_call>\n\{"name": "read_file", "arguments": \{"path": "notes.txt"\}\}\n<\/tool_call><\|im_end\|>$/);
    const teacher = model.tokenizer.decode(r.sample.teacherPromptTokenIds!);
    expect(teacher).toContain("What is in notes.txt?\n\n[user's hint / instruction]\nCheck the file first.<|im_end|>");
    expect(teacher).toContain("read_file"); // the tools are rendered for the teacher too
  });
});

describe("π_old: the server's behaviour log-probs vs the engine's recompute", () => {
  it("measures llama.cpp (Q4_1) against the engine (fp32 on the dequantized weights), and records the gap per step", async () => {
    const samples = trainingSamples("rl");
    const llama = await openLlamaReference(process.env.CLAWLOOP_TEST_MODEL!);
    try {
      for (const s of samples) {
        s.behaviourLogprobs = await llama.logprobs([...s.promptTokenIds, ...s.responseTokenIds], { from: s.promptTokenIds.length });
      }
    } finally {
      await llama.close();
    }
    const adapter = realBackend.newAdapter(model, { ...SHAPE, targets: [...SHAPE.targets] }, 0);
    const engineLp = await engine.score(samples.map((s) => ({ promptIds: s.promptTokenIds, responseIds: s.responseTokenIds })), adapter);
    const deltas = samples.flatMap((s, i) => s.behaviourLogprobs!.map((b, t) => engineLp[i]![t]! - b));
    const meanAbs = mean(deltas.map(Math.abs));
    // Tokens whose ratio π_engine/π_server already lies outside PPO's band [1 − 0.2, 1 + 0.28]
    // before any update: with the server's log-probs as π_old they would start clipped.
    const outside = deltas.filter((d) => d < Math.log(0.8) || d > Math.log(1.28)).length / deltas.length;
    console.log(
      `server (llama.cpp Q4_1) vs engine (fp32): ${deltas.length} tokens, mean |Δ| ${meanAbs.toFixed(4)}, ` +
        `max |Δ| ${Math.max(...deltas.map(Math.abs)).toFixed(3)}, ratio outside [0.8, 1.28] on ${(100 * outside).toFixed(1)}% of tokens`,
    );
    expect(deltas.length).toBeGreaterThan(100);

    // The step records exactly this mismatch (the adapter is fresh, so the engine scores the base).
    const config = loadConfig({ env: {}, flags: { dataDir: "/nonexistent", train: { mode: "rl", lr: LR, ...SHAPE, targets: [...SHAPE.targets], maxTokens: 256 } } });
    const optimizer = realBackend.createOptimizer(config.train);
    const batch = samples.slice(0, 4);
    const expected = mean(batch.flatMap((s, i) => s.behaviourLogprobs!.map((b, t) => Math.abs(engineLp[i]![t]! - b))));
    const out = await trainOnBatch(engine, optimizer, adapter, batch, stepSettings(config));
    expect(out.behaviourMismatch).not.toBeNull();
    expect(out.behaviourMismatch!).toBeCloseTo(expected, 6);
  }, 900_000);
});
