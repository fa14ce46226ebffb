import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { NextState } from "../types.js";
import { makeTurn } from "../../test/support/rows.js";
import { ID_CHUNK } from "./blobs.js";
import { Store } from "./store.js";
import { nodeIO, type LogIO } from "./wal.js";

const dirs: string[] = [];
function tmpDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "clawloop-store-"));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

describe("Store", () => {
  it("round-trips rows of every column type and overlays rows not yet flushed", async () => {
    const dataDir = tmpDir();
    const store = await Store.open({ dataDir, writes: ["turns"], flushIntervalMs: 60_000 });
    store.put("turns", makeTurn(1), { insert: true });
    // Not flushed yet: reads still see it.
    expect((await store.get("turns", "call-1"))?.response?.content).toBe("answer 1");
    await store.flush();
    store.put("turns", makeTurn(2, { sessionId: "s2", completionLogprobs: null, response: null }), { insert: true });
    const s1 = await store.list("turns", { where: { sessionId: "s1" } });
    expect(s1).toHaveLength(1);
    expect(s1[0]).toEqual(makeTurn(1));
    const s2 = await store.get("turns", "call-2");
    expect(s2?.response).toBeNull();
    expect(s2?.completionLogprobs).toBeNull();
    expect(await store.count("turns")).toBe(2);
    await store.close();

    const reader = await Store.open({ dataDir });
    expect((await reader.list("turns", { orderBy: "seq" })).map((t) => t.id)).toEqual(["call-1", "call-2"]);
    await reader.close();
  });

  it("upserts by id without duplicating", async () => {
    const store = await Store.open({ dataDir: tmpDir(), writes: ["next_states"] });
    const ns: NextState = {
      id: "ev-1",
      kind: "user_message",
      sessionId: "s1",
      forRunId: "run-1",
      forCallId: null,
      turnId: null,
      text: "no, that's wrong",
      score: null,
      toolName: null,
      toolCallId: null,
      exitCode: null,
      at: "2026-11-21T10:00:00.000Z",
      receivedAt: "2026-11-21T10:00:00.000Z",
      source: "plugin",
    };
    store.put("next_states", ns);
    await store.flush();
    store.put("next_states", { ...ns, turnId: "call-1" });
    await store.flush();
    const rows = await store.list("next_states");
    expect(rows).toHaveLength(1);
    expect(rows[0]?.turnId).toBe("call-1");
    await store.close();
  });

  it("refuses a second writer of the same table", async () => {
    const dataDir = tmpDir();
    const a = await Store.open({ dataDir, writes: ["turns"] });
    // A live foreign pid holds the lock.
    fs.writeFileSync(path.join(dataDir, "log", "judgments.lock"), String(process.ppid));
    await expect(Store.open({ dataDir, writes: ["judgments"] })).rejects.toThrow(/already written by process/);
    await a.close();
  });

  it("keeps rows in the log while LanceDB fails, and delivers them once it recovers", async () => {
    const dataDir = tmpDir();
    let failing = true;
    const store = await Store.open({
      dataDir,
      writes: ["turns"],
      flushIntervalMs: 60_000,
      beforeLanceWrite: () => {
        if (failing) throw new Error("simulated LanceDB failure");
      },
    });
    for (let i = 0; i < 5; i++) store.put("turns", makeTurn(i), { insert: true });
    await expect(store.flush()).rejects.toThrow(/simulated/);
    const h = store.health();
    expect(h.ok).toBe(false);
    expect(h.lance).toBe("failing");
    expect(h.tables.turns?.pending).toBe(5);
    // Reads still answer from memory.
    expect(await store.count("turns")).toBe(5);
    failing = false;
    await store.flush();
    expect(store.health().ok).toBe(true);
    await store.close();
    const reader = await Store.open({ dataDir });
    expect(await reader.count("turns")).toBe(5);
    await reader.close();
  });

  it("keeps rows in memory when the log cannot be written (disk full) and logs them when it can", async () => {
    const dataDir = tmpDir();
    let full = false;
    const io: LogIO = {
      ...nodeIO,
      writeSync: (fd, buf) => {
        if (full) throw Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" });
        return nodeIO.writeSync(fd, buf);
      },
    };
    let lanceDown = false;
    const store = await Store.open({
      dataDir,
      writes: ["turns"],
      flushIntervalMs: 60_000,
      io,
      beforeLanceWrite: () => {
        if (lanceDown) throw new Error("lance down too");
      },
    });
    full = true;
    lanceDown = true;
    store.put("turns", makeTurn(1), { insert: true });
    store.put("turns", makeTurn(2), { insert: true });
    const h = store.health();
    expect(h.log).toBe("failing");
    expect(h.tables.turns?.unlogged).toBe(2);
    await expect(store.flush()).rejects.toThrow();
    full = false;
    await expect(store.flush()).rejects.toThrow(/lance down/);
    // Now in the log: a crash from here on would not lose them.
    expect(store.health().tables.turns?.unlogged).toBe(0);
    const log = fs.readFileSync(path.join(dataDir, "log", "turns.log"), "utf8");
    expect(log.trim().split("\n")).toHaveLength(2);
    lanceDown = false;
    await store.flush();
    expect(store.health().ok).toBe(true);
    await store.close();
  });

  it("replays after a crash between the LanceDB write and the checkpoint without duplicates", async () => {
    const dataDir = tmpDir();
    const store = await Store.open({ dataDir, writes: ["turns"] });
    for (let i = 0; i < 3; i++) store.put("turns", makeTurn(i), { insert: true });
    await store.close();
    // As if the process died before recording the checkpoint.
    fs.rmSync(path.join(dataDir, "log", "turns.ckpt"));
    const again = await Store.open({ dataDir, writes: ["turns"] });
    await again.flush();
    expect(await again.count("turns")).toBe(3);
    await again.close();
  });

  it("cuts a torn last line (crash mid-write) and keeps every complete record", async () => {
    const dataDir = tmpDir();
    fs.mkdirSync(path.join(dataDir, "log"), { recursive: true });
    const row = (i: number) => JSON.stringify({ op: "put", row: encodeForTest(i) });
    fs.writeFileSync(path.join(dataDir, "log", "turns.log"), `${row(1)}\n${row(2)}\n{"op":"put","row":{"id":"call-`);
    const store = await Store.open({ dataDir, writes: ["turns"] });
    await store.flush();
    expect((await store.list("turns", { orderBy: "seq" })).map((t) => t.id)).toEqual(["call-1", "call-2"]);
    await store.close();
  });

  it("loses nothing acknowledged when the writer is killed with SIGKILL", async () => {
    const dataDir = tmpDir();
    const script = path.join(dataDir, "writer.mts");
    const storeModule = path.resolve(import.meta.dirname, "store.ts");
    const testModule = path.resolve(import.meta.dirname, "../../test/support/rows.ts");
    fs.writeFileSync(
      script,
      `import { Store } from ${JSON.stringify(storeModule)};
       import { makeTurn } from ${JSON.stringify(testModule)};
       const store = await Store.open({ dataDir: ${JSON.stringify(dataDir)}, writes: ["turns"], flushIntervalMs: 3_600_000 });
       for (let i = 0; i < 40; i++) store.put("turns", makeTurn(i), { insert: true });
       process.stdout.write("acknowledged\\n");
       setInterval(() => {}, 1000);`,
    );
    const child = spawn(process.execPath, ["--import", "tsx", script], { stdio: ["ignore", "pipe", "inherit"] });
    await new Promise<void>((resolve, reject) => {
      child.stdout.on("data", (d: Buffer) => {
        if (d.toString().includes("acknowledged")) resolve();
      });
      child.on("exit", (code) => reject(new Error(`writer exited early (${code})`)));
    });
    child.kill("SIGKILL");
    await new Promise((r) => child.once("exit", r));
    const store = await Store.open({ dataDir, writes: ["turns"] });
    await store.flush();
    const rows = await store.list("turns");
    expect(rows).toHaveLength(40);
    expect(new Set(rows.map((r) => r.id)).size).toBe(40);
    await store.close();
  });

  it("survives a real full disk: rows wait and arrive once space is freed", async (ctx) => {
    const mnt = tmpDir();
    try {
      execFileSync("mount", ["-t", "tmpfs", "-o", "size=2m", "tmpfs", mnt], { stdio: "ignore" });
    } catch {
      // Mounting needs privileges this machine lacks; the injected-ENOSPC test above covers the logic.
      ctx.annotate("tmpfs mount not permitted here; covered by the injected ENOSPC test");
      return;
    }
    try {
      const dataDir = path.join(mnt, "data");
      const store = await Store.open({ dataDir, writes: ["turns"], flushIntervalMs: 60_000 });
      const ballast = path.join(mnt, "ballast");
      // Fill the disk.
      try {
        fs.writeFileSync(ballast, Buffer.alloc(4 * 1024 * 1024));
      } catch {
        // ENOSPC once the disk is full: what we want.
      }
      const big = "x".repeat(20_000);
      for (let i = 0; i < 20; i++) store.put("turns", makeTurn(i, { error: big }), { insert: true });
      expect(store.health().ok).toBe(false);
      await store.flush().catch(() => undefined);
      fs.rmSync(ballast);
      await store.flush();
      expect(store.health().ok).toBe(true);
      expect(await store.count("turns")).toBe(20);
      await store.close();
    } finally {
      execFileSync("umount", ["-l", mnt], { stdio: "ignore" });
    }
  });
});

