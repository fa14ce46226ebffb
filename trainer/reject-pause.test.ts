// Training pauses itself when the switchboard rejected the last train.pauseAfterRejections versions
// in a row (trainer/reject-pause.ts): the counting rule as a pure decision, and the train loop
// acting on it on a real store (LanceDB), with the `adapters` table written as the sidecar's
// switchboard writes it, and the stand-in engine (trainer/testing/fake-backend.ts).
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { appendPruned, readPruned } from "../adapters/index.js";
import { loadConfig, readTrainPause, resumeTraining, Store, type Config } from "../core/index.js";
import { putJudgedTurns } from "../test/support/rows.js";
import { until } from "../test/support/until.js";
import { switchboardTable as sharedSwitchboardTable } from "../test/support/switchboard-table.js";
import { startTrainLoop, type TrainLoop } from "./loop.js";
import { pauseOnRejections, readRejectPauseMemory, rejectionRun, rejectPauseFile } from "./reject-pause.js";
import { readStatus } from "./status.js";
import { fakeBackend } from "./testing/fake-backend.js";
import { NO_VERDICTS, type Verdicts } from "./verdicts.js";
import { listVersions, versionName } from "./versions.js";

const v = versionName;

function verdicts(rejected: Record<number, string>, accepted: number[] = []): Verdicts {
  return { rejected: new Map(Object.entries(rejected).map(([k, why]) => [v(Number(k)), why])), accepted: new Set(accepted.map(v)) };
}

const upTo = (n: number) => Array.from({ length: n }, (_, i) => v(i + 1));

describe("the run of rejections", () => {
  it("the last N verdicts all rejections: the newest N, oldest first, with their reasons", () => {
    const run = rejectionRun(upTo(5), verdicts({ 2: "a", 3: "b", 4: "c", 5: "d" }, [1]), 3);
    expect(run).toEqual([{ version: "v000003", reason: "b" }, { version: "v000004", reason: "c" }, { version: "v000005", reason: "d" }]);
    expect(rejectionRun(upTo(5), verdicts({ 3: "b", 4: "c", 5: "d" }, [1]), 4)).toBe(null);
  });

  it("a version that went live ends the run", () => {
    expect(rejectionRun(upTo(5), verdicts({ 2: "a", 3: "b", 5: "d" }, [4]), 3)).toBe(null);
    expect(rejectionRun(upTo(5), verdicts({ 2: "a", 3: "b", 5: "d" }, [4]), 1)).toEqual([{ version: "v000005", reason: "d" }]);
  });

  it("a version without a verdict neither counts nor ends the run (not checked yet, or overtaken before it was loaded)", () => {
    // v6 not checked yet, v4 superseded: the last three verdicts are v2, v3 and v5.
    expect(rejectionRun(upTo(6), verdicts({ 2: "a", 3: "b", 5: "d" }, [1]), 3)?.map((r) => r.version)).toEqual(["v000002", "v000003", "v000005"]);
  });

  it("a rejected version that once was live (its files went bad) counts as rejected", () => {
    const once: Verdicts = { rejected: new Map([["v000001", "a"], ["v000002", "b"], ["v000003", "hashes"]]), accepted: new Set(["v000003"]) };
    expect(rejectionRun(upTo(3), once, 3)?.map((r) => r.version)).toEqual(["v000001", "v000002", "v000003"]);
  });

  it("only this directory's versions count: rows for versions it does not have are not looked at", () => {
    // The table names v7…v9 (a directory moved away, or deleted by hand); this one has v1…v3.
    expect(rejectionRun(upTo(3), verdicts({ 3: "a", 7: "x", 8: "y", 9: "z" }), 3)).toBe(null);
  });

  it("only versions above the mark of the last pause count", () => {
    const all = verdicts({ 2: "a", 3: "b", 4: "c", 5: "d", 6: "e" }, [1]);
    expect(rejectionRun(upTo(6), all, 3, 4)).toBe(null);
    expect(rejectionRun(upTo(7), verdicts({ 2: "a", 3: "b", 4: "c", 5: "d", 6: "e", 7: "f" }, [1]), 3, 4)?.map((r) => r.version)).toEqual(["v000005", "v000006", "v000007"]);
  });

  it("0: never", () => {
    expect(rejectionRun(upTo(5), verdicts({ 1: "a", 2: "b", 3: "c", 4: "d", 5: "e" }), 0)).toBe(null);
    expect(rejectionRun(upTo(5), NO_VERDICTS, 1)).toBe(null);
  });
});

