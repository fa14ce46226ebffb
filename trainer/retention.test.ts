// Retention of adapter versions: which versions stay (unit), and passes over real version
// directories (test/support/adapter-versions.ts) with the live and pinned versions read from a
// real store's adapters table — including a pin that lands between two looks, deletes interrupted
// at each point, and an adapters table that cannot be read.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { PRUNED_FILE, readPruned, writeHead } from "../adapters/index.js";
import { silentLogger, Store, type AdapterVersion, type TrainStep } from "../core/index.js";
import { versionName, writeVersion } from "../test/support/adapter-versions.js";
import { keepSet, readTable, Retention, retainVersions, type InUse } from "./retention.js";
import { TrainerState } from "./state.js";
import { listVersions, readManifest } from "./versions.js";

const none: InUse = { table: [], head: null, tip: null };
const names = (n: number) => Array.from({ length: n }, (_, i) => versionName(i + 1));

describe("keepSet", () => {
  it("keeps the newest K by number, and every version in use whatever its age", () => {
    expect([...keepSet(names(10), 3, none)].sort()).toEqual(["v000008", "v000009", "v000010"]);
    const used: InUse = { table: ["v000002", "v000004"], head: "v000001", tip: "v000005" };
    expect([...keepSet(names(10), 3, used)].sort()).toEqual(["v000001", "v000002", "v000004", "v000005", "v000008", "v000009", "v000010"]);
    // Order of the input does not matter; in-use names that are not versions are not invented.
    expect([...keepSet([...names(4)].reverse(), 1, { table: ["v000099"], head: null, tip: null })]).toEqual(["v000004"]);
  });

  it("keeps everything with K = 0, and with K at least the number of versions", () => {
    expect(keepSet(names(30), 0, none).size).toBe(30);
    expect(keepSet(names(5), 5, none).size).toBe(5);
    expect(keepSet([], 3, { table: ["v000001"], head: "v000001", tip: "v000001" }).size).toBe(0);
  });
});

let root: string;
let adapters: string;
let table: Store;

beforeEach(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), "clawloop-retention-"));
  adapters = path.join(root, "adapters");
  table = await Store.open({ dataDir: root, writes: ["adapters"], flushIntervalMs: 20 });
});

afterEach(async () => {
  await table.close();
  fs.rmSync(root, { recursive: true, force: true });
});

/** A row the way the switchboard records it. */
function row(n: number, patch: Partial<AdapterVersion>): AdapterVersion {
  const dir = path.join(adapters, versionName(n));
  return { id: versionName(n), version: n, dir, manifest: readManifest(dir)!, status: "retired", statusReason: null, pinned: false, loadedAt: null, liveAt: null, retiredAt: null, ...patch };
}

async function record(rows: AdapterVersion[]): Promise<void> {
  for (const r of rows) table.put("adapters", r);
  await table.flush();
}

/** The switchboard's and `adapters list`'s notion of a version: a v<NNNNNN> directory with a manifest. */
function visibleVersions(): string[] {
  return fs
    .readdirSync(adapters)
    .filter((n) => /^v\d{6}$/.test(n) && fs.existsSync(path.join(adapters, n, "manifest.json")))
    .sort();
}

function writeVersions(n: number): void {
  for (let i = 1; i <= n; i++) writeVersion(adapters, i);
}

