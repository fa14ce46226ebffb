// The train loop holds its base model only while it has work: nothing but the model's identity
// before the first batch, the weights and engine loaded once per busy stretch, let go after
// train.releaseAfterIdleS seconds with no step due, and a step after a release continuing exactly
// where the last one left off. Real store and adapter directories; the stand-in backend
// (trainer/testing/fake-backend.ts) counts loads and closes. The real model: lazy-model-real.test.ts.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { loadConfig, silentLogger, Store, type Config } from "../core/index.js";
import { putJudgedTurns } from "../test/support/rows.js";
import { until } from "../test/support/until.js";
import { startTrainLoop, type TrainLoop } from "./loop.js";
import { readStatus } from "./status.js";
import { fakeBackend, fakeModel } from "./testing/fake-backend.js";
import { listVersions, sha256File } from "./versions.js";

let dataDir: string;
let writer: Store;
const loops: TrainLoop[] = [];

async function openDataDir(): Promise<void> {
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "clawloop-lazy-"));
  writer = await Store.open({ dataDir, writes: ["turns", "judgments"], flushIntervalMs: 50 });
}

async function closeDataDir(): Promise<void> {
  for (const l of loops.splice(0)) await l.stop();
  await writer.close();
  fs.rmSync(dataDir, { recursive: true, force: true });
}

beforeEach(openDataDir);
afterEach(closeDataDir);

const addJudged = (from: number, to: number): Promise<void> => putJudgedTurns(writer, from, to);

function config(releaseAfterIdleS: number): Config {
  return loadConfig({ env: {}, flags: { dataDir, train: { batchSize: 2, maxWaitSec: 60, pollMs: 20, lr: 0.1, releaseAfterIdleS } } });
}

async function start(cfg: Config, backend = fakeBackend()): Promise<TrainLoop> {
  const loop = await startTrainLoop(cfg, { backend, model: "/models/fake.gguf", logger: silentLogger });
  loops.push(loop);
  return loop;
}

const adapters = () => path.join(dataDir, "adapters");
const versions = () => listVersions(adapters()).length;
const weightsState = () => readStatus(dataDir)?.weights?.state;

