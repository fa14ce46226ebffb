// clawloop status on a store of a few thousand turns: the totals are exact, the waiting numbers are
// right for the newest main-line turns, and the command reads a bounded part of the store (seen
// through a wrapper around the real LanceDB store): never a turn's full row, never every turn.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig, pauseTraining, resumeTraining, Store, type AdapterVersion, type Config, type Judgment, type NextState, type TableName, type TrainStep } from "../../core/index.js";
import { makeTurn } from "../../test/support/rows.js";
import { collectStatus, formatStatus, type StatusStore } from "./status.js";
import { newStatus, statusFile, writeStatus } from "../../trainer/status.js";

const N = 3_000; // main-line turns
const SIDE = 100;
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "clawloop-status-"));
const config: Config = loadConfig({ file: null, flags: { dataDir } });
const NOW = Date.now();
// One main-line turn a second, the newest a minute ago.
const startedAt = (i: number) => new Date(NOW - 60_000 - (N - 1 - i) * 1_000).toISOString();

// Turn i: a next state unless i % 3 == 0 (two for i % 3 == 2); judged when i % 3 == 1, score
// +1, 0 or −1 by i % 9; turns i % 9 == 1 below N − 100 trained by a step made just now.
const hasNext = (i: number) => i % 3 !== 0;
const judgedScore = (i: number): -1 | 0 | 1 | null => (i % 3 === 1 ? ([1, 0, -1] as const)[Math.floor(i / 3) % 3]! : null);
const trained = (i: number) => i % 9 === 1 && i < N - 100;

function nextState(id: string, turnId: string | null, i: number): NextState {
  return { id, kind: "user_message", sessionId: "s1", forRunId: null, forCallId: null, turnId, text: "ok", score: null, toolName: null, toolCallId: null, exitCode: null, at: startedAt(i), receivedAt: startedAt(i), source: "plugin" };
}

function judgment(i: number, score: -1 | 0 | 1): Judgment {
  const id = `call-${i}`;
  return { id, turnId: id, sessionId: "s1", score, method: "rules", votes: [score], raw: [], hint: null, nextStateIds: [], judgeModel: null, costTokens: 0, costMs: 1, createdAt: startedAt(i) };
}

beforeAll(async () => {
  const store = await Store.open({ dataDir, writes: ["turns", "next_states", "judgments", "train_steps", "adapters"] });
  try {
    for (let i = 0; i < N; i++) {
      store.put("turns", makeTurn(i, { startedAt: startedAt(i) }));
      if (hasNext(i)) store.put("next_states", nextState(`ns-${i}`, `call-${i}`, i));
      if (i % 3 === 2) store.put("next_states", nextState(`ns-${i}-b`, `call-${i}`, i));
      const score = judgedScore(i);
      if (score !== null) store.put("judgments", judgment(i, score));
    }
    for (let k = 0; k < SIDE; k++) store.put("turns", makeTurn(N + k, { id: `side-${k}`, turnType: "side", startedAt: startedAt(k) }));
    for (let k = 0; k < 20; k++) store.put("next_states", nextState(`orphan-${k}`, null, k));
    const ids = Array.from({ length: N }, (_, i) => i).filter(trained).map((i) => `call-${i}`);
    const step: TrainStep = {
      id: "v000001", step: 1, version: "v000001", mode: "rl", loss: 0.1, lossRl: 0.1, lossOpd: 0, klToBase: null, meanReward: 0, meanAbsAdvantage: 1,
      gradNorm: 1, tokens: 10, samples: ids.length, sampleIds: ids, lr: 1e-4, durationMs: 5, behaviourMismatch: null, createdAt: new Date(NOW).toISOString(),
    };
    store.put("train_steps", step);
    const dir = path.join(dataDir, "adapters", "v000001");
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, "manifest.json"), "{}");
    const version: AdapterVersion = {
      id: "v000001", version: 1, dir, status: "live", statusReason: null, pinned: false, loadedAt: null, liveAt: null, retiredAt: null,
      manifest: { version: 1, name: "v000001", parent: null, baseModel: "m", baseModelHash: "h", step: 7, sampleCount: ids.length, sampleIds: ids, rank: 4, alpha: 8, targetModules: ["q_proj"], createdAt: new Date(NOW).toISOString(), files: {} },
    };
    store.put("adapters", version);
    await store.flush();
  } finally {
    await store.close();
  }
}, 300_000);

afterAll(() => fs.rmSync(dataDir, { recursive: true, force: true }));

interface Read {
  method: "list" | "listFields";
  table: TableName;
  fields: string[] | null;
  limit: number | undefined;
  sql: string | undefined;
  rows: number;
}

/** The real store, with every list/listFields call and how many rows it returned written down. */
function watched(store: Store, reads: Read[]): StatusStore {
  return {
    count: (t, w) => store.count(t, w),
    health: () => store.health(),
    list: async (table, q = {}) => {
      const rows = await store.list(table, q);
      reads.push({ method: "list", table, fields: null, limit: q.limit, sql: q.sql, rows: rows.length });
      return rows;
    },
    listFields: async (table, fields, q = {}) => {
      const rows = await store.listFields(table, fields, q);
      reads.push({ method: "listFields", table, fields: [...fields], limit: q.limit, sql: q.sql, rows: rows.length });
      return rows;
    },
  };
}

/** The waiting numbers computed the slow way over the newest `w` main-line turns. */
function expected(w: number) {
  const window = Array.from({ length: Math.min(w, N) }, (_, k) => N - 1 - k);
  return {
    waitingForNextState: window.filter((i) => !hasNext(i)).length,
    waitingForJudge: window.filter((i) => hasNext(i) && judgedScore(i) === null).length,
    waitingForTraining: window.filter((i) => (judgedScore(i) ?? 0) !== 0 && !trained(i)).length,
  };
}

