import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { createLogger, Store } from "../core/index.js";
import { storeChildren } from "../test/support/store-processes.js";
import { makeTurnJob } from "../test/support/turn-jobs.js";
import { openRecordStore, recordTables, TurnWriter, type RecordStore } from "./record-store.js";
import { CachedMasker } from "./turns.js";

const open: RecordStore[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const s of open.splice(0)) await s.close();
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

async function store(journal?: { maxBacklogBytes: number }, hostNice?: number): Promise<RecordStore> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "clawloop-record-store-"));
  dirs.push(dataDir);
  const s = await openRecordStore({ dataDir, maskSecrets: true, secretPatterns: [], logger: createLogger("test", "silent"), logLevel: "silent", host: "process", journal, hostNice });
  open.push(s);
  return s;
}

describe("RemoteRecordStore and its journal", () => {
  it("answers once a turn is journaled, and the store host catches up", async () => {
    const s = await store();
    const ref = await s.putTurn(makeTurnJob(0));
    expect(ref).toEqual({ id: "t0", sessionId: "s", runId: "r", callId: "r:model:0", seq: 0, turnType: "main", status: "ok" });
    // Answered before the host had it (its reply needs an I/O turn this await never gave it).
    expect(s.journaled).toBe(1);
    await s.flush();
    expect(s.journaled).toBe(0);
    expect((await s.get("turns", "t0"))?.request.messages?.[0]?.content).toBe("q0");
  });

  it("runs the store process at a lower CPU priority than the proxy, by hostNice", async () => {
    await store(undefined, 5);
    // The store host is this process's child running store-worker.
    const [host] = storeChildren();
    expect(host, "no store-worker child process").toBeDefined();
    expect(os.getPriority(Number(host))).toBe(Math.min(19, os.getPriority() + 5));
  });

  it("waits for the host again once it lags behind by more than the backlog bound", async () => {
    const s = await store({ maxBacklogBytes: 0 });
    await s.putTurn(makeTurnJob(1));
    expect(s.journaled).toBe(0);
    expect(await s.count("turns")).toBe(1);
  });
});

describe("TurnWriter", () => {
  it("numbers a turn journaled without its place next in its session, in order, and its numbered put replaces it", async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "clawloop-turn-writer-"));
    dirs.push(dataDir);
    const store = await Store.open({ dataDir, writes: recordTables(false), logger: createLogger("test", "silent") });
    try {
      const w = new TurnWriter(store, new CachedMasker(true, []));
      await w.put(makeTurnJob(0));
      await w.put(makeTurnJob(1));
      // Two calls answered while the host could not say where the session ended.
      const [a, b] = await Promise.all([w.put({ ...makeTurnJob(2), seq: null }), w.put({ ...makeTurnJob(3), seq: null })]);
      expect([a.seq, b.seq]).toEqual([2, 3]);
      await store.flush();
      // Their numbered puts, once the proxy knew: the rows are replaced, also once in LanceDB.
      const c = w.put({ ...makeTurnJob(2), seq: 2, replaces: true });
      // Sent right behind an unnumbered put of its own turn, the numbered one still lands last.
      const d1 = w.put({ ...makeTurnJob(4), seq: null });
      const d2 = w.put({ ...makeTurnJob(4), seq: 9, replaces: true });
      await Promise.all([c, d1, d2]);
      await store.flush();
      expect(await store.count("turns")).toBe(5);
      expect((await store.list("turns")).map((t) => [t.id, t.seq]).sort()).toEqual([
        ["t0", 0],
        ["t1", 1],
        ["t2", 2],
        ["t3", 3],
        ["t4", 9],
      ]);
    } finally {
      await store.close();
    }
  });
});