describe("the train loop's base model", () => {
  it("is not loaded before the first batch is due, and is loaded once for a busy stretch", async () => {
    const backend = fakeBackend();
    await addJudged(1, 1); // one sample: no batch yet (batchSize 2, maxWaitSec 60)
    await start(config(600), backend);
    // Many polls with a sample waiting and nothing due.
    await until("a sample counted, nothing loaded", () => readStatus(dataDir)?.samplesWaiting === 1);
    await new Promise((r) => setTimeout(r, 300));
    expect(backend.counts).toEqual({ identify: 1, loadModel: 0, closeModel: 0, createEngine: 0, closeEngine: 0 });
    expect(readStatus(dataDir)).toMatchObject({ state: "waiting", model: "fake-model", weights: { state: "not loaded", rssMb: expect.any(Number) } });

    // Three batches in a row: one load, one engine.
    await addJudged(2, 6);
    await until("v000003", () => versions() === 3);
    expect(backend.counts).toEqual({ identify: 1, loadModel: 1, closeModel: 0, createEngine: 1, closeEngine: 0 });
    expect(weightsState()).toBe("loaded");
  });

  it("is let go after train.releaseAfterIdleS with no step due, loaded again for the next batch, and the step continues from the same version and optimizer moments", async () => {
    // Steps with a release before each of the later ones.
    const backend = fakeBackend();
    const loop = await start(config(0.15), backend);
    for (const [k, [from, to]] of [[1, 2], [3, 4], [5, 6]].entries()) {
      await addJudged(from!, to!);
      await until(`v00000${k + 1}`, () => versions() === k + 1);
      await until(`released after v00000${k + 1}`, () => backend.counts.closeModel === k + 1 && weightsState() === "not loaded");
    }
    expect(backend.counts).toEqual({ identify: 1, loadModel: 3, closeModel: 3, createEngine: 3, closeEngine: 3 });
    expect(listVersions(adapters()).map((v) => [v.manifest.parent, v.manifest.step])).toEqual([[null, 1], ["v000001", 2], ["v000002", 3]]);
    await loop.stop();
    const released = {
      adapter: sha256File(path.join(adapters(), "v000003", "adapter_model.safetensors")),
      optimizer: sha256File(path.join(dataDir, "trainer", "optim-v000003.bin")),
    };

    // The same batches with the model held throughout (0: never let go): the same bytes.
    await closeDataDir();
    await openDataDir();
    const held = fakeBackend();
    await start(config(0), held);
    for (const [k, [from, to]] of [[1, 2], [3, 4], [5, 6]].entries()) {
      await addJudged(from!, to!);
      await until(`v00000${k + 1}`, () => versions() === k + 1);
      // As long as the other run waited for its release (and longer).
      await new Promise((r) => setTimeout(r, 300));
    }
    expect(held.counts).toMatchObject({ loadModel: 1, closeModel: 0, closeEngine: 0 });
    expect(weightsState()).toBe("loaded");
    expect({
      adapter: sha256File(path.join(adapters(), "v000003", "adapter_model.safetensors")),
      optimizer: sha256File(path.join(dataDir, "trainer", "optim-v000003.bin")),
    }).toEqual(released);
  });

  it("is let go while training is paused, and the stop closes what is held", async () => {
    const backend = fakeBackend();
    await addJudged(1, 2);
    const loop = await start(config(0.1), backend);
    await until("v000001", () => versions() === 1);
    fs.writeFileSync(path.join(dataDir, "train.paused"), JSON.stringify({ since: new Date().toISOString(), by: "test", reason: null }));
    await until("paused and let go", () => readStatus(dataDir)?.state === "paused" && weightsState() === "not loaded");
    expect(backend.counts).toMatchObject({ loadModel: 1, closeModel: 1, closeEngine: 1 });
    fs.rmSync(path.join(dataDir, "train.paused"));
    await addJudged(3, 4);
    await until("v000002", () => versions() === 2);
    await loop.stop();
    // Whatever the idle timer had not let go yet, the stop did.
    expect(backend.counts.closeModel).toBe(backend.counts.loadModel);
    expect(backend.counts.closeEngine).toBe(backend.counts.createEngine);
    expect(readStatus(dataDir)).toMatchObject({ state: "stopped", weights: null });
  });

  it("a load that fails is not the samples' fault: nothing is held, the error shows, the batch is trained once a load works", async () => {
    const backend = fakeBackend();
    const load = backend.loadModel.bind(backend);
    let failures = 0;
    backend.loadModel = async (source) => {
      if (failures++ < 2) throw new Error("ENOMEM: cannot map the model");
      return load(source);
    };
    await addJudged(1, 2);
    await start(config(600), backend);
    await until("the error in the status", () => readStatus(dataDir)?.lastError?.message === "ENOMEM: cannot map the model");
    expect(weightsState()).toBe("not loaded");
    await until("v000001 after the retries", () => versions() === 1, 10_000);
    expect(listVersions(adapters())[0]!.manifest.sampleIds).toEqual(["call-1", "call-2"]);
    expect(readStatus(dataDir)?.samplesSkipped.failed).toBe(0);
    expect(backend.counts).toMatchObject({ loadModel: 1, createEngine: 1 });
  });

  it("a base model that changed on disk since the start is not trained on: the step fails with why, and what was loaded is closed", async () => {
    const backend = fakeBackend();
    backend.loadModel = async () => ({ ...fakeModel(), hash: "changedhash", close: () => void backend.counts.closeModel++ });
    await addJudged(1, 2);
    await start(config(600), backend);
    await until("the error in the status", () => readStatus(dataDir)?.lastError?.message.includes("changed since the trainer started"));
    expect(readStatus(dataDir)?.lastError?.message).toMatch(/hash fakehash, now changedhash/);
    expect(backend.counts).toMatchObject({ createEngine: 0 });
    expect(backend.counts.closeModel).toBeGreaterThanOrEqual(1);
    expect(weightsState()).toBe("not loaded");
    expect(versions()).toBe(0);
  });
});