describe("Store reads", () => {
  it("never misses a row that a flush moves to LanceDB while a read is under way", async () => {
    const dataDir = tmpDir();
    const store = await Store.open({ dataDir, writes: ["next_states"], flushIntervalMs: 3_600_000, flushBatch: 1_000_000 });
    // Enough stored rows that a full read takes a while.
    for (let i = 0; i < 6_000; i++) store.put("next_states", state(`old-${i}`), { insert: true });
    await store.flush();
    for (let round = 0; round < 3; round++) {
      const id = `new-${round}`;
      store.put("next_states", state(id), { insert: true });
      // The read starts first; the flush of the new row is asked for while it runs.
      const reading = store.list("next_states");
      const flushing = store.flush();
      const [rows] = await Promise.all([reading, flushing]);
      expect(rows.some((r) => r.id === id)).toBe(true);
      expect(rows).toHaveLength(6_001 + round);
    }
    await store.close();
  });

  it("counts exactly with rows waiting in memory: new ones, replaced ones, and ones that stop matching", async () => {
    const store = await Store.open({ dataDir: tmpDir(), writes: ["next_states"], flushIntervalMs: 3_600_000 });
    for (let i = 0; i < 5; i++) store.put("next_states", state(`e${i}`));
    await store.flush();
    expect(await store.count("next_states", { turnId: null })).toBe(5);
    // Linked (no longer unlinked), re-put unchanged, and two new rows.
    store.put("next_states", { ...state("e0"), turnId: "t0" });
    store.put("next_states", state("e1"));
    store.put("next_states", state("e5"), { insert: true });
    store.put("next_states", state("e6"));
    expect(await store.count("next_states")).toBe(7);
    expect(await store.count("next_states", { turnId: null })).toBe(6);
    expect(await store.count("next_states", { turnId: "t0" })).toBe(1);
    expect((await store.list("next_states", { where: { turnId: null } })).map((r) => r.id).sort()).toEqual(["e1", "e2", "e3", "e4", "e5", "e6"]);
    await store.flush();
    expect(await store.count("next_states", { turnId: null })).toBe(6);
    await store.close();
  });

  it("reports a table it cannot read instead of counting it as empty", async () => {
    const dataDir = tmpDir();
    const writer = await Store.open({ dataDir, writes: ["next_states"] });
    writer.put("next_states", state("e1"));
    await writer.close();
    // Damage the table's manifests: it exists, but cannot be opened.
    const versions = path.join(dataDir, "store", "next_states.lance", "_versions");
    for (const f of fs.readdirSync(versions)) fs.writeFileSync(path.join(versions, f), "not a manifest");
    const reader = await Store.open({ dataDir });
    await expect(reader.count("next_states")).rejects.toThrow();
    await expect(reader.list("next_states")).rejects.toThrow();
    // A table that does not exist yet is empty, not an error.
    expect(await reader.count("judgments")).toBe(0);
    await reader.close();
  });
});

