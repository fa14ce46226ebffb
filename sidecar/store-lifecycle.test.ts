// The store host's lifecycle: it never outlives its sidecar, and never leaves the sidecar waiting
// forever. LanceDB cannot be made to hang on demand, so the store host's test hook
// CLAWLOOP_TEST_STORE_HANG=open|close (sidecar/store-worker.ts) stands in for it.
import { fork, spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { createLogger } from "../core/index.js";
import { storeChildren } from "../test/support/store-processes.js";
import { makeTurnJob } from "../test/support/turn-jobs.js";
import { openRecordStore, STORE_DATA_ENV, type RecordStore, type RecordStoreOptions, type StoreMessage, type StoreWorkerData } from "./record-store.js";

const HANG = "CLAWLOOP_TEST_STORE_HANG";
const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.dirname(here);

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  delete process.env[HANG];
  for (const c of cleanups.splice(0).reverse()) await c();
});

function tmpDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "clawloop-store-lifecycle-"));
  cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Kills a process that outlived its test, so one failure does not leave others behind. */
function reap(pid: number): void {
  cleanups.push(() => {
    if (!gone(pid)) process.kill(pid, "SIGKILL");
  });
}

/**
 * Whether a process has exited: no such pid (ESRCH), or a zombie whose new parent (the container's
 * init, after its own parent died) has not reaped it yet.
 */
function gone(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ESRCH") return true;
    throw err;
  }
  try {
    // Fields after the command's closing parenthesis: state first.
    return fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ").at(-1)!.startsWith("Z");
  } catch {
    return true;
  }
}

