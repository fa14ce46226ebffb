// The continuous train loop on a real store and real adapter directories, with the stand-in
// engine (trainer/testing/fake-backend.ts), so batching, versioning and resume are tested apart
// from ONNX Runtime. Learning itself is tested on the real model in test/e2e/train-learning.test.ts.
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { readProbeFile, readPruned, writeHead } from "../adapters/index.js";
import { loadConfig, pauseTraining, resumeTraining, silentLogger, Store, type AdapterManifest, type AdapterVersion, type Config, type Judgment, type Reward } from "../core/index.js";
import { makeJudgment, makeTurn, putJudgedTurns } from "../test/support/rows.js";
import { startTrainLoop, type TrainLoop } from "./loop.js";
import { fallbackText, readStatus } from "./status.js";
import { FakeEngine, fakeBackend, fakeModel } from "./testing/fake-backend.js";
import { listVersions, sha256File } from "./versions.js";
import { TrainerState } from "./state.js";
import { until } from "../test/support/until.js";
import { switchboardTable as sharedSwitchboardTable } from "../test/support/switchboard-table.js";

let dataDir: string;
let writer: Store;
const loops: TrainLoop[] = [];

async function openDataDir(): Promise<void> {
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "clawloop-train-"));
  writer = await Store.open({ dataDir, writes: ["turns", "judgments"], flushIntervalMs: 50 });
}

async function closeDataDir(): Promise<void> {
  for (const l of loops.splice(0)) await l.stop();
  await writer.close();
  fs.rmSync(dataDir, { recursive: true, force: true });
}

/** Stops the loops and starts over in a new, empty data directory (for reference runs). */
async function freshDataDir(): Promise<void> {
  await closeDataDir();
  await openDataDir();
}

beforeEach(openDataDir);
afterEach(closeDataDir);

const judgment = (i: number, score: Reward, hint: string | null = null): Judgment => makeJudgment(i, { score, hint });

/** Judged turns whose token ids differ per turn, so the stand-in engine's updates depend on which turns a step saw. */
const addJudged = (from: number, to: number, score: (i: number) => Reward = (i) => (i % 2 ? 1 : -1), hint: (i: number) => string | null = () => null) =>
  putJudgedTurns(writer, from, to, (i) => ({ score: score(i), hint: hint(i) }));

function config(over: Partial<Config["train"]> = {}, adapters: Partial<Config["adapters"]> = {}): Config {
  return loadConfig({ env: {}, flags: { dataDir, train: { batchSize: 3, maxWaitSec: 60, pollMs: 30, lr: 0.1, ...over }, adapters } });
}

/** An engine fakeBackend made, with its test seams (failNext, calls): createEngine is typed as any TrainEngine. */
function asFake(e: unknown): FakeEngine {
  if (!(e instanceof FakeEngine)) throw new Error("expected the FakeEngine that fakeBackend makes");
  return e;
}

async function start(cfg: Config, backend = fakeBackend()): Promise<TrainLoop> {
  const loop = await startTrainLoop(cfg, { backend, model: "/models/fake.gguf", logger: silentLogger });
  loops.push(loop);
  return loop;
}


const adapters = () => path.join(dataDir, "adapters");
/**
 * The manifest of an adapters-table row written before its version exists: empty on purpose (what
 * these tests need of the row is its live and pinned flags, which retention reads alone; the
 * verdicts take a row whose manifest is not the version's on disk as another version's).
 */
const NO_MANIFEST = {} as AdapterManifest;
const sampleIdsByVersion = () => listVersions(adapters()).map((v) => v.manifest.sampleIds);
const calls = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => `call-${from + i}`).sort();
/** Every sample trained on, by versions on disk and versions deleted by retention. */
const allTrained = () => [...listVersions(adapters()).map((v) => v.manifest.sampleIds), ...[...readPruned(adapters()).values()].map((p) => p.sampleIds)].flat().sort();

