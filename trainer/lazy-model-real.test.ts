// The real model (SmolLM2-135M-Instruct Q4_1, the test fixture) through the real backend: the train
// loop starts without its weights (memory stays near what the process held before), loads them
// for the first batch, and gives the memory back after train.releaseAfterIdleS. RSS is per process
// (this test file runs in a process of its own), so the bounds below are generous: on this
// machine it measured +~45 MB started, +~575 MB loaded, and back to 35–65 MB above the start after
// the release (a `clawloop train` process's numbers are in the README).
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { loadConfig, silentLogger, Store } from "../core/index.js";
import { makeJudgment, makeTurn } from "../test/support/rows.js";
import { until } from "../test/support/until.js";
import type { TrainBackend } from "./backend.js";
import { startTrainLoop, type TrainLoop } from "./loop.js";
import { realBackend } from "./real-backend.js";
import { readStatus } from "./status.js";
import { listVersions } from "./versions.js";

let dataDir: string;
let loop: TrainLoop | null = null;

beforeAll(() => {
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "clawloop-lazy-real-"));
});
afterAll(async () => {
  await loop?.stop();
  fs.rmSync(dataDir, { recursive: true, force: true });
});

const MB = 2 ** 20;
const rss = () => process.memoryUsage.rss() / MB;

it("starts without the base model's weights, loads them for the first batch, and gives the memory back when idle", async () => {
  const counts = { loadModel: 0, createEngine: 0 };
  const backend: TrainBackend = {
    ...realBackend,
    loadModel: (source) => (counts.loadModel++, realBackend.loadModel(source)),
    createEngine: (...args) => (counts.createEngine++, realBackend.createEngine(...args)),
  };
  const config = loadConfig({
    env: {},
    flags: { dataDir, train: { model: process.env.CLAWLOOP_TEST_MODEL!, batchSize: 1, maxWaitSec: 0, pollMs: 50, rank: 4, threads: 1, maxTokens: 64, releaseAfterIdleS: 2 } },
  });
  // ONNX Runtime's and the tokenizer's code in memory first, so that only data is compared below.
  await realBackend.identify(process.env.CLAWLOOP_TEST_MODEL!);
  const before = rss();

  loop = await startTrainLoop(config, { backend, logger: silentLogger });
  await until("waiting", () => readStatus(dataDir)?.weights?.state === "not loaded");
  await new Promise((r) => setTimeout(r, 500)); // a few polls with nothing to train
  const started = rss();
  expect(counts).toEqual({ loadModel: 0, createEngine: 0 });
  expect(readStatus(dataDir)).toMatchObject({ state: "waiting", model: "SmolLM2-135M-Instruct.Q4_1" });

  // One judged turn: the batch is due, the weights load, a version is written.
  const writer = await Store.open({ dataDir, writes: ["turns", "judgments"] });
  writer.put("turns", makeTurn(1, { promptTokenIds: [1, 9690, 198, 19556, 28, 2], completionTokenIds: [19556, 17, 2] }));
  writer.put("judgments", makeJudgment(1, { score: 1 }));
  await writer.close();
  const loaded = await until("loaded", () => (readStatus(dataDir)?.weights?.state === "loaded" ? readStatus(dataDir)!.weights : null), 120_000);
  await until("v000001", () => listVersions(path.join(dataDir, "adapters")).length === 1, 120_000);
  expect(counts).toEqual({ loadModel: 1, createEngine: 1 });

  // Idle for train.releaseAfterIdleS: let go.
  const released = await until("let go", () => {
    const w = readStatus(dataDir)?.weights;
    return w?.state === "not loaded" && Date.parse(w.since) > Date.parse(loaded.since) ? w : null;
  }, 30_000);
  const after = rss();
  const numbers = { before: Math.round(before), started: Math.round(started), loaded: loaded.rssMb, released: released.rssMb, after: Math.round(after) };
  process.stdout.write(`trainer RSS (MB): ${JSON.stringify(numbers)}\n`);
  // Started: the model's identity only (tokenizer, headers), far below the weights.
  expect(started - before).toBeLessThan(150);
  // Loaded: the dequantized weights and the engine really were in memory (so the bound above means something)…
  expect(loaded.rssMb - started).toBeGreaterThan(300);
  // …and went back to the system.
  expect(loaded.rssMb - after).toBeGreaterThan(300);
  expect(after - started).toBeLessThan(150);
}, 180_000);