describe("pauseOnRejections on a data directory", () => {
  let root: string;
  let adaptersDir: string;
  let stateDir: string;
  beforeEach(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), "clawloop-reject-pause-"));
    adaptersDir = path.join(root, "adapters");
    stateDir = path.join(root, "trainer");
    fs.mkdirSync(adaptersDir);
  });
  afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

  /** Version directories with just a manifest: all listVersions needs. */
  function writeVersions(from: number, to: number): void {
    for (let k = from; k <= to; k++) {
      fs.mkdirSync(path.join(adaptersDir, v(k)));
      fs.writeFileSync(path.join(adaptersDir, v(k), "manifest.json"), JSON.stringify({ version: k, name: v(k), parent: null, sampleIds: [], files: {} }));
    }
  }
  const ctx = (pauseAfter = 3) => ({ dataDir: root, adaptersDir, stateDir, pauseAfter, logger: pino({ level: "silent" }) });

  it("counts versions deleted by retention, and marks the newest version number as counted", () => {
    writeVersions(4, 5);
    const at = "2026-01-01T00:00:00Z";
    appendPruned(adaptersDir, [1, 2, 3].map((k) => ({ name: v(k), version: k, parent: k > 1 ? v(k - 1) : null, step: k, baseModelHash: "h", sampleIds: [], createdAt: at, prunedAt: at })));
    // v3 (pruned) and v4 rejected, v5 not checked yet; v2 live once.
    expect(pauseOnRejections(ctx(2), verdicts({ 3: "x", 4: "y" }, [2]))).toMatchObject({ by: "trainer", reason: expect.stringContaining("(v000003: x; v000004: y)") });
    expect(readRejectPauseMemory(stateDir)).toMatchObject({ countedThrough: 5, versions: ["v000003", "v000004"] });
  });

  it("someone else's pause stays as it is, and the run is not marked counted", () => {
    writeVersions(1, 3);
    fs.writeFileSync(path.join(root, "train.paused"), JSON.stringify({ since: "2026-01-01T00:00:00Z", by: "cli", reason: "lunch" }));
    expect(pauseOnRejections(ctx(), verdicts({ 1: "a", 2: "b", 3: "c" }))).toMatchObject({ by: "cli", reason: "lunch" });
    expect(fs.existsSync(rejectPauseFile(stateDir))).toBe(false);
    // After their resume, this run pauses with its own reason.
    resumeTraining(root);
    expect(pauseOnRejections(ctx(), verdicts({ 1: "a", 2: "b", 3: "c" }))?.by).toBe("trainer");
  });

  it("a mark above every version (the adapters directory started over) is forgotten", () => {
    writeVersions(1, 3);
    fs.mkdirSync(stateDir);
    fs.writeFileSync(rejectPauseFile(stateDir), JSON.stringify({ countedThrough: 9, versions: [], at: "" }));
    expect(pauseOnRejections(ctx(), verdicts({ 1: "a", 2: "b", 3: "c" }))?.by).toBe("trainer");
    expect(readRejectPauseMemory(stateDir)?.countedThrough).toBe(3);
  });

  it("an unreadable mark counts every version (the side that spends no samples)", () => {
    writeVersions(1, 3);
    fs.mkdirSync(stateDir);
    fs.writeFileSync(rejectPauseFile(stateDir), "{torn");
    expect(pauseOnRejections(ctx(), verdicts({ 1: "a", 2: "b", 3: "c" }))?.by).toBe("trainer");
  });
});