describe("train loop", () => {
  it("steps as soon as B samples are ready, oldest first, and writes a complete version and its metrics", async () => {
    await addJudged(1, 4);
    const steps: string[] = [];
    const loop = await startTrainLoop(config(), { backend: fakeBackend(), model: "/models/fake.gguf", logger: silentLogger, onStep: (s) => steps.push(s.version) });
    loops.push(loop);
    await until("v000001", () => listVersions(adapters()).length === 1);
    const [v1] = listVersions(adapters());
    expect(v1!.manifest).toMatchObject({
      version: 1, name: "v000001", parent: null, baseModel: "fake-model", baseModelHash: "fakehash", step: 1,
      sampleCount: 3, sampleIds: ["call-1", "call-2", "call-3"], rank: 16, alpha: 32,
      targetModules: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    });
    // A GGUF base model: llama.cpp-based servers need adapter.gguf.
    expect(Object.keys(v1!.manifest.files)).toEqual(["adapter.gguf", "adapter_config.json", "adapter_model.safetensors", "probe.json"]);
    for (const [f, h] of Object.entries(v1!.manifest.files)) expect(sha256File(path.join(v1!.dir, f))).toBe(h);
    const status = await until("status", () => {
      const s = readStatus(dataDir);
      return s?.version === "v000001" && s.samplesWaiting === 1 ? s : null;
    });
    expect(status).toMatchObject({ state: "waiting", mode: "combined", lastStep: { version: "v000001", step: 1, samples: 3 } });
    const rows = await until("train_steps row", async () => {
      await loop.stop();
      const reader = await Store.open({ dataDir });
      const r = await reader.list("train_steps");
      await reader.close();
      return r.length ? r : null;
    });
    expect(rows[0]).toMatchObject({ id: "v000001", version: "v000001", step: 1, samples: 3, sampleIds: ["call-1", "call-2", "call-3"], mode: "combined", lr: 0.1, behaviourMismatch: expect.any(Number) });
    expect(rows[0]!.meanReward).toBeCloseTo(1 / 3, 12);
    // The version's distance from the base, measured on the probe's candidates: the stand-in
    // engine shifts every token alike, so k3 = e^d − d − 1 with d = log π_base − log π_version.
    expect(rows[0]!.klToBase).toBeGreaterThan(0);
    const probe = readProbeFile(listVersions(adapters())[0]!.dir)!;
    const d = probe.base[0]! - probe.version[0]!;
    expect(rows[0]!.klToBase).toBeCloseTo(Math.exp(d) - d - 1, 9);
    expect(steps).toEqual(["v000001"]);
    expect(readStatus(dataDir)?.state).toBe("stopped");
  });

  it("runs a partial batch once its oldest sample has waited T seconds", async () => {
    await start(config({ maxWaitSec: 0.3 }));
    await addJudged(1, 1);
    const t0 = Date.now();
    await until("v000001", () => listVersions(adapters()).length === 1);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
    expect(sampleIdsByVersion()).toEqual([["call-1"]]);
  });

  it("counts judged turns without a training signal as skipped instead of waiting, and picks them up when the judgment changes", async () => {
    await addJudged(1, 3, () => 0);
    writer.put("turns", makeTurn(4, { turnType: "side" }));
    writer.put("judgments", judgment(4, 1));
    await writer.flush();
    const loop = await start(config({ maxWaitSec: 0, mode: "combined" }));
    await until("skips", () => readStatus(dataDir)?.samplesSkipped["no-signal"] === 3);
    expect(loop.status()).toMatchObject({ samplesWaiting: 0, version: null });
    // Explicit feedback overrides the model judge: same id, new score.
    writer.put("judgments", judgment(2, -1));
    writer.put("judgments", judgment(3, 0, "Answer in one sentence."));
    await writer.flush();
    await until("v000001", () => listVersions(adapters()).length === 1);
    expect(sampleIdsByVersion()).toEqual([["call-2", "call-3"]]);
    expect(loop.status().samplesSkipped["no-signal"]).toBe(1);
  });

  it("in opd mode trains the turns that carry a hint, against the teacher prompt, and skips the rest", async () => {
    await addJudged(1, 2, (i) => (i === 1 ? 1 : 0), (i) => (i === 2 ? "Be brief." : null));
    const backend = fakeBackend();
    await start(config({ maxWaitSec: 0, mode: "opd" }), backend);
    await until("v000001", () => listVersions(adapters()).length === 1);
    expect(sampleIdsByVersion()).toEqual([["call-2"]]);
    expect(backend.engine!.calls.score[0]!.items).toHaveLength(2); // student + teacher
    expect(readStatus(dataDir)?.samplesSkipped["no-signal"]).toBe(1);
  });

  it("survives engine failures: the error shows in the status, nothing half-written, the samples are retried", async () => {
    await addJudged(1, 3);
    const backend = fakeBackend();
    const origCreate = backend.createEngine.bind(backend);
    backend.createEngine = async (...args) => {
      const e = await origCreate(...args);
      asFake(e).failNext = 2;
      return e;
    };
    await start(config({ maxWaitSec: 0 }), backend);
    await until("an error in the status", () => readStatus(dataDir)?.lastError?.message === "fake engine failure");
    expect(fs.readdirSync(adapters()).filter((n) => !n.startsWith("."))).toEqual([]);
    await until("three versions after the retries", () => listVersions(adapters()).length === 3, 10_000);
    // [1, 2, 3] failed, then [1] alone failed; each is retried alone until it has trained once.
    expect(sampleIdsByVersion()).toEqual([["call-2"], ["call-3"], ["call-1"]]);
    await until("the error to clear", () => readStatus(dataDir)?.lastError === null);
  });

  it("retries the samples of a failed step alone, trains the innocent ones, and sets the culprit aside after three failures", async () => {
    await addJudged(1, 4);
    const backend = fakeBackend();
    const origCreate = backend.createEngine.bind(backend);
    backend.createEngine = async (...args) => {
      const e = await origCreate(...args);
      const step = e.trainStep.bind(e);
      e.trainStep = async (items, ...rest) => {
        if (items.some((it) => it.promptIds[2] === 101)) throw new Error("poison");
        return step(items, ...rest);
      };
      return e;
    };
    await start(config({ maxWaitSec: 0, batchSize: 3 }), backend);
    await until("quarantine count", () => readStatus(dataDir)?.samplesSkipped.failed === 1, 15_000);
    // [1, 2, 3] fails; 4 trains without the suspects; each suspect alone: 2 and 3 train, 1 fails twice more.
    expect(sampleIdsByVersion()).toEqual([["call-4"], ["call-2"], ["call-3"]]);
  });

  it("refuses to continue adapters trained on another base model", async () => {
    await addJudged(1, 3);
    const loop = await start(config({ maxWaitSec: 0 }));
    await until("v000001", () => listVersions(adapters()).length === 1);
    await loop.stop();
    const other = fakeBackend({ model: { ...fakeModel(), hash: "otherhash", name: "other-model" } });
    await expect(startTrainLoop(config(), { backend: other, model: "/x.gguf", logger: silentLogger })).rejects.toThrow(/trained on fake-model.*not on other-model/);
    expect(readStatus(dataDir)).toMatchObject({ state: "failed", lastError: { message: expect.stringMatching(/not on other-model/) } });
    // Told by the model's headers: the weights were never loaded.
    expect(other.counts).toMatchObject({ identify: 1, loadModel: 0, createEngine: 0 });
    // The failed start released the store lock: a correct start works.
    await start(config());
  });

  it("after a rollback (HEAD.json) continues from the named version, also across a restart", async () => {
    await addJudged(1, 6);
    const a = await start(config({ batchSize: 2, maxWaitSec: 0 }));
    await until("v000003", () => listVersions(adapters()).length === 3);
    // v000001 is neither live, pinned nor among the two newest: its optimizer state goes after v000003.
    await until("v000001's optimizer state dropped", () => !fs.existsSync(path.join(dataDir, "trainer", "optim-v000001.bin")));
    const v1Bytes = fs.readFileSync(path.join(adapters(), "v000001", "adapter_model.safetensors"));
    writeHead(adapters(), "v000001", "rollback to v000001");
    await addJudged(7, 8);
    await until("v000004", () => listVersions(adapters()).length === 4);
    const v4 = listVersions(adapters())[3]!;
    // The next free number, on top of v000001; samples of the abandoned versions are not trained again.
    expect(v4.manifest).toMatchObject({ parent: "v000001", step: 2, sampleIds: ["call-7", "call-8"] });
    await a.stop();
    // A restart continues from v000004 (written after the rollback), not from v000001 again.
    await addJudged(9, 10);
    await start(config({ batchSize: 2, maxWaitSec: 0 }));
    await until("v000005", () => listVersions(adapters()).length === 5);
    expect(listVersions(adapters())[4]!.manifest).toMatchObject({ parent: "v000004", step: 3 });
    expect(fs.readFileSync(path.join(adapters(), "v000001", "adapter_model.safetensors"))).toEqual(v1Bytes);
    const v4Bytes = fs.readFileSync(path.join(v4.dir, "adapter_model.safetensors"));

    // v000004 really grew from v000001's weights: v000001, then call-7/8, in a fresh directory gives
    // the same bytes (with fresh optimizer moments: v000001's were dropped).
    await freshDataDir();
    await addJudged(1, 2);
    const b = await start(config({ batchSize: 2, maxWaitSec: 0 }));
    await until("v000001", () => listVersions(adapters()).length === 1);
    await b.stop();
    fs.rmSync(path.join(dataDir, "trainer"), { recursive: true });
    await addJudged(7, 8);
    await start(config({ batchSize: 2, maxWaitSec: 0 }));
    await until("v000002", () => listVersions(adapters()).length === 2);
    expect(fs.readFileSync(path.join(adapters(), "v000002", "adapter_model.safetensors"))).toEqual(v4Bytes);
  });

  it("uses each sample `epochs` times, least-used first", async () => {
    await addJudged(1, 2);
    await start(config({ maxWaitSec: 0, batchSize: 2, epochs: 2 }));
    await until("two versions", () => listVersions(adapters()).length === 2);
    await new Promise((r) => setTimeout(r, 200));
    expect(sampleIdsByVersion()).toEqual([["call-1", "call-2"], ["call-1", "call-2"]]);
  });

  it("resumes in-process from the last version and its optimizer state: same result as an uninterrupted run", async () => {
    await addJudged(1, 2);
    const a = await start(config({ batchSize: 2, maxWaitSec: 0 }));
    await until("v000001", () => listVersions(adapters()).length === 1);
    await a.stop();
    expect(new TrainerState(path.join(dataDir, "trainer")).loadOptimizer("v000001")).not.toBe(null);
    await addJudged(3, 6);
    await start(config({ batchSize: 2, maxWaitSec: 0 }));
    await until("v000003", () => listVersions(adapters()).length === 3);
    const resumed = sha256File(path.join(adapters(), "v000003", "adapter_model.safetensors"));
    expect(sampleIdsByVersion()).toEqual([["call-1", "call-2"], ["call-3", "call-4"], ["call-5", "call-6"]]);

    // The same turns in one uninterrupted run.
    await freshDataDir();
    await addJudged(1, 6);
    await start(config({ batchSize: 2, maxWaitSec: 0 }));
    await until("v000003", () => listVersions(adapters()).length === 3);
    expect(sha256File(path.join(adapters(), "v000003", "adapter_model.safetensors"))).toBe(resumed);
  });
});

