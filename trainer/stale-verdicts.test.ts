// The switchboard's verdicts after a lineage started over (the adapters directory moved away, the
// data kept, as the trainer's base-model error tells the user to do): the store's `adapters` table
// still holds the old lineage's rows under the names the new lineage writes again (v000001, …). They
// are not verdicts on the new versions: the trainer neither passes over a new version for an old
// rejection nor pauses for old rejections. Real LanceDB store, versions written as the trainer does.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Store, type AdapterVersion } from "../core/index.js";
import { tinyAdapter, writeVersion } from "../test/support/adapter-versions.js";
import { pauseOnRejections } from "./reject-pause.js";
import { readVerdicts } from "./verdicts.js";
import { readManifest, versionName } from "./versions.js";

let root: string;
let store: Store;
beforeEach(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), "clawloop-stale-verdicts-"));
  store = await Store.open({ dataDir: root, writes: ["adapters"], flushIntervalMs: 50 });
});
afterEach(async () => {
  await store.close();
  fs.rmSync(root, { recursive: true, force: true });
});

const adaptersDir = () => path.join(root, "adapters");

/** A row as the switchboard writes it for the version now in `dir`. */
async function putRow(dir: string, patch: Partial<AdapterVersion>): Promise<void> {
  const name = path.basename(dir);
  store.put("adapters", {
    id: name, version: Number(name.slice(1)), dir, manifest: readManifest(dir)!, status: "candidate", statusReason: null,
    pinned: false, loadedAt: null, liveAt: null, retiredAt: null, ...patch,
  });
  await store.flush();
}

/** The old lineage: v1 live, then v2…v4 rejected; then the directory moved away. */
async function oldLineage(): Promise<void> {
  const at = new Date().toISOString();
  await putRow(writeVersion(adaptersDir(), 1), { status: "live", liveAt: at });
  for (const k of [2, 3, 4]) await putRow(writeVersion(adaptersDir(), k), { status: "rejected", statusReason: `old rejection of v${k}` });
  fs.renameSync(adaptersDir(), path.join(root, "adapters.old"));
}

/** The new lineage's versions 1…n (other weights than the old ones). */
function newLineage(n: number): string[] {
  return Array.from({ length: n }, (_, i) => writeVersion(adaptersDir(), i + 1, { adapter: tinyAdapter(100 + i) }));
}

describe("verdicts after the lineage started over", () => {
  it("old rows under the new versions' names are not verdicts on them; a row on a new version is", async () => {
    await oldLineage();
    const dirs = newLineage(4);
    let v = await readVerdicts(store, adaptersDir());
    expect([...v.rejected.keys()]).toEqual([]);
    expect([...v.accepted]).toEqual([]);
    // The switchboard rejects the new v3: that row describes it, and counts.
    await putRow(dirs[2]!, { status: "rejected", statusReason: "new rejection" });
    v = await readVerdicts(store, adaptersDir());
    expect([...v.rejected]).toEqual([["v000003", "new rejection"]]);
  });

  it("a row naming a version the directory does not have stays a verdict (nothing to compare it with)", async () => {
    await oldLineage();
    newLineage(2);
    const v = await readVerdicts(store, adaptersDir());
    expect([...v.rejected.keys()]).toEqual(["v000003", "v000004"]);
  });

  it("a version deleted by retention is compared by its PRUNED.jsonl record", async () => {
    await oldLineage();
    newLineage(1);
    const prunedLine = (createdAt: string) => JSON.stringify({ name: "v000002", version: 2, parent: "v000001", step: 2, baseModelHash: "test", sampleIds: [], createdAt, prunedAt: createdAt });
    fs.writeFileSync(path.join(adaptersDir(), "PRUNED.jsonl"), prunedLine("2030-01-01T00:00:00.000Z") + "\n");
    expect((await readVerdicts(store, adaptersDir())).rejected.has("v000002")).toBe(false);
    // The same record as the old v2's: the row is about it.
    const old = readManifest(path.join(root, "adapters.old", "v000002"))!;
    fs.writeFileSync(path.join(adaptersDir(), "PRUNED.jsonl"), prunedLine(old.createdAt) + "\n");
    expect((await readVerdicts(store, adaptersDir())).rejected.get("v000002")).toBe("old rejection of v2");
  });

  it("the old rejections do not pause training", async () => {
    await oldLineage();
    newLineage(4);
    const ctx = { dataDir: root, adaptersDir: adaptersDir(), stateDir: path.join(root, "trainer"), pauseAfter: 3, logger: pino({ level: "silent" }) };
    expect(pauseOnRejections(ctx, await readVerdicts(store, adaptersDir()))).toBe(null);
    expect(fs.existsSync(path.join(root, "train.paused"))).toBe(false);
    // Three rejections of the new lineage's own versions do.
    for (const k of [2, 3, 4]) await putRow(path.join(adaptersDir(), versionName(k)), { status: "rejected", statusReason: `new rejection of v${k}` });
    expect(pauseOnRejections(ctx, await readVerdicts(store, adaptersDir()))).toMatchObject({ by: "trainer", reason: expect.stringContaining("new rejection of v4") });
  });
});