describe("Retention over real version directories", () => {
  it("keeps the newest, live, pinned, HEAD's and the tip; deletes the rest after the grace, recording their samples", async () => {
    writeVersions(30);
    await record([row(3, { status: "live", liveAt: "2026-01-01T00:00:00Z" }), row(7, { pinned: true }), row(12, { liveAt: "2025-12-31T00:00:00Z" })]);
    writeHead(adapters, "v000010", "rollback to v000010");
    const { inUse } = await readTable(table);
    expect(inUse.sort()).toEqual(["v000003", "v000007"]);
    const r = new Retention({ adaptersDir: adapters, keep: 5, graceMs: 30_000, logger: silentLogger });
    const use: InUse = { table: inUse, head: "v000010", tip: "v000011" };
    const expectKept = ["v000003", "v000007", "v000010", "v000011", "v000026", "v000027", "v000028", "v000029", "v000030"];

    // First look: nothing goes yet.
    const first = r.pass(use, 1_000);
    expect(first.pruned).toEqual([]);
    expect(first.waiting).toHaveLength(30 - expectKept.length);
    expect(visibleVersions()).toHaveLength(30);
    expect(r.due(1_000 + 29_999)).toBe(false);
    expect(r.due(1_000 + 30_000)).toBe(true);

    const second = r.pass(use, 31_000);
    expect(second.pruned).toHaveLength(30 - expectKept.length);
    expect(second.waiting).toEqual([]);
    expect(visibleVersions()).toEqual(expectKept);
    expect(listVersions(adapters).map((v) => v.name)).toEqual(expectKept);
    expect(fs.readdirSync(adapters).filter((n) => n.startsWith("."))).toEqual([]);
    // What outlives the files: samples, parent, number.
    const pruned = readPruned(adapters);
    expect([...pruned.keys()].sort()).toEqual(second.pruned.sort());
    expect(pruned.get("v000004")).toMatchObject({ name: "v000004", version: 4, parent: "v000003", sampleIds: ["sample-4"], prunedAt: expect.any(String) });
    // Nothing left to do.
    expect(r.pass(use, 62_000)).toEqual({ pruned: [], waiting: [], trash: [] });
  });

  it("a pin that lands between the two looks saves the version; a version back in use loses its mark", async () => {
    writeVersions(6);
    const r = new Retention({ adaptersDir: adapters, keep: 2, graceMs: 10_000, logger: silentLogger });
    expect(r.pass({ ...none, table: (await readTable(table)).inUse }, 0).waiting).toEqual(["v000001", "v000002", "v000003", "v000004"]);
    // The user pins v000002 (the sidecar's row reaches the store after the first look).
    await record([row(2, { status: "live", pinned: true, liveAt: new Date().toISOString() })]);
    const second = r.pass({ ...none, table: (await readTable(table)).inUse }, 10_000);
    expect(second.pruned).toEqual(["v000001", "v000003", "v000004"]);
    expect(visibleVersions()).toEqual(["v000002", "v000005", "v000006"]);
    // Unpinned and retired later: it starts a new grace period instead of going at once.
    await record([row(2, { status: "retired", pinned: false })]);
    expect(r.pass({ ...none, table: (await readTable(table)).inUse }, 20_000)).toMatchObject({ pruned: [], waiting: ["v000002"] });
    expect(r.pass({ ...none, table: (await readTable(table)).inUse }, 30_000).pruned).toEqual(["v000002"]);
  });

  it("grace 0 deletes on the first look; keep 0 never deletes", () => {
    writeVersions(4);
    expect(new Retention({ adaptersDir: adapters, keep: 0, graceMs: 0 }).pass(none, 0).pruned).toEqual([]);
    expect(visibleVersions()).toHaveLength(4);
    expect(new Retention({ adaptersDir: adapters, keep: 1, graceMs: 0 }).pass(none, 0).pruned).toEqual(["v000001", "v000002", "v000003"]);
    expect(visibleVersions()).toEqual(["v000004"]);
  });

  it("survives a crash after the rename: the half-deleted directory is never a version, and goes on the next pass", () => {
    writeVersions(5);
    const crashing = new Retention({
      adaptersDir: adapters,
      keep: 1,
      graceMs: 0,
      hooks: {
        beforeRemove: (name, trash) => {
          // Half of the files gone, as if the process died inside the recursive remove.
          fs.rmSync(path.join(trash, "adapter_model.safetensors"));
          if (name === "v000002") throw new Error("killed");
        },
      },
    });
    expect(() => crashing.pass(none, 0)).toThrow("killed");
    const left = fs.readdirSync(adapters);
    expect(left.filter((n) => n.startsWith(".trash-v000002-"))).toHaveLength(1);
    expect(visibleVersions()).toEqual(["v000003", "v000004", "v000005"]);
    expect(listVersions(adapters).map((v) => v.name)).toEqual(["v000003", "v000004", "v000005"]);
    // All four were recorded before the first rename.
    expect([...readPruned(adapters).keys()]).toEqual(["v000001", "v000002", "v000003", "v000004"]);

    // The restarted trainer's first pass removes the leftovers and deletes the rest.
    const next = new Retention({ adaptersDir: adapters, keep: 1, graceMs: 0 }).pass(none, 0);
    expect(next.trash).toEqual([expect.stringMatching(/^\.trash-v000002-/)]);
    expect(next.pruned).toEqual(["v000003", "v000004"]);
    expect(fs.readdirSync(adapters).sort()).toEqual([PRUNED_FILE, "v000005"]);
    // Recorded twice, read once.
    expect([...readPruned(adapters).keys()]).toEqual(["v000001", "v000002", "v000003", "v000004"]);
  });

  it("survives a crash between the record and the rename, and a record torn mid-line", () => {
    writeVersions(3);
    const crashing = new Retention({ adaptersDir: adapters, keep: 1, graceMs: 0, hooks: { beforeRename: () => { throw new Error("killed"); } } });
    expect(() => crashing.pass(none, 0)).toThrow("killed");
    // Recorded but still whole: still a version.
    expect(visibleVersions()).toEqual(["v000001", "v000002", "v000003"]);
    expect([...readPruned(adapters).keys()]).toEqual(["v000001", "v000002"]);
    // A crash in the middle of the next append leaves half a line.
    fs.appendFileSync(path.join(adapters, PRUNED_FILE), '{"name":"v000001","vers');
    expect([...readPruned(adapters).keys()]).toEqual(["v000001", "v000002"]);
    expect(new Retention({ adaptersDir: adapters, keep: 1, graceMs: 0 }).pass(none, 0).pruned).toEqual(["v000001", "v000002"]);
    expect(visibleVersions()).toEqual(["v000003"]);
    // The torn line did not swallow the records after it.
    const lines = fs.readFileSync(path.join(adapters, PRUNED_FILE), "utf8").trim().split("\n");
    expect(lines.at(-1)).toMatch(/"name":"v000002"/);
    expect([...readPruned(adapters).keys()]).toEqual(["v000001", "v000002"]);
  });
});