describe("train loop killed with SIGKILL (a real child process)", () => {
  const child = path.join(import.meta.dirname, "testing", "train-child.ts");

  function run(dir: string, env: Record<string, string> = {}): { proc: ChildProcess; exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }> } {
    const proc = spawn(process.execPath, ["--import", "tsx", child], {
      env: {
        ...process.env,
        CLAWLOOP_HOME: dir,
        CLAWLOOP_TRAIN_BATCH_SIZE: "3",
        CLAWLOOP_TRAIN_MAX_WAIT_SEC: "0",
        CLAWLOOP_TRAIN_POLL_MS: "30",
        CLAWLOOP_TRAIN_LR: "0.1",
        CLAWLOOP_TRAIN_CRASH_AT: "",
        ...env,
      },
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    proc.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
    const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      proc.on("exit", (code, signal) => {
        if (code) process.stderr.write(stderr);
        resolve({ code, signal });
      }),
    );
    return { proc, exit };
  }

  async function runToEnd(dir: string, versions: number): Promise<void> {
    const { proc, exit } = run(dir);
    await until(`${versions} versions`, () => listVersions(path.join(dir, "adapters")).length === versions && readStatus(dir)?.samplesWaiting === 0, 30_000);
    proc.kill("SIGTERM");
    expect((await exit).code).toBe(0);
  }

  it("on SIGTERM mid-step finishes the step, writes its version and exits cleanly", async () => {
    await addJudged(1, 3);
    const { proc, exit } = run(dataDir, { STEP_DELAY_MS: "600" });
    await until("a step in progress", () => readStatus(dataDir)?.state === "training" && readStatus(dataDir)?.pid === proc.pid);
    proc.kill("SIGTERM");
    expect(await exit).toEqual({ code: 0, signal: null });
    expect(sampleIdsByVersion()).toEqual([["call-1", "call-2", "call-3"]]);
    expect(fs.readdirSync(adapters()).filter((n) => n.startsWith("."))).toEqual([]);
    expect(readStatus(dataDir)).toMatchObject({ state: "stopped", version: "v000001" });
  }, 60_000);

  it("continues from the last version and optimizer state after kills at every point, reusing no sample and skipping none", async () => {
    await addJudged(1, 10);
    // Reference: one uninterrupted run over the same ten turns (batches 3, 3, 3, 1).
    const refDir = fs.mkdtempSync(path.join(os.tmpdir(), "clawloop-train-ref-"));
    fs.cpSync(path.join(dataDir, "store"), path.join(refDir, "store"), { recursive: true });
    await runToEnd(refDir, 4);
    const reference = listVersions(path.join(refDir, "adapters"));

    const kills: [string, Record<string, string>][] = [
      ["right after the rename of v000001", { CLAWLOOP_TRAIN_CRASH_AT: "after-version:1" }],
      ["with v000002's optimizer state written but the version not yet renamed", { CLAWLOOP_TRAIN_CRASH_AT: "before-version:1" }],
      ["at the start of a step", { CLAWLOOP_TRAIN_CRASH_AT: "step-start:1" }],
    ];
    for (const [what, env] of kills) {
      const { exit } = run(dataDir, env);
      expect((await exit).signal, what).toBe("SIGKILL");
      expect(listVersions(adapters()).map((v) => v.name), what).toEqual(["v000001"]);
      if (env.CLAWLOOP_TRAIN_CRASH_AT === "before-version:1") {
        // The interrupted step left its optimizer state and a temporary directory: never a version.
        expect(fs.existsSync(path.join(dataDir, "trainer", "optim-v000002.bin"))).toBe(true);
        expect(fs.readdirSync(adapters()).some((n) => n.startsWith(".tmp-v000002"))).toBe(true);
      }
    }

    // Mid-step, from outside: the step takes 400 ms; kill while the status says "training".
    const slow = run(dataDir, { STEP_DELAY_MS: "400" });
    await until("a step in progress", () => readStatus(dataDir)?.state === "training" && readStatus(dataDir)?.pid === slow.proc.pid);
    slow.proc.kill("SIGKILL");
    await slow.exit;
    expect(fs.readdirSync(adapters()).filter((n) => n.startsWith("v"))).toEqual(["v000001"]);

    await runToEnd(dataDir, 4);
    const resumed = listVersions(adapters());
    expect(resumed.map((v) => v.manifest.sampleIds)).toEqual(reference.map((v) => v.manifest.sampleIds));
    expect(resumed.flatMap((v) => v.manifest.sampleIds).sort()).toEqual(Array.from({ length: 10 }, (_, i) => `call-${i + 1}`).sort());
    // Same adapter bytes as the uninterrupted run: the optimizer moments were restored, not restarted.
    for (let i = 0; i < 4; i++) expect(resumed[i]!.manifest.files).toEqual(reference[i]!.manifest.files);
    // No leftovers; one train_steps row per version (v000001's was put again after the kill that lost it).
    expect(fs.readdirSync(adapters()).filter((n) => n.startsWith("."))).toEqual([]);
    const reader = await Store.open({ dataDir });
    expect((await reader.list("train_steps", { orderBy: "step" })).map((r) => r.version)).toEqual(["v000001", "v000002", "v000003", "v000004"]);
    await reader.close();
    fs.rmSync(refDir, { recursive: true, force: true });
  }, 120_000);

  it("a kill while deleting an old version leaves no half-deleted version, and trains no sample twice and skips none", async () => {
    await addJudged(1, 9);
    const env = { CLAWLOOP_ADAPTERS_KEEP_VERSIONS: "1", CLAWLOOP_ADAPTERS_PRUNE_GRACE_SEC: "0" };
    // v000001 recorded as pruned, then killed before its directory was touched.
    const recorded = run(dataDir, { ...env, CLAWLOOP_TRAIN_CRASH_AT: "prune-recorded:1" });
    expect((await recorded.exit).signal).toBe("SIGKILL");
    expect(listVersions(adapters()).map((v) => v.name)).toEqual(["v000001", "v000002"]);
    expect([...readPruned(adapters()).keys()]).toEqual(["v000001"]);
    // On restart it deletes v000001 again; killed between the rename and the remove.
    const renamed = run(dataDir, { ...env, CLAWLOOP_TRAIN_CRASH_AT: "prune-renamed:1" });
    expect((await renamed.exit).signal).toBe("SIGKILL");
    expect(fs.readdirSync(adapters()).filter((n) => n.startsWith(".trash-v000001-"))).toHaveLength(1);
    expect(listVersions(adapters()).map((v) => v.name)).toEqual(["v000002"]);

    const { proc, exit } = run(dataDir, env);
    await until("v000003, nothing waiting", () => readStatus(dataDir)?.version === "v000003" && readStatus(dataDir)?.samplesWaiting === 0 && readStatus(dataDir)?.pid === proc.pid, 30_000);
    proc.kill("SIGTERM");
    expect((await exit).code).toBe(0);
    expect(fs.readdirSync(adapters()).sort()).toEqual(["PRUNED.jsonl", "v000003"]);
    expect(listVersions(adapters())[0]!.manifest.parent).toBe("v000002");
    expect(allTrained()).toEqual(calls(1, 9));
  }, 90_000);
});

