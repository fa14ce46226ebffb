import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { createLogger } from "../core/index.js";
import { openRecordStore, type RecordStore } from "./record-store.js";
import type { TurnJob } from "./turns.js";

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

function job(i: number): TurnJob {
  return {
    turnId: `t${i}`,
    sessionId: "s",
    runId: "r",
    callId: `r:model:${i}`,
    turnType: "main",
    seq: i,
    placement: "tagged",
    parentTurnId: null,
    endpoint: "chat",
    model: "m",
    adapter: null,
    rawRequest: Buffer.from(JSON.stringify({ model: "m", messages: [{ role: "user", content: `q${i}` }] })),
    requestError: null,
    startedAt: new Date().toISOString(),
    ttfbMs: 1,
    totalMs: 2,
    upstreamStatus: 200,
    status: "ok",
    error: null,
    assembled: null,
    traceparent: null,
  };
}

describe("RemoteRecordStore and its journal", () => {
  it("answers once a turn is journaled, and the store host catches up", async () => {
    const s = await store();
    const ref = await s.putTurn(job(0));
    expect(ref).toEqual({ id: "t0", sessionId: "s", runId: "r", callId: "r:model:0", seq: 0, turnType: "main", status: "ok" });
    // Answered before the host had it (its reply needs an I/O turn this await never gave it).
    expect(s.journaled).toBe(1);
    await s.flush();
    expect(s.journaled).toBe(0);
    expect((await s.get("turns", "t0"))?.request.messages?.[0]?.content).toBe("q0");
  });

  it("runs the store process at a lower CPU priority than the proxy, by hostNice", async () => {
    await store(undefined, 5);
    // The store host is this process's child running store-worker (Linux /proc, as in CI).
    const kids = fs
      .readdirSync(`/proc/${process.pid}/task`)
      .flatMap((t) => fs.readFileSync(`/proc/${process.pid}/task/${t}/children`, "utf8").trim().split(/\s+/).filter(Boolean));
    const host = kids.find((pid) => fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("store-worker"));
    expect(host, "no store-worker child process").toBeDefined();
    expect(os.getPriority(Number(host))).toBe(Math.min(19, os.getPriority() + 5));
  });

  it("waits for the host again once it lags behind by more than the backlog bound", async () => {
    const s = await store({ maxBacklogBytes: 0 });
    await s.putTurn(job(1));
    expect(s.journaled).toBe(0);
    expect(await s.count("turns")).toBe(1);
  });
});