describe("Store blobs", () => {
  const SYSTEM = "You are a personal assistant running inside OpenClaw. ".repeat(400);
  const TOOLS = Array.from({ length: 8 }, (_, i) => ({ type: "function", function: { name: `tool_${i}`, description: "Runs a shell command. ".repeat(30) } }));
  const big = (i: number) =>
    makeTurn(i, {
      request: { params: { stream: true }, messages: [{ role: "system", content: SYSTEM }, { role: "user", content: `q ${i}` }], tools: TOOLS },
      promptTokenIds: Array.from({ length: 5000 + i }, (_, k) => k),
    });

  it("stores what turns repeat once, and every reader gets whole turns back", async () => {
    const dataDir = tmpDir();
    const store = await Store.open({ dataDir, writes: ["turns"], flushIntervalMs: 60_000 });
    for (let i = 0; i < 30; i++) store.put("turns", big(i), { insert: true });
    // Unflushed: put back from the blobs waiting in memory.
    expect(await store.get("turns", "call-3")).toEqual(big(3));
    await store.flush();
    expect(await store.get("turns", "call-4")).toEqual(big(4));
    await store.close();

    const reader = await Store.open({ dataDir });
    const rows = await reader.list("turns", { orderBy: "seq" });
    expect(rows).toEqual(Array.from({ length: 30 }, (_, i) => big(i)));
    expect(await reader.count("turns")).toBe(30);
    await reader.close();

    // On disk: one system prompt, one tool list and the shared chunks of ids for all 30 turns.
    const lancedb = await import("@lancedb/lancedb");
    const db = await lancedb.connect(path.join(dataDir, "store"));
    const blobs = await (await db.openTable("blobs")).query().toArray();
    const chunks = Math.floor(5000 / ID_CHUNK);
    expect(Math.floor(5029 / ID_CHUNK)).toBe(chunks);
    expect(blobs.map((b) => b.kind).sort()).toEqual([...Array(chunks).fill("ids"), "json", "json"]);
    const raw = await (await db.openTable("turns")).query().where("id = 'call-7'").toArray();
    expect(String(raw[0]!.request)).not.toContain("OpenClaw");
    expect(String(raw[0]!.request).length).toBeLessThan(300);
    db.close();
  });

  it("writes a restarted writer's repeats without duplicating blobs", async () => {
    const dataDir = tmpDir();
    for (let run = 0; run < 2; run++) {
      const store = await Store.open({ dataDir, writes: ["turns"] });
      for (let i = 0; i < 3; i++) store.put("turns", big(run * 10 + i), { insert: true });
      await store.close();
    }
    const lancedb = await import("@lancedb/lancedb");
    const db = await lancedb.connect(path.join(dataDir, "store"));
    expect(await (await db.openTable("blobs")).countRows()).toBe(Math.floor(5000 / ID_CHUNK) + 2);
    db.close();
    const reader = await Store.open({ dataDir });
    expect(await reader.list("turns", { orderBy: "seq" })).toEqual([0, 1, 2, 10, 11, 12].map(big));
    await reader.close();
  });

  it("holds turns back while their blobs cannot be written, and delivers both once they can", async () => {
    const dataDir = tmpDir();
    let blobsDown = true;
    const store = await Store.open({
      dataDir,
      writes: ["turns"],
      flushIntervalMs: 60_000,
      beforeLanceWrite: (table) => {
        if (blobsDown && table === "blobs") throw new Error("blobs down");
      },
    });
    store.put("turns", big(1), { insert: true });
    await expect(store.flush()).rejects.toThrow(/blobs down/);
    expect(store.health().tables.turns?.pending).toBe(1);
    // Another process sees nothing half-written.
    const reader = await Store.open({ dataDir });
    expect(await reader.list("turns")).toEqual([]);
    blobsDown = false;
    await store.flush();
    expect(await reader.list("turns")).toEqual([big(1)]);
    await reader.close();
    await store.close();
  });

  it("lists only the fields asked for, from LanceDB and from rows still waiting", async () => {
    const store = await Store.open({ dataDir: tmpDir(), writes: ["turns"], flushIntervalMs: 60_000 });
    for (let i = 0; i < 3; i++) store.put("turns", big(i), { insert: true });
    await store.flush();
    store.put("turns", big(3), { insert: true });
    store.put("turns", big(4), { insert: true });
    const rows = await store.listFields("turns", ["seq", "turnType"], { where: { sessionId: "s1" }, orderBy: "seq", descending: true });
    expect(rows).toEqual([4, 3, 2, 1, 0].map((i) => ({ id: `call-${i}`, seq: i, turnType: "main" })));
    await store.close();
  });

  it("adds the blob column to a turns table made before it existed", async () => {
    const dataDir = tmpDir();
    const lancedb = await import("@lancedb/lancedb");
    const db = await lancedb.connect(path.join(dataDir, "store"));
    // A turns table as earlier versions made it: no blob_refs column.
    const { Schema } = await import("apache-arrow");
    const { arrowSchema } = await import("./schema.js");
    const t = await db.createEmptyTable("turns", new Schema(arrowSchema("turns").fields.filter((f) => f.name !== "blob_refs")));
    await t.add([encodeForTest(1)]);
    db.close();
    const store = await Store.open({ dataDir, writes: ["turns"] });
    store.put("turns", big(2), { insert: true });
    await store.flush();
    expect(await store.list("turns", { orderBy: "seq" })).toEqual([makeTurn(1), big(2)]);
    await store.close();
  });
});

function state(id: string): NextState {
  return {
    id,
    kind: "user_message",
    sessionId: "s1",
    forRunId: "run-1",
    forCallId: null,
    turnId: null,
    text: `text of ${id}`,
    score: null,
    toolName: null,
    toolCallId: null,
    exitCode: null,
    at: "2026-11-21T10:00:00.000Z",
    receivedAt: "2026-11-21T10:00:00.000Z",
    source: "plugin",
  };
}

function encodeForTest(i: number): Record<string, unknown> {
  // The log holds encoded rows (snake_case columns), exactly as the store writes them.
  const t = makeTurn(i);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(t)) {
    const col = k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
    out[col] = ["request", "response", "usage"].includes(k) && v !== null ? JSON.stringify(v) : v;
  }
  return out;
}