describe("train loop: pause", () => {
  it("starts no step while paused, keeps counting the samples, and trains each exactly once after the resume", async () => {
    pauseTraining(dataDir, "test", "checking");
    await addJudged(1, 4);
    const loop = await start(config({ batchSize: 2, maxWaitSec: 0 }));
    await until("paused with 4 waiting", () => {
      const s = readStatus(dataDir);
      return s?.state === "paused" && s.samplesWaiting === 4 && s.paused?.by === "test" && s.paused.reason === "checking";
    });
    // More judged turns arrive while paused: counted, not trained.
    await addJudged(5, 6);
    await until("6 waiting", () => readStatus(dataDir)?.samplesWaiting === 6);
    expect(listVersions(adapters())).toEqual([]);
    expect(loop.status()).toMatchObject({ state: "paused", version: null });
    resumeTraining(dataDir);
    await until("everything trained", () => listVersions(adapters()).length === 3 && readStatus(dataDir)?.samplesWaiting === 0);
    expect(allTrained()).toEqual(calls(1, 6));
    expect(sampleIdsByVersion()).toEqual([["call-1", "call-2"], ["call-3", "call-4"], ["call-5", "call-6"]]);
    expect(readStatus(dataDir)).toMatchObject({ state: "waiting", paused: null });
  });

  it("a pause during a step lets that step finish and write its version, and starts no other", async () => {
    await addJudged(1, 4);
    const backend = fakeBackend({ stepDelayMs: 100 });
    const origCreate = backend.createEngine.bind(backend);
    backend.createEngine = async (...args) => {
      const e = await origCreate(...args);
      const step = e.trainStep.bind(e);
      e.trainStep = async (...a) => {
        // The user pauses while the first step runs.
        if (asFake(e).calls.trainStep.length === 0) pauseTraining(dataDir, "test");
        return step(...a);
      };
      return e;
    };
    await start(config({ batchSize: 2, maxWaitSec: 0 }), backend);
    await until("paused after the first step", () => readStatus(dataDir)?.state === "paused" && readStatus(dataDir)?.version === "v000001");
    await until("the other two waiting", () => readStatus(dataDir)?.samplesWaiting === 2);
    expect(sampleIdsByVersion()).toEqual([["call-1", "call-2"]]);
    resumeTraining(dataDir);
    await until("v000002", () => listVersions(adapters()).length === 2);
    expect(allTrained()).toEqual(calls(1, 4));
  });
});