describe("clawloop status", () => {
  it("counts everything, works out the waiting numbers over the newest main-line turns, and reads only those", async () => {
    const W = 200;
    const store = await Store.open({ dataDir, writes: [] });
    const reads: Read[] = [];
    let report;
    try {
      report = await collectStatus(config, "http://127.0.0.1:9", { store: watched(store, reads), window: W });
    } finally {
      await store.close();
    }
    const ex = expected(W);
    // Sanity of the data: each waiting number is non-trivial in the window.
    expect(ex.waitingForNextState).toBeGreaterThan(0);
    expect(ex.waitingForJudge).toBeGreaterThan(0);
    expect(ex.waitingForTraining).toBeGreaterThan(0);
    expect(report.counts).toEqual({
      turns: N + SIDE,
      mainTurns: N,
      nextStates: (2 * N) / 3 + N / 3, // one per turn with a next state, two for a third of them (the unlinked ones not counted)
      judgments: N / 3,
      ...ex,
      window: { mainTurns: W, complete: false },
    });
    expect(report.adapters).toMatchObject({ live: "v000001", liveStep: 7, versions: 1 });
    expect(report.sidecar.running).toBe(false);
    expect(formatStatus(report)).toContain(`(waiting counts over the newest ${W} of ${N} main-line turns)`);

    // What was read: no full rows of any turn, never all the turns, and of the other tables only
    // what refers to the window's turns.
    expect(reads.filter((r) => r.method === "list")).toEqual([]);
    const turnReads = reads.filter((r) => r.table === "turns");
    expect(turnReads.length).toBeGreaterThan(0);
    for (const r of turnReads) {
      expect(r.fields).toEqual(["startedAt"]);
      expect(r.limit).toBeDefined();
      expect(r.limit!).toBeLessThanOrEqual(4 * W);
    }
    const turnRows = turnReads.reduce((n, r) => n + r.rows, 0);
    console.log(`status read ${turnRows} turn rows (ids and times) in ${turnReads.length} queries, of ${N + SIDE}`);
    expect(turnRows).toBeLessThan(N);
    const rowsOf = (t: TableName) => reads.filter((r) => r.table === t).reduce((n, r) => n + r.rows, 0);
    expect(rowsOf("next_states")).toBeLessThanOrEqual(2 * W);
    expect(rowsOf("judgments")).toBeLessThanOrEqual(W);
    expect(reads.find((r) => r.table === "adapters" && r.fields?.includes("manifest"))?.rows).toBe(1);
  });

  it("is exact over every main-line turn when the window holds them all", async () => {
    const report = await collectStatus(config, "http://127.0.0.1:9", { window: N + 1 });
    expect(report.counts).toMatchObject({ ...expected(N), mainTurns: N, window: { mainTurns: N, complete: true } });
    expect(formatStatus(report)).not.toContain("waiting counts over");
  });

  it("says who paused training and why", async () => {
    pauseTraining(dataDir, "trainer", "the sidecar rejected the last 3 adapter versions it checked");
    try {
      const report = await collectStatus(config, "http://127.0.0.1:9");
      expect(formatStatus(report)).toMatch(/PAUSED since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d by trainer: the sidecar rejected the last 3 adapter versions it checked \(clawloop train resume\)/);
    } finally {
      resumeTraining(dataDir);
    }
  });

  it("says from which version the trainer grew after a rejection, and why (the trainer's status file)", async () => {
    const reason = "log-prob check failed: mean |measured − predicted| 2.000 > 0.550";
    const at = "2026-03-01T12:34:56.000Z";
    writeStatus(dataDir, { ...newStatus("rl", "m"), fallback: { grewFrom: "v000001", passedOver: "v000002", rejected: [{ version: "v000002", reason }], at } });
    try {
      const report = await collectStatus(config, "http://127.0.0.1:9");
      const lines = formatStatus(report).split("\n");
      const train = lines.findIndex((l) => l.startsWith("train "));
      expect(lines[train + 1]).toBe(`          fell back: grew from v000001 after v000002 was rejected (${reason}) (2026-03-01 12:34:56)`);
      expect(report.train.status?.fallback?.grewFrom).toBe("v000001");
    } finally {
      fs.rmSync(statusFile(dataDir), { force: true });
    }
    // None: no line.
    expect(formatStatus(await collectStatus(config, "http://127.0.0.1:9"))).not.toContain("fell back");
  });

  it("says whether the running trainer holds its base model (it loads it only when a batch is ready)", async () => {
    const since = "2026-03-01T12:34:56.000Z";
    const line = async () => formatStatus(await collectStatus(config, "http://127.0.0.1:9")).split("\n").find((l) => l.trim().startsWith("model "));
    try {
      writeStatus(dataDir, { ...newStatus("rl", "SmolLM2-135M-Instruct"), state: "waiting", weights: { state: "not loaded", since, rssMb: 161 } });
      expect(await line()).toBe("          model SmolLM2-135M-Instruct: not loaded (loads when a batch is ready; trainer RSS 161 MB)");
      writeStatus(dataDir, { ...newStatus("rl", "SmolLM2-135M-Instruct"), state: "training", weights: { state: "loaded", since, rssMb: 720 } });
      expect(await line()).toBe("          model SmolLM2-135M-Instruct: loaded (trainer RSS 720 MB)");
      // A stopped trainer holds nothing: no line.
      writeStatus(dataDir, { ...newStatus("rl", "SmolLM2-135M-Instruct"), state: "stopped", weights: { state: "loaded", since, rssMb: 720 } });
      expect(await line()).toBeUndefined();
    } finally {
      fs.rmSync(statusFile(dataDir), { force: true });
    }
  });
});