/** The train_steps row the trainer keeps beside a version's optimizer state (its values do not matter here). */
function stepOf(version: string): TrainStep {
  return {
    id: version, step: 1, version, mode: "rl", loss: 0, lossRl: 0, lossOpd: 0, klToBase: null, meanReward: 0, meanAbsAdvantage: 0,
    gradNorm: 0, tokens: 0, samples: 0, sampleIds: [], lr: 0, durationMs: 0, behaviourMismatch: null, createdAt: new Date(0).toISOString(),
  };
}

describe("retainVersions (what the trainer runs after each step)", () => {
  it("keeps the optimizer states of the two newest and of the versions in use or that served last; deletes old versions", async () => {
    writeVersions(8);
    const state = new TrainerState(path.join(root, "trainer"));
    for (let i = 1; i <= 8; i++) state.save(versionName(i), new Uint8Array([i]), stepOf(versionName(i)));
    await record([
      row(1, { liveAt: "2026-01-01T00:01:00Z" }),
      row(2, { liveAt: "2026-01-01T00:02:00Z" }),
      row(3, { liveAt: "2026-01-01T00:03:00Z" }),
      row(4, { status: "live", liveAt: "2026-01-01T00:04:00Z" }),
    ]);
    writeHead(adapters, "v000005", "rollback to v000005");
    const retention = new Retention({ adaptersDir: adapters, keep: 2, graceMs: 0 });
    const latest = listVersions(adapters).at(-1)!;
    const r = await retainVersions({ store: table, adaptersDir: adapters, state, retention, latest, logger: silentLogger });
    // Versions: newest 2 (7, 8), live 4, HEAD 5.
    expect(r?.pruned).toEqual(["v000001", "v000002", "v000003", "v000006"]);
    expect(visibleVersions()).toEqual(["v000004", "v000005", "v000007", "v000008"]);
    // Optimizer states: newest 2, live 4, HEAD 5, and the two that served before the live one (3, 2).
    const states = fs.readdirSync(state.dir).filter((n) => n.startsWith("optim-")).sort();
    expect(states).toEqual(["v000002", "v000003", "v000004", "v000005", "v000007", "v000008"].map((v) => `optim-${v}.bin`));
  });

  it("deletes nothing when the adapters table cannot be read", async () => {
    writeVersions(5);
    await record([row(5, { status: "live" })]);
    await table.close();
    const data = path.join(root, "store", "adapters.lance", "data");
    for (const f of fs.readdirSync(data)) fs.writeFileSync(path.join(data, f), "garbage");
    table = await Store.open({ dataDir: root });
    const state = new TrainerState(path.join(root, "trainer"));
    for (let i = 1; i <= 5; i++) state.save(versionName(i), new Uint8Array([i]), stepOf(versionName(i)));
    const warnings: string[] = [];
    const logger = pino({ level: "warn" }, {
      write: (line: string) => {
        const j = JSON.parse(line) as { msg: string; err: string };
        warnings.push(`${j.msg}: ${j.err}`);
      },
    });
    const retention = new Retention({ adaptersDir: adapters, keep: 1, graceMs: 0 });
    expect(await retainVersions({ store: table, adaptersDir: adapters, state, retention, latest: listVersions(adapters).at(-1)!, logger })).toBe(null);
    expect(visibleVersions()).toHaveLength(5);
    expect(fs.readdirSync(state.dir).filter((n) => n.startsWith("optim-"))).toHaveLength(5);
    expect(warnings).toEqual([expect.stringMatching(/^adapter retention skipped this time \(nothing deleted\): /)]);
  });
});