describe("train loop: retention", () => {
  it("keeps adapters.keepVersions versions; a restart trains no sample of a deleted version again and never reuses its number", async () => {
    await addJudged(1, 10);
    const cfg = config({ batchSize: 2, maxWaitSec: 0 }, { keepVersions: 2, pruneGraceSec: 0 });
    const a = await start(cfg);
    await until("five steps", () => readStatus(dataDir)?.version === "v000005" && readStatus(dataDir)?.samplesWaiting === 0);
    await a.stop();
    expect(listVersions(adapters()).map((v) => v.name)).toEqual(["v000004", "v000005"]);
    expect([...readPruned(adapters()).keys()]).toEqual(["v000001", "v000002", "v000003"]);
    expect(fs.readdirSync(adapters()).filter((n) => n.startsWith("."))).toEqual([]);
    // Optimizer states of the two newest only (no sidecar: nothing live or pinned).
    expect(fs.readdirSync(path.join(dataDir, "trainer")).filter((n) => n.startsWith("optim-")).sort()).toEqual(["optim-v000004.bin", "optim-v000005.bin"]);

    await addJudged(11, 12);
    await start(cfg);
    await until("v000006", () => readStatus(dataDir)?.version === "v000006");
    expect(listVersions(adapters()).at(-1)!.manifest).toMatchObject({ name: "v000006", parent: "v000005", sampleIds: ["call-11", "call-12"] });
    expect(allTrained()).toEqual(calls(1, 12));
  });

  it("keeps the live, pinned and rolled-back-to versions, and after a restart finds the newest version on top of the rollback target through deleted ones", async () => {
    await addJudged(1, 6);
    // The sidecar's adapters table: v000001 live and pinned.
    const sidecarTable = await Store.open({ dataDir, writes: ["adapters"] });
    const row = { id: "v000001", version: 1, dir: path.join(adapters(), "v000001"), manifest: NO_MANIFEST, status: "live", statusReason: null, pinned: true, loadedAt: null, liveAt: new Date().toISOString(), retiredAt: null } satisfies AdapterVersion;
    sidecarTable.put("adapters", row);
    await sidecarTable.flush();
    const cfg = config({ batchSize: 2, maxWaitSec: 0 }, { keepVersions: 1, pruneGraceSec: 0 });
    const a = await start(cfg);
    await until("v000003", () => readStatus(dataDir)?.version === "v000003" && readStatus(dataDir)?.samplesWaiting === 0);
    expect(listVersions(adapters()).map((v) => v.name)).toEqual(["v000001", "v000003"]);
    // The user rolls back to v000001, then unpins and it is retired: only HEAD.json keeps it now.
    writeHead(adapters(), "v000001", "rollback to v000001");
    sidecarTable.put("adapters", { ...row, status: "retired", pinned: false });
    await sidecarTable.close();
    await addJudged(7, 12);
    await until("v000006", () => readStatus(dataDir)?.version === "v000006" && readStatus(dataDir)?.samplesWaiting === 0);
    await a.stop();
    const versions = listVersions(adapters());
    expect(versions.map((v) => v.name)).toEqual(["v000001", "v000006"]);
    expect(readPruned(adapters()).get("v000004")).toMatchObject({ parent: "v000001" });
    expect(versions[1]!.manifest.parent).toBe("v000005");
    // Restart: v000004 and v000005 are gone, yet the tip is v000006 (on top of v000001), not v000001.
    await addJudged(13, 14);
    await start(cfg);
    await until("v000007", () => readStatus(dataDir)?.version === "v000007");
    expect(listVersions(adapters()).at(-1)!.manifest).toMatchObject({ parent: "v000006", step: 5 });
    // Each sample once, the abandoned versions' included (they are not trained again after the rollback).
    expect(allTrained()).toEqual(calls(1, 14));
  });

  it("continues from a rollback target that was live with its own optimizer moments", async () => {
    await addJudged(1, 6);
    const sidecarTable = await Store.open({ dataDir, writes: ["adapters"] });
    sidecarTable.put("adapters", { id: "v000001", version: 1, dir: path.join(adapters(), "v000001"), manifest: NO_MANIFEST, status: "live", statusReason: null, pinned: false, loadedAt: null, liveAt: new Date().toISOString(), retiredAt: null });
    await sidecarTable.close();
    const a = await start(config({ batchSize: 2, maxWaitSec: 0 }));
    await until("v000003", () => readStatus(dataDir)?.version === "v000003" && readStatus(dataDir)?.samplesWaiting === 0);
    // Live: its optimizer state outlived the two-newest rule.
    expect(fs.existsSync(path.join(dataDir, "trainer", "optim-v000001.bin"))).toBe(true);
    writeHead(adapters(), "v000001", "rollback to v000001");
    await addJudged(7, 8);
    await until("v000004", () => listVersions(adapters()).length === 4);
    await a.stop();
    const v4 = sha256File(path.join(adapters(), "v000004", "adapter_model.safetensors"));

    // Reference: v000001, then call-7/8 continued with v000001's moments, in a fresh directory.
    await freshDataDir();
    await addJudged(1, 2);
    const b = await start(config({ batchSize: 2, maxWaitSec: 0 }));
    await until("v000001", () => listVersions(adapters()).length === 1);
    await b.stop();
    await addJudged(7, 8);
    await start(config({ batchSize: 2, maxWaitSec: 0 }));
    await until("v000002", () => listVersions(adapters()).length === 2);
    expect(sha256File(path.join(adapters(), "v000002", "adapter_model.safetensors"))).toBe(v4);
  });
});

