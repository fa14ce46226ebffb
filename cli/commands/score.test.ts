// `clawloop score` on the real SmolLM2-135M-Instruct: rendering with the chat template, per-line
// errors that leave the other lines scored, a PEFT adapter read from disk, and the command itself.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readPeftAdapter, seededRandom, writePeftAdapter } from "../../adapters/index.js";
import { ensureSmolLM2 } from "../../test/support/model-fixture.js";
import { Engine, loadModel, type LoadedModel } from "../../trainer/engine/index.js";
import { scoreFile, type ScoreLine } from "./score.js";

const GOOD = { messages: [{ role: "user", content: "Name a colour." }], response: "Blue." };
const GOOD2 = {
  messages: [
    { role: "system", content: "You are terse." },
    { role: "user", content: "What is 2 + 2?" },
  ],
  response: "4",
};

describe("clawloop score", () => {
  let modelPath: string;
  let model: LoadedModel;
  let dir: string;
  let input: string;

  beforeAll(async () => {
    modelPath = process.env.CLAWLOOP_TEST_MODEL ?? (await ensureSmolLM2());
    model = await loadModel(modelPath);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "clawloop-score-"));
    input = path.join(dir, "in.jsonl");
    fs.writeFileSync(
      input,
      [
        JSON.stringify(GOOD),
        "{not json",
        "",
        JSON.stringify({ messages: [{ role: "user", content: "hi" }] }),
        JSON.stringify({ messages: "hello", response: "x" }),
        JSON.stringify(GOOD2),
        JSON.stringify({ messages: [{ role: "user", content: "word ".repeat(300) }], response: "too long" }),
      ].join("\n") + "\n",
    );
  });

  afterAll(() => {
    model?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it("scores good lines like the engine, reports each bad line, and keeps input order", async () => {
    const out: ScoreLine[] = [];
    const summary = await scoreFile({ model: modelPath, input, maxTokens: 256, threads: 2 }, (r) => out.push(r));
    expect(summary).toEqual({ scored: 2, failed: 4 });
    expect(out.map((r) => r.line)).toEqual([1, 2, 4, 5, 6, 7]);
    const err = (i: number) => ("error" in out[i]! ? out[i]!.error : "");
    expect(err(1)).toMatch(/not JSON/);
    expect(err(2)).toMatch(/"response" must be a string/);
    expect(err(3)).toMatch(/"messages" must be a non-empty array/);
    expect(err(5)).toMatch(/exceed maxTokens 256/);

    // The response is the template's assistant turn: the reply's tokens and the end-of-turn token.
    const first = out[0]!;
    if (!("tokens" in first)) throw new Error(first.error);
    const eot = model.tokenizer.encode("<|im_end|>", { parseSpecial: true });
    expect(first.tokens.slice(-1)).toEqual(eot);
    expect(model.tokenizer.decode(first.tokens.slice(0, -1))).toBe("Blue.");
    expect(first.logprobs).toHaveLength(first.tokens.length);
    expect(first.sum).toBeCloseTo(first.logprobs.reduce((a, b) => a + b, 0), 10);
    expect(first.logprobs.every((x) => x <= 0 && Number.isFinite(x))).toBe(true);

    // Same numbers as the engine on the same ids.
    const prompt = model.tokenizer.encodeChat(GOOD.messages, { addGenerationPrompt: true });
    const engine = await Engine.create({ model, lora: { rank: 1, alpha: 1, targets: ["q"] }, threads: 2, maxTokens: 256 });
    try {
      const [lp] = await engine.score([{ promptIds: prompt, responseIds: first.tokens }], null);
      lp!.forEach((x, i) => expect(x).toBeCloseTo(first.logprobs[i]!, 4));
    } finally {
      engine.close();
    }
  }, 300_000);

  it("applies a PEFT adapter read from disk", async () => {
    const engine = await Engine.create({ model, lora: { rank: 4, alpha: 8, targets: ["q", "v", "down"] }, threads: 2, maxTokens: 256 });
    const adapterDir = path.join(dir, "adapter");
    try {
      const adapter = engine.newAdapter(3, model.name);
      const rand = seededRandom(4);
      for (const b of adapter.b.values()) for (let i = 0; i < b.length; i++) b[i] = (rand() * 2 - 1) * 0.05;
      writePeftAdapter(adapterDir, adapter);
      const base: ScoreLine[] = [];
      const tuned: ScoreLine[] = [];
      const good = path.join(dir, "good.jsonl");
      fs.writeFileSync(good, `${JSON.stringify(GOOD)}\n${JSON.stringify(GOOD2)}\n`);
      await scoreFile({ model: modelPath, input: good, threads: 2, maxTokens: 256 }, (r) => base.push(r));
      await scoreFile({ model: modelPath, input: good, adapter: adapterDir, threads: 2, maxTokens: 256 }, (r) => tuned.push(r));
      const prompt = model.tokenizer.encodeChat(GOOD.messages, { addGenerationPrompt: true });
      const t0 = tuned[0]!;
      const b0 = base[0]!;
      if (!("tokens" in t0) || !("tokens" in b0)) throw new Error("scoring failed");
      const [want] = await engine.score([{ promptIds: prompt, responseIds: t0.tokens }], readPeftAdapter(adapterDir));
      want!.forEach((x, i) => expect(x).toBeCloseTo(t0.logprobs[i]!, 4));
      expect(Math.abs(t0.sum - b0.sum)).toBeGreaterThan(1e-3);

      const missing: ScoreLine[] = [];
      await expect(scoreFile({ model: modelPath, input: good, adapter: path.join(dir, "nope") }, (r) => missing.push(r))).rejects.toThrow(
        /cannot read adapter/,
      );
    } finally {
      engine.close();
    }
  }, 300_000);

  it("runs as a command: JSON lines on stdout, a summary on stderr, exit code 1 when a line failed", () => {
    const cli = path.resolve(import.meta.dirname, "../main.ts");
    const script = path.join(dir, "run-cli.mts");
    fs.writeFileSync(script, `import { main } from ${JSON.stringify(cli)};\nawait main(["node", "clawloop", ...process.argv.slice(2)]);\n`);
    const run = spawnSync(
      process.execPath,
      ["--import", "tsx", script, "score", "--model", modelPath, "--input", input, "--json", "--max-tokens", "256", "--threads", "2", "--data", dir],
      { encoding: "utf8" },
    );
    expect(run.stderr).toMatch(/2 scored, 4 failed/);
    expect(run.status).toBe(1);
    const lines = run.stdout.trim().split("\n").map((l) => JSON.parse(l) as ScoreLine);
    expect(lines).toHaveLength(6);
    expect("tokens" in lines[0]! && lines[0].logprobs.length === lines[0].tokens.length).toBe(true);
    expect("error" in lines[1]!).toBe(true);
  }, 300_000);
});
