// Which version the trainer continues from, as a pure decision over version directories' parent
// links, HEAD.json and the switchboard's verdicts. (The train loop acting on it, on a real store:
// trainer/loop.test.ts; against the real switchboard: test/e2e/train-rejected.test.ts.)
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { writeHead } from "../adapters/index.js";
import { pino } from "pino";
import type { AdapterManifest, AdapterVersion, Store } from "../core/index.js";
import { newHead, obeyedHeadFile, recordObeyed, resolveTip, type PrunedLink, type TipSources } from "./lineage.js";
import { NO_VERDICTS, readVerdicts, readVerdictsOr, untrustedVersions, type LineageLink, type Verdicts } from "./verdicts.js";
import { versionName, type VersionEntry } from "./versions.js";

let adaptersDir: string;
let stateDir: string;
beforeEach(() => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "clawloop-lineage-"));
  adaptersDir = path.join(root, "adapters");
  stateDir = path.join(root, "trainer");
  fs.mkdirSync(adaptersDir);
});
afterEach(() => fs.rmSync(path.dirname(adaptersDir), { recursive: true, force: true }));

/** Versions 1…n on disk; `parents[k]` is the parent of version k (default: k − 1). */
function versions(n: number, parents: Record<number, number | null> = {}, gone: number[] = []): VersionEntry[] {
  const out: VersionEntry[] = [];
  for (let k = 1; k <= n; k++) {
    if (gone.includes(k)) continue;
    const p = k in parents ? parents[k]! : k - 1;
    const name = versionName(k);
    out.push({ version: k, name, dir: path.join(adaptersDir, name), manifest: { version: k, name, parent: p ? versionName(p) : null } as AdapterManifest });
  }
  return out;
}

function links(n: number, parents: Record<number, number | null> = {}): Map<string, LineageLink> {
  return new Map(versions(n, parents).map((v) => [v.name, { version: v.version, parent: v.manifest.parent }]));
}

function verdicts(rejected: Record<number, string>, accepted: number[]): Verdicts {
  return {
    rejected: new Map(Object.entries(rejected).map(([k, why]) => [versionName(Number(k)), why])),
    accepted: new Set(accepted.map(versionName)),
  };
}

const names = (m: Map<string, string[]>) => [...m.keys()].sort();

describe("untrusted versions", () => {
  it("none without a rejection", () => {
    expect(untrustedVersions(links(4), NO_VERDICTS).size).toBe(0);
    expect(untrustedVersions(links(4), verdicts({}, [1, 3])).size).toBe(0);
  });

  it("a rejected version, what was built on it, and the unchecked versions since the last accepted one", () => {
    // v1 accepted; v2 overtaken before it was checked; v3 rejected; v4 built on v3 before the verdict.
    const u = untrustedVersions(links(4), verdicts({ 3: "log-prob check failed" }, [1]));
    expect(names(u)).toEqual(["v000002", "v000003", "v000004"]);
    expect(u.get("v000004")).toEqual(["v000003"]);
  });

  it("a version that passed the check itself is trusted, and so is what grows from it", () => {
    const u = untrustedVersions(links(5), verdicts({ 2: "probe failed" }, [1, 4]));
    expect(names(u)).toEqual(["v000002", "v000003"]);
  });

  it("a rejected version that once was live (its files went bad) is untrusted all the same", () => {
    const v: Verdicts = { rejected: new Map([["v000002", "hashes"]]), accepted: new Set(["v000001", "v000002"]) };
    expect(names(untrustedVersions(links(3), v))).toEqual(["v000002", "v000003"]);
  });

  it("branches: a fresh line from the accepted version is not touched by the abandoned one", () => {
    // v3 rejected (on v2, on v1 accepted); v4 and v5 grew from v1 afterwards.
    const u = untrustedVersions(links(5, { 4: 1 }), verdicts({ 3: "x" }, [1]));
    expect(names(u)).toEqual(["v000002", "v000003"]);
  });

  it("names every rejection that reaches a version", () => {
    const u = untrustedVersions(links(3), verdicts({ 1: "a", 3: "b" }, []));
    expect(u.get("v000002")).toEqual(["v000001", "v000003"]);
  });
});

/** resolveTip, then what the train loop does once it has read the tip's files: record the rollback it follows. */
function resolveObeyed(vs: VersionEntry[], sources?: TipSources): ReturnType<typeof resolveTip> {
  const tip = resolveTip(vs, adaptersDir, stateDir, sources);
  if (tip.obey) recordObeyed(stateDir, tip.obey);
  return tip;
}

describe("following a rollback (HEAD.json)", () => {
  // The trainer used to record a rollback as obeyed while deciding the tip, before it had read the
  // tip's files: when reading them failed, the rollback no longer looked new, and the loop went on
  // growing the abandoned version (trainer/rollback-read.test.ts shows that on the loop).
  it("is recorded as obeyed only by the caller, once it has read the tip: until then HEAD stays new", () => {
    fs.mkdirSync(stateDir);
    const head = writeHead(adaptersDir, "v000001", "rollback to v000001");
    const first = resolveTip(versions(3), adaptersDir, stateDir);
    expect(first).toMatchObject({ tip: { name: "v000001" }, rolledBackTo: "v000001", obey: { seq: head.seq, version: "v000001", above: 3 }, problem: null });
    expect(fs.existsSync(obeyedHeadFile(stateDir))).toBe(false);
    expect(newHead(adaptersDir, stateDir)).toEqual(head);
    // Not read (the caller failed): the same rollback again, from the same versions.
    expect(resolveTip(versions(3), adaptersDir, stateDir)).toMatchObject({ rolledBackTo: "v000001", obey: first.obey });
    // Read: recorded, and no longer new.
    recordObeyed(stateDir, first.obey!);
    expect(newHead(adaptersDir, stateDir)).toBe(null);
    expect(resolveTip(versions(3), adaptersDir, stateDir)).toMatchObject({ tip: { name: "v000001" }, rolledBackTo: null, obey: null });
  });
});