describe("train loop: the switchboard's verdicts", () => {
  /** The `adapters` table as the sidecar's switchboard writes it (sidecar/hotload/switchboard.ts putRow). */
  async function switchboardTable() {
    const { put, close } = await sharedSwitchboardTable(dataDir, adapters());
    const now = () => new Date().toISOString();
    return {
      live: async (name: string, previous?: string) => {
        if (previous) await put(previous, { status: "retired", statusReason: `replaced by ${name}`, retiredAt: now() });
        await put(name, { status: "live", loadedAt: now(), liveAt: now() });
      },
      rejected: (name: string, reason: string) => put(name, { status: "rejected", statusReason: reason, loadedAt: now() }),
      put,
      close,
    };
  }

  function capturingLogger() {
    const logs: { level: number; msg: string; [k: string]: unknown }[] = [];
    const logger = pino({ level: "info" }, { write: (line: string) => void logs.push(JSON.parse(line)) });
    return { logger, warnings: () => logs.filter((l) => l.level === 40) };
  }

  /** Adapter bytes of the last version after training these batches one after another in a fresh data directory. */
  async function reference(batches: [number, number][]): Promise<string> {
    await freshDataDir();
    await start(config({ batchSize: 2, maxWaitSec: 0 }));
    for (const [k, [from, to]] of batches.entries()) {
      await addJudged(from, to);
      await until(`reference version ${k + 1}`, () => listVersions(adapters()).length === k + 1);
    }
    return sha256File(path.join(listVersions(adapters()).at(-1)!.dir, "adapter_model.safetensors"));
  }

  const REASON = "log-prob check failed: mean |measured − predicted| 2.000 > 0.550";

  it("does not build on a rejected version: the next one has the live version as parent and grows from its weights", async () => {
    const table = await switchboardTable();
    const { logger, warnings } = capturingLogger();
    await addJudged(1, 2);
    const loop = await startTrainLoop(config({ batchSize: 2, maxWaitSec: 0 }), { backend: fakeBackend(), model: "/models/fake.gguf", logger });
    loops.push(loop);
    await until("v000001", () => listVersions(adapters()).length === 1);
    await table.live("v000001");
    await addJudged(3, 4);
    await until("v000002", () => listVersions(adapters()).length === 2);
    const v2Bytes = fs.readFileSync(path.join(adapters(), "v000002", "adapter_model.safetensors"));
    await table.rejected("v000002", REASON);
    await addJudged(5, 6);
    await until("v000003", () => listVersions(adapters()).length === 3);
    const v3 = listVersions(adapters())[2]!;
    expect(v3.manifest).toMatchObject({ parent: "v000001", step: 2, sampleIds: ["call-5", "call-6"] });
    // The rejected version stays on disk as it was; its samples are not trained again.
    expect(fs.readFileSync(path.join(adapters(), "v000002", "adapter_model.safetensors"))).toEqual(v2Bytes);
    expect(allTrained()).toEqual(calls(1, 6));
    expect(warnings().map((w) => w.msg)).toEqual([`not building on v000002: v000002 was rejected by the switchboard (${REASON}); continuing from v000001`]);
    expect(warnings()[0]).toMatchObject({ continuingFrom: "v000001", rejected: [{ version: "v000002", reason: REASON }], abandoned: ["v000002"] });
    // The next step goes on from there, without another warning.
    await addJudged(7, 8);
    await until("v000004", () => listVersions(adapters()).length === 4);
    expect(listVersions(adapters())[3]!.manifest).toMatchObject({ parent: "v000003", step: 3 });
    expect(warnings()).toHaveLength(1);
    await loop.stop();
    await table.close();
    const v3Bytes = sha256File(path.join(v3.dir, "adapter_model.safetensors"));

    // v000003 is v000001 (with its optimizer moments) plus one step on call-5/6.
    expect(await reference([[1, 2], [5, 6]])).toBe(v3Bytes);
  });

  it("abandons a version built on one that is rejected later, and continues from the live one", async () => {
    const table = await switchboardTable();
    await addJudged(1, 2);
    await start(config({ batchSize: 2, maxWaitSec: 0 }));
    await until("v000001", () => listVersions(adapters()).length === 1);
    await table.live("v000001");
    // v000002 and v000003 (on v000002) are written before the switchboard has a verdict on v000002.
    await addJudged(3, 6);
    await until("v000003", () => listVersions(adapters()).length === 3);
    expect(listVersions(adapters())[2]!.manifest.parent).toBe("v000002");
    await table.rejected("v000002", REASON);
    await addJudged(7, 8);
    await until("v000004", () => listVersions(adapters()).length === 4);
    expect(listVersions(adapters())[3]!.manifest).toMatchObject({ parent: "v000001", step: 2, sampleIds: ["call-7", "call-8"] });
    const v4Bytes = sha256File(path.join(adapters(), "v000004", "adapter_model.safetensors"));
    expect(allTrained()).toEqual(calls(1, 8));
    await table.close();

    expect(await reference([[1, 2], [7, 8]])).toBe(v4Bytes);
  });

  it("after a restart, still does not continue from a rejected version", async () => {
    const table = await switchboardTable();
    await addJudged(1, 4);
    const a = await start(config({ batchSize: 2, maxWaitSec: 0 }));
    await until("v000002", () => listVersions(adapters()).length === 2);
    await a.stop();
    await table.live("v000001");
    await table.rejected("v000002", REASON);
    await table.close();
    await addJudged(5, 6);
    await start(config({ batchSize: 2, maxWaitSec: 0 }));
    await until("v000003", () => listVersions(adapters()).length === 3);
    expect(listVersions(adapters())[2]!.manifest).toMatchObject({ parent: "v000001", step: 2 });
  });

  it("starts a fresh adapter when no version in the lineage passed the check", async () => {
    const table = await switchboardTable();
    await addJudged(1, 2);
    await start(config({ batchSize: 2, maxWaitSec: 0 }));
    await until("v000001", () => listVersions(adapters()).length === 1);
    await table.rejected("v000001", "probe under clawloop-v000001 failed: HTTP 500");
    await addJudged(3, 4);
    await until("v000002", () => listVersions(adapters()).length === 2);
    expect(listVersions(adapters())[1]!.manifest).toMatchObject({ parent: null, step: 1, sampleIds: ["call-3", "call-4"] });
    const v2Bytes = sha256File(path.join(adapters(), "v000002", "adapter_model.safetensors"));
    await table.close();

    // The same as a first step on call-3/4 from a fresh adapter and fresh optimizer moments.
    expect(await reference([[3, 4]])).toBe(v2Bytes);
  });

  it("verdicts without a rejection change nothing: the same lineage and bytes as with no sidecar at all", async () => {
    const table = await switchboardTable();
    await addJudged(1, 2);
    await start(config({ batchSize: 2, maxWaitSec: 0 }));
    await until("v000001", () => listVersions(adapters()).length === 1);
    await table.live("v000001");
    await addJudged(3, 4);
    await until("v000002", () => listVersions(adapters()).length === 2);
    await table.live("v000002", "v000001");
    await addJudged(5, 8);
    await until("v000004", () => listVersions(adapters()).length === 4);
    // v000003 was overtaken by v000004 before it was loaded; v000004 waits (e.g. a pin).
    await table.put("v000003", { status: "retired", statusReason: "superseded by v000004 before it was loaded", retiredAt: new Date().toISOString() });
    await table.put("v000004", { statusReason: "pinned to v000002; unpin to go on" });
    await addJudged(9, 10);
    await until("v000005", () => listVersions(adapters()).length === 5);
    const withVerdicts = listVersions(adapters()).map((v) => [v.manifest.parent, v.manifest.files]);
    await table.close();
    expect(withVerdicts.map(([parent]) => parent)).toEqual([null, "v000001", "v000002", "v000003", "v000004"]);

    await freshDataDir();
    await addJudged(1, 10);
    await start(config({ batchSize: 2, maxWaitSec: 0 }));
    await until("v000005", () => listVersions(adapters()).length === 5);
    expect(listVersions(adapters()).map((v) => [v.manifest.parent, v.manifest.files])).toEqual(withVerdicts);
  });
});