async function until<T>(what: string, probe: () => T | undefined | false, ms = 60_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const logger = createLogger("test", "silent");

function options(dataDir: string, extra: Partial<RecordStoreOptions> = {}): RecordStoreOptions {
  return { dataDir, maskSecrets: true, secretPatterns: [], logger, logLevel: "silent", host: "process", ...extra };
}

/** Forks the store host itself, as processChannel does, so that the test holds its IPC channel. */
async function forkHost(hang: "open" | "close" | null, exitDeadlineMs: number): Promise<ChildProcess> {
  const data: StoreWorkerData = { dataDir: tmpDir(), maskSecrets: true, secretPatterns: [], logLevel: "silent", adapters: false, store: {}, exitDeadlineMs };
  const child = fork(path.join(here, "store-worker.ts"), [], {
    execArgv: ["--import", "tsx"],
    serialization: "advanced",
    env: { ...process.env, [STORE_DATA_ENV]: JSON.stringify(data), ...(hang ? { [HANG]: hang } : {}) },
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  reap(child.pid!);
  await new Promise<void>((resolve, reject) => {
    child.on("message", (m: StoreMessage) => m.type === "ready" && resolve());
    child.once("exit", (code) => reject(new Error(`store host exited while starting (${code})`)));
  });
  return child;
}

const exited = (child: ChildProcess) =>
  new Promise<number | null>((resolve) => (child.exitCode !== null ? resolve(child.exitCode) : child.once("exit", (code) => resolve(code))));

describe("a store process closed by its sidecar", () => {
  it("ends on its own once its store is closed (its exit handlers run), not killed", async () => {
    const logs: { msg?: string; code?: number | null; signal?: string | null }[] = [];
    const recording = pino({ level: "debug" }, { write: (line: string) => void logs.push(JSON.parse(line)) });
    const store = await openRecordStore(options(tmpDir(), { logger: recording }));
    await store.putTurn(makeTurnJob(0));
    await store.close();
    expect(logs.filter((l) => l.msg === "store process ended").map(({ code, signal }) => ({ code, signal }))).toEqual([{ code: 0, signal: null }]);
  });
});

describe("a store process whose sidecar goes away", () => {
  it("exits within its deadline though closing LanceDB hangs, once its sidecar's channel closes", async () => {
    const child = await forkHost("close", 300);
    child.disconnect();
    expect(await exited(child)).toBe(0);
    expect(gone(child.pid!)).toBe(true);
  });

  it("exits within its deadline when a close it was asked for hangs and its sidecar then goes away", async () => {
    const child = await forkHost("close", 300);
    child.send({ id: 1, op: "close" });
    child.disconnect();
    expect(await exited(child)).toBe(0);
    expect(gone(child.pid!)).toBe(true);
  });

  it("exits when its sidecar is killed while it is still opening the store", async () => {
    // A sidecar (a process of its own, so it can be killed -9) whose store host hangs opening.
    const sidecar = spawn(
      process.execPath,
      [
        "--import",
        "tsx",
        "--input-type=module",
        "-e",
        `const { openRecordStore } = await import(${JSON.stringify(path.join(here, "record-store.ts"))});
         const { createLogger } = await import(${JSON.stringify(path.join(root, "core", "index.ts"))});
         await openRecordStore({ dataDir: ${JSON.stringify(tmpDir())}, maskSecrets: true, secretPatterns: [], logger: createLogger("t", "silent"),
           logLevel: "warn", host: "process", startTimeoutMs: 600_000, closeTimeoutMs: 300 });`,
      ],
      { cwd: root, env: { ...process.env, [HANG]: "open" }, stdio: ["ignore", "pipe", "inherit"] },
    );
    reap(sidecar.pid!);
    // The store host logs (to the stdout it shares with the sidecar) when it starts hanging.
    let out = "";
    sidecar.stdout!.on("data", (b: Buffer) => (out += b.toString()));
    await until("the store host to hang in open", () => out.includes("hanging in open"));
    const [host] = storeChildren(sidecar.pid!);
    expect(host, "no store-worker child process").toBeDefined();
    reap(host!);
    sidecar.kill("SIGKILL");
    await until("the store host to exit", () => gone(host!));
  });
});

describe("a store host that does not start", () => {
  it("fails the open with the reason once the host has not reported ready in time, and stops the host", async () => {
    const dataDir = tmpDir();
    process.env[HANG] = "open";
    const opening = openRecordStore(options(dataDir, { startTimeoutMs: 500 }));
    const settled = opening.then(
      () => null,
      (err: Error) => err,
    );
    // Its pid, while it lives (the failed open leaves nothing to ask).
    const host = await until("the store host to start", () => storeChildren(process.pid)[0]);
    reap(host);
    const err = await settled;
    expect(err?.message).toBe(
      `the store process did not report ready within 0.5 s (opening LanceDB in ${dataDir}); is another sidecar using this data directory, or is the machine overloaded?`,
    );
    expect(gone(host)).toBe(true);
  });

  it("fails the open of a store thread that does not report ready in time", async () => {
    process.env[HANG] = "open";
    await expect(openRecordStore(options(tmpDir(), { host: "worker", startTimeoutMs: 500 }))).rejects.toThrow(/^the store worker did not report ready within 0\.5 s/);
  });

  it("keeps restarting a store process whose restart never reports ready, says why meanwhile, and resends what waited", async () => {
    // Long enough for a real start on a busy machine (the first one must succeed); the hung
    // restart waits it out once.
    const s = (await openRecordStore(options(tmpDir(), { startTimeoutMs: 8_000 }))) as RecordStore & { restart(): Promise<void>; restartCount: number };
    cleanups.push(() => s.close());
    process.env[HANG] = "open";
    await s.restart();
    await until("the restart to time out", () => /restart failed: the store process did not report ready within 8 s/.test(s.health().lastError ?? ""), 60_000);
    delete process.env[HANG];
    // What /status reads: at once, not ok, with the reason (no host to ask).
    const health = await s.refreshHealth();
    expect(health.ok).toBe(false);
    expect(health.lastError).toMatch(/did not report ready within 8 s \(opening LanceDB in /);
    await expect(s.memory()).rejects.toThrow(/not running/);
    // Taken while no store host runs: journaled and answered; stored once the next host is up.
    const ref = await s.putTurn(makeTurnJob(0));
    expect(ref.id).toBe("t0");
    const counted = s.count("turns");
    await until("the store to be back", () => s.health().ok, 60_000);
    expect(s.restartCount).toBeGreaterThanOrEqual(2);
    await s.flush();
    // Sent to the new host after the turn, in the order they were made.
    expect(await counted).toBe(1);
    expect(await s.count("turns")).toBe(1);
    expect(s.journaled).toBe(0);
  });

  it("does not start a store host again once it is closed while a restart waits", async () => {
    const s = (await openRecordStore(options(tmpDir()))) as RecordStore & { restart(): Promise<void> };
    await s.restart();
    await s.close();
    // The restart's backoff (200 ms) has passed: no host started after the close.
    await new Promise((r) => setTimeout(r, 600));
    expect(storeChildren(process.pid)).toEqual([]);
  });
});