describe("resolveTip with verdicts", () => {
  it("without verdicts (or with verdicts and no rejection): the newest version, as before", () => {
    expect(resolveTip(versions(3), adaptersDir, stateDir)).toMatchObject({ tip: { name: "v000003" }, passedOver: null });
    expect(resolveTip(versions(3), adaptersDir, stateDir, { verdicts: verdicts({}, [2]) })).toMatchObject({ tip: { name: "v000003" }, passedOver: null });
  });

  it("a rejection that does not reach the newest version changes nothing", () => {
    const tip = resolveTip(versions(4, { 4: 1 }), adaptersDir, stateDir, { verdicts: verdicts({ 3: "x" }, [1]) });
    expect(tip).toMatchObject({ tip: { name: "v000004" }, passedOver: null });
  });

  it("goes back to the nearest trusted version and says what it passed over and why", () => {
    const tip = resolveTip(versions(4), adaptersDir, stateDir, { verdicts: verdicts({ 3: "log-prob check failed" }, [1]) });
    expect(tip.tip?.name).toBe("v000001");
    expect(tip.passedOver).toEqual({ version: "v000004", rejected: [{ version: "v000003", reason: "log-prob check failed" }], abandoned: ["v000004", "v000003", "v000002"] });
  });

  it("null (a fresh adapter) when no version before the rejection passed the check", () => {
    const tip = resolveTip(versions(2), adaptersDir, stateDir, { verdicts: verdicts({ 2: "x" }, []) });
    expect(tip.tip).toBe(null);
    expect(tip.passedOver?.abandoned).toEqual(["v000002", "v000001"]);
  });

  it("walks through versions deleted by retention, to a trusted one still on disk", () => {
    // v2 (accepted) and v3 (rejected) were pruned; v4 grew on v3 before the verdict.
    const pruned = new Map<string, PrunedLink>([["v000002", { version: 2, parent: "v000001" }], ["v000003", { version: 3, parent: "v000002" }]]);
    const tip = resolveTip(versions(4, {}, [2, 3]), adaptersDir, stateDir, { pruned, verdicts: verdicts({ 3: "x" }, [1, 2]) });
    expect(tip.tip?.name).toBe("v000001");
    expect(tip.passedOver?.abandoned).toEqual(["v000004", "v000003"]);
  });

  it("after a rollback: back to the rollback target, then on from the versions built on it since", () => {
    writeHead(adaptersDir, "v000001", "rollback to v000001");
    expect(resolveObeyed(versions(3)).tip?.name).toBe("v000001");
    // v4 on v1 rejected: back to v1.
    const v = verdicts({ 4: "x" }, [1]);
    expect(resolveObeyed(versions(4, { 4: 1 }), { verdicts: v }).tip?.name).toBe("v000001");
    // v5 on v1 afterwards: continue from it; the abandoned v2, v3 (pre-rollback) and v4 stay behind.
    expect(resolveObeyed(versions(5, { 4: 1, 5: 1 }), { verdicts: v })).toMatchObject({ tip: { name: "v000005" }, passedOver: null });
  });

  it("a parent loop in hand-edited manifests ends the walk with a fresh adapter instead of hanging", () => {
    const tip = resolveTip(versions(3, { 2: 3 }), adaptersDir, stateDir, { verdicts: verdicts({ 3: "x" }, []) });
    expect(tip.tip).toBe(null);
  });
});

describe("reading the verdicts", () => {
  it("takes rejections with their reason and versions that went live", async () => {
    const rows: Pick<AdapterVersion, "id" | "status" | "statusReason" | "liveAt">[] = [
      { id: "v000001", status: "retired", statusReason: "replaced by v000002", liveAt: "2026-01-01T00:00:00Z" },
      { id: "v000002", status: "live", statusReason: null, liveAt: "2026-01-01T00:01:00Z" },
      { id: "v000003", status: "rejected", statusReason: null, liveAt: null },
      { id: "v000004", status: "rejected", statusReason: "hashes", liveAt: "2026-01-01T00:02:00Z" },
    ];
    // A stand-in for the store's listFields, which is generic over tables: these rows are what it
    // answers for the adapters table (without manifests: no version is on disk to compare them with).
    const store = { listFields: async () => rows } as unknown as Pick<Store, "listFields">;
    const v = await readVerdicts(store, adaptersDir);
    expect([...v.accepted]).toEqual(["v000001", "v000002"]);
    expect([...v.rejected]).toEqual([["v000003", "no reason recorded"], ["v000004", "hashes"]]);
  });

  it("when the table cannot be read: the last verdicts, and a warning", async () => {
    const lines: string[] = [];
    const logger = pino({ level: "warn" }, { write: (l: string) => void lines.push(l) });
    const previous = verdicts({ 2: "x" }, [1]);
    const store: Pick<Store, "listFields"> = { listFields: async () => Promise.reject(new Error("LanceDB: disk I/O error")) };
    expect(await readVerdictsOr(store, adaptersDir, previous, logger)).toBe(previous);
    expect(lines.map((l) => JSON.parse(l))).toMatchObject([{ level: 40, err: "LanceDB: disk I/O error", msg: expect.stringMatching(/could not read the switchboard's verdicts/) }]);
  });
});