describe("train loop: the fall back from a rejected version in the status file", () => {
  const REJECTED = "log-prob check failed: mean |measured − predicted| 2.000 > 0.550";

  it("says which version it grew from after which was rejected and why (what `clawloop status` prints), and keeps it after the next step", async () => {
    const table = await sharedSwitchboardTable(dataDir, adapters());
    const now = () => new Date().toISOString();
    await addJudged(1, 2);
    await start(config({ batchSize: 2, maxWaitSec: 0 }));
    await until("v000001", () => listVersions(adapters()).length === 1);
    expect(readStatus(dataDir)?.fallback).toBeNull();
    await table.put("v000001", { status: "live", loadedAt: now(), liveAt: now() });
    // v000002 and v000003 (built on it) before the switchboard's verdict on v000002.
    await addJudged(3, 6);
    await until("v000003", () => listVersions(adapters()).length === 3);
    expect(readStatus(dataDir)?.fallback).toBeNull();
    await table.put("v000002", { status: "rejected", statusReason: REJECTED, loadedAt: now() });
    await addJudged(7, 8);
    await until("v000004", () => listVersions(adapters()).length === 4);
    const fallback = readStatus(dataDir)?.fallback;
    expect(fallback).toMatchObject({ grewFrom: "v000001", passedOver: "v000003", rejected: [{ version: "v000002", reason: REJECTED }] });
    expect(fallbackText(fallback!)).toBe(`grew from v000001 after v000002 was rejected (${REJECTED}); passed over v000003, built on it`);
    // The line is written with the facts, for readers that cannot import fallbackText (the dashboard).
    expect(fallback!.text).toBe(fallbackText(fallback!));
    // The next step, on v000004 (trusted), keeps the latest fall back in the status.
    await addJudged(9, 10);
    await until("v000005", () => readStatus(dataDir)?.version === "v000005");
    expect(listVersions(adapters())[4]!.manifest.parent).toBe("v000004");
    expect(readStatus(dataDir)?.fallback).toEqual(fallback);
    await table.close();
  });
});