describe("train loop: pausing after rejections in a row", () => {
  let dataDir: string;
  let writer: Store;
  let table: Awaited<ReturnType<typeof switchboardTable>>;
  const loops: TrainLoop[] = [];

  beforeEach(async () => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "clawloop-reject-pause-loop-"));
    writer = await Store.open({ dataDir, writes: ["turns", "judgments"], flushIntervalMs: 50 });
    table = await switchboardTable();
  });
  afterEach(async () => {
    for (const l of loops.splice(0)) await l.stop();
    await table.close();
    await writer.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  const adapters = () => path.join(dataDir, "adapters");
  const names = () => listVersions(adapters()).map((x) => x.name);

  /** The `adapters` table as the sidecar's switchboard writes it (sidecar/hotload/switchboard.ts putRow, reject, switchTo). */
  async function switchboardTable() {
    const { put, close } = await sharedSwitchboardTable(dataDir, adapters());
    const now = () => new Date().toISOString();
    return {
      live: (name: string) => put(name, { status: "live", statusReason: null, liveAt: now(), retiredAt: null }),
      rejected: (name: string) => put(name, { status: "rejected", statusReason: `log-prob check failed on ${name}` }),
      superseded: (name: string, by: string) => put(name, { status: "retired", statusReason: `superseded by ${by} before it was loaded`, retiredAt: now() }),
      close,
    };
  }

  let nextCall = 1;
  beforeEach(() => void (nextCall = 1));
  /** Two more judged turns: one step's batch. */
  async function addBatch(): Promise<void> {
    await putJudgedTurns(writer, nextCall, nextCall + 1);
    nextCall += 2;
  }

  function config(train: Partial<Config["train"]> = {}): Config {
    return loadConfig({ env: {}, flags: { dataDir, train: { batchSize: 2, maxWaitSec: 0, pollMs: 30, lr: 0.1, ...train } } });
  }

  async function start(cfg = config()) {
    const logs: { level: number; msg: string; [k: string]: unknown }[] = [];
    const logger = pino({ level: "info" }, { write: (line: string) => void logs.push(JSON.parse(line)) });
    const loop = await startTrainLoop(cfg, { backend: fakeBackend(), model: "/models/fake.gguf", logger });
    loops.push(loop);
    return { loop, errors: () => logs.filter((l) => l.level === 50) };
  }

  /** One step: a batch arrives and version `name` is written. */
  async function step(name: string): Promise<void> {
    await addBatch();
    await until(name, () => names().at(-1) === name);
  }

  /** A batch arrives and the trainer pauses instead of stepping; the batch keeps waiting. */
  async function pausedWithBatchWaiting(): Promise<string> {
    const before = names();
    await addBatch();
    const status = await until("the trainer to pause itself", () => {
      const s = readStatus(dataDir);
      return s?.state === "paused" && s.samplesWaiting === 2 ? s : null;
    });
    // Several more polls (30 ms each) while paused: still no step.
    await new Promise((r) => setTimeout(r, 300));
    expect(names()).toEqual(before);
    expect(readStatus(dataDir)).toMatchObject({ state: "paused", samplesWaiting: 2 });
    return status.paused!.reason!;
  }

  const reasonFor = (versions: string[]) =>
    `the sidecar rejected the last ${versions.length} adapter versions it checked (${versions.map((n) => `${n}: log-prob check failed on ${n}`).join("; ")}); ` +
    "training is paused so that no more samples are spent on versions that will not be served. Check the model server and the rejection " +
    "reasons (clawloop status, /clawloop/v1/status), then run `clawloop train resume`.";

  it("after N rejections in a row, pauses training with a reason naming them, and starts no further step", async () => {
    const { errors } = await start();
    await step("v000001");
    await table.live("v000001");
    for (const name of ["v000002", "v000003", "v000004"]) {
      await step(name);
      await table.rejected(name);
    }
    const reason = await pausedWithBatchWaiting();
    expect(reason).toBe(reasonFor(["v000002", "v000003", "v000004"]));
    expect(readTrainPause(dataDir)).toMatchObject({ by: "trainer", reason });
    expect(errors()).toMatchObject([{ msg: reason, rejected: [{ version: "v000002" }, { version: "v000003" }, { version: "v000004" }] }]);
    // Each version after a rejection grew from the live one (the pause does not change that).
    expect(listVersions(adapters()).map((x) => x.manifest.parent)).toEqual([null, "v000001", "v000001", "v000001"]);
  });

  it("N − 1 rejections and then an accepted version: no pause; the run starts over after it", async () => {
    await start();
    await step("v000001");
    await table.live("v000001");
    await step("v000002");
    await table.rejected("v000002");
    await step("v000003");
    await table.rejected("v000003");
    await step("v000004");
    await table.live("v000004");
    await step("v000005");
    await table.rejected("v000005");
    // v000006 overtaken before it was loaded: no verdict, it does not end the run.
    await step("v000006");
    await step("v000007");
    await table.superseded("v000006", "v000007");
    await table.rejected("v000007");
    // Four rejections in all, three of them before v000004 went live: no pause yet.
    await step("v000008");
    expect(readTrainPause(dataDir)).toBe(null);
    await table.rejected("v000008");
    const reason = await pausedWithBatchWaiting();
    expect(reason).toBe(reasonFor(["v000005", "v000007", "v000008"]));
  });

  it("after a resume (and a restart), the same rejections do not pause again; N new ones do", async () => {
    const first = await start();
    await step("v000001");
    for (const name of ["v000001", "v000002", "v000003"]) {
      if (name !== "v000001") await step(name);
      await table.rejected(name);
    }
    expect(await pausedWithBatchWaiting()).toBe(reasonFor(["v000001", "v000002", "v000003"]));
    resumeTraining(dataDir);
    // The waiting batch is trained on (from a fresh adapter: no version passed the check).
    await until("v000004", () => names().at(-1) === "v000004");
    expect(readTrainPause(dataDir)).toBe(null);
    expect(listVersions(adapters()).at(-1)!.manifest.parent).toBe(null);
    // A restart remembers what the last pause counted.
    await first.loop.stop();
    const second = await start();
    await step("v000005");
    expect(readTrainPause(dataDir)).toBe(null);
    expect(second.errors()).toEqual([]);
    // Three rejections of versions written after the resume: paused again, naming only them.
    await table.rejected("v000004");
    await step("v000006");
    await table.rejected("v000005");
    await step("v000007");
    expect(readTrainPause(dataDir)).toBe(null);
    await table.rejected("v000007");
    expect(await pausedWithBatchWaiting()).toBe(reasonFor(["v000004", "v000005", "v000007"]));
  });

  it("a due step lists the adapters directory and reads PRUNED.jsonl once, for the verdicts, the fall back and the pause together", async () => {
    let listings = 0;
    let prunedReads = 0;
    const counted = (dir: string) => {
      listings++;
      return listVersions(dir);
    };
    const countedPruned = (dir: string) => {
      prunedReads++;
      return readPruned(dir);
    };
    const logger = pino({ level: "silent" });
    loops.push(await startTrainLoop(config(), { backend: fakeBackend(), model: "/models/fake.gguf", logger, listVersions: counted, readPruned: countedPruned }));
    await step("v000001");
    await table.live("v000001");
    for (const name of ["v000002", "v000003", "v000004"]) {
      await step(name);
      await table.rejected(name);
    }
    // The next batch is due twice: once to fall back from the rejected v000004 (verdicts read, the
    // lineage checked, resumed from v000001), once to pause (3 rejections in a row). Each used to
    // list the directory and read PRUNED.jsonl for every one of those (5 listings, 5 reads: the
    // verdicts, the lineage and the resume, then the verdicts and the pause); now each does both once.
    listings = 0;
    prunedReads = 0;
    await pausedWithBatchWaiting();
    expect(listings).toBe(2);
    expect(prunedReads).toBe(2);
  });

  it("train.pauseAfterRejections 0 never pauses; the default (3) then pauses on the same verdicts", async () => {
    expect(loadConfig({ env: { CLAWLOOP_TRAIN_PAUSE_AFTER_REJECTIONS: "0" }, flags: { dataDir } }).train.pauseAfterRejections).toBe(0);
    expect(config().train.pauseAfterRejections).toBe(3);
    const off = await start(config({ pauseAfterRejections: 0 }));
    for (const name of ["v000001", "v000002", "v000003", "v000004"]) {
      await step(name);
      await table.rejected(name);
    }
    await step("v000005");
    expect(readTrainPause(dataDir)).toBe(null);
    expect(off.errors()).toEqual([]);
    await off.loop.stop();
    await table.rejected("v000005");
    await start();
    expect(await pausedWithBatchWaiting()).toBe(reasonFor(["v000003", "v000004", "v000005"]));
  });
});
