// `clawloop up` killed with -9 leaves nothing running (and, on the way, its engine runs with one
// thread beside the trainer on a small machine): its children (the trainer, the sidecar's
// store host) notice the parent is gone and stop on their own, through their normal stop path, so
// what they were writing is kept (a recorded call is in the store; the trainer's status says
// "stopped", not a crash). The trainer starts without the malloc settings bin/clawloop.js gives
// `up` (the user's own pass through). Real processes, the real SmolLM2 GGUF.
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { LAUNCHER_MALLOC_VARS, MALLOC_SET_BY_LAUNCHER_ENV } from "../../cli/launcher-env.js";
import { Store } from "../../core/index.js";
import { defaultEngineThreads } from "../../serve/index.js";
import { until } from "../support/until.js";

const MODEL = process.env.CLAWLOOP_TEST_MODEL!;
const ROOT = path.resolve(import.meta.dirname, "../..");
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "clawloop-up-kill-"));
// A script file, not `node -e`: node-llama-cpp forks a test process with this process's execArgv.
const ENTRY = path.join(dataDir, "clawloop.mjs");
fs.writeFileSync(ENTRY, `import { main } from ${JSON.stringify(path.join(ROOT, "cli", "main.ts"))};\nawait main(process.argv);\n`);
let up: ChildProcess | null = null;
let leftovers: number[] = [];

afterAll(() => {
  // Whatever the outcome, nothing of this test stays running.
  if (up && up.exitCode === null) up.kill("SIGKILL");
  for (const pid of leftovers) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone already
    }
  }
  fs.rmSync(dataDir, { recursive: true, force: true });
});

/** Pid → parent pid of every live (non-zombie) process, from /proc. */
function processTable(): Map<number, number> {
  const table = new Map<number, number>();
  for (const name of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      // "pid (comm) state ppid …"; comm may hold spaces and parentheses, so split after the last ")".
      const stat = fs.readFileSync(`/proc/${name}/stat`, "utf8");
      const [state, ppid] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (state !== "Z") table.set(Number(name), Number(ppid));
    } catch {
      // exited while we looked
    }
  }
  return table;
}

function descendants(root: number): number[] {
  const table = processTable();
  const out: number[] = [];
  const queue = [root];
  while (queue.length) {
    const parent = queue.shift()!;
    for (const [pid, ppid] of table) if (ppid === parent) (out.push(pid), queue.push(pid));
  }
  return out;
}

const cmdline = (pid: number) => {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ");
  } catch {
    return "";
  }
};

/** The malloc settings (and the launcher's list of them) a process started with, from /proc/PID/environ. */
function mallocEnv(pid: number): Record<string, string> {
  const entries = fs.readFileSync(`/proc/${pid}/environ`, "utf8").split("\0").map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]);
  const names: string[] = [...LAUNCHER_MALLOC_VARS, MALLOC_SET_BY_LAUNCHER_ENV];
  return Object.fromEntries(entries.filter(([k]) => names.includes(k!)));
}

describe("clawloop up killed with -9", () => {
  it("its trainer and store host exit on their own, keeping what they wrote", { timeout: 600_000 }, async () => {
    fs.writeFileSync(
      path.join(dataDir, "config.json"),
      JSON.stringify({
        logLevel: "warn",
        judge: { method: "rules", pollMs: 200, settleMs: 0 },
        train: { mode: "rl", batchSize: 4, pollMs: 300, rank: 4, alpha: 8, targets: ["q", "v"], maxTokens: 256 },
        serve: { contextSize: 512, parallel: 1 },
      }),
    );
    // `up` as bin/clawloop.js starts it (cli/launcher.test.ts) when the user gave one malloc setting
    // of their own: the launcher's two must not reach the trainer, the user's must.
    const malloc = { MALLOC_ARENA_MAX: "2", MALLOC_MMAP_THRESHOLD_: "65536", MALLOC_TRIM_THRESHOLD_: "262144", [MALLOC_SET_BY_LAUNCHER_ENV]: "MALLOC_ARENA_MAX,MALLOC_MMAP_THRESHOLD_" };
    up = spawn(process.execPath, ["--import", "tsx", ENTRY, "up", "--model", MODEL, "--data", dataDir, "--port", "0", "--engine-port", "0"], {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, ...malloc },
    });
    let out = "";
    let err = "";
    up.stdout!.on("data", (c: Buffer) => (out += c.toString()));
    up.stderr!.on("data", (c: Buffer) => (err += c.toString()));
    const upPid = up.pid!;
    const explain = (e: Error) => {
      throw new Error(`${e.message}\nstdout: ${out.slice(-3000)}\nstderr: ${err.slice(-3000)}`);
    };
    const sidecar = await until("the sidecar's address", () => /collect\s+sidecar: (http:\/\/[^\s]+)\/v1/.exec(out)?.[1], { timeoutMs: 300_000, everyMs: 200, ignoreErrors: true }).catch(explain);

    // The engine's threads: 1 beside the trainer on a machine of ≤ 2 cores (CI's), else the engine's default.
    const threads = Number(/serve\s+embedded engine: .* \((\d+) threads?\)/.exec(out)?.[1]);
    const expectedThreads = defaultEngineThreads(os.availableParallelism(), true, 0);
    if (expectedThreads > 0) expect(threads).toBe(expectedThreads);
    else expect(threads).toBeGreaterThan(0);

    // The trainer is up and waiting for samples (past its start, with its stop registered).
    const upJson = JSON.parse(fs.readFileSync(path.join(dataDir, "loops", "up.json"), "utf8")) as { trainerPid: number | null };
    const trainerPid = upJson.trainerPid!;
    expect(trainerPid).toBeGreaterThan(0);
    const trainJson = path.join(dataDir, "loops", "train.json");
    await until("the trainer to wait for samples", () => {
      const st = JSON.parse(fs.readFileSync(trainJson, "utf8")) as { pid: number; state: string };
      return st.pid === trainerPid && st.state === "waiting";
    }, { timeoutMs: 300_000, everyMs: 200, ignoreErrors: true }).catch(explain);

    // A call is recorded (acknowledged by the store host) just before the kill.
    const models = (await fetch(`${sidecar}/v1/models`).then((r) => r.json())) as { data: { id: string }[] };
    const res = await fetch(`${sidecar}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-session-id": "s-kill", "x-openclaw-run-id": "run-kill", "x-openclaw-call-id": "run-kill:model:1", "x-turn-type": "main" },
      body: JSON.stringify({ model: models.data[0]!.id, messages: [{ role: "user", content: "Say hi." }], max_tokens: 4, temperature: 0 }),
    });
    expect(res.status).toBe(200);
    await res.json();

    const children = descendants(upPid);
    leftovers = children;
    expect(children).toContain(trainerPid);
    const storeHost = children.find((pid) => cmdline(pid).includes("store-worker"));
    expect(storeHost, children.map((p) => `${p}: ${cmdline(p)}`).join("\n")).toBeDefined();

    // The trainer started with glibc's own malloc settings but the user's; the store host keeps them all.
    expect(mallocEnv(trainerPid)).toEqual({ MALLOC_TRIM_THRESHOLD_: "262144" });
    expect(mallocEnv(storeHost!)).toEqual({ MALLOC_ARENA_MAX: "2", MALLOC_MMAP_THRESHOLD_: "65536", MALLOC_TRIM_THRESHOLD_: "262144", [MALLOC_SET_BY_LAUNCHER_ENV]: malloc[MALLOC_SET_BY_LAUNCHER_ENV] });

    const exited = new Promise<NodeJS.Signals | null>((r) => up!.on("exit", (_code, signal) => r(signal)));
    process.kill(upPid, "SIGKILL");
    expect(await exited).toBe("SIGKILL");

    // Every child goes away by itself (a generous bound for a loaded 2-core machine; they need ~1 s).
    const alive = () => children.filter((pid) => processTable().has(pid));
    await until("the children of the killed clawloop up to exit", () => alive().length === 0, { timeoutMs: 60_000, everyMs: 200, ignoreErrors: true }).catch((e: Error) => {
      throw new Error(`${e.message}; still running:\n${alive().map((p) => `${p}: ${cmdline(p)}`).join("\n")}\nstderr: ${err.slice(-3000)}`);
    });

    // The trainer stopped through its stop path, not a crash.
    expect((JSON.parse(fs.readFileSync(trainJson, "utf8")) as { state: string }).state).toBe("stopped");
    // The recorded call is in the store (the store host flushed before it went).
    const store = await Store.open({ dataDir, writes: [] });
    try {
      const turns = await store.list("turns", { where: { sessionId: "s-kill" } });
      expect(turns.map((t) => t.runId)).toEqual(["run-kill"]);
    } finally {
      await store.close();
    }
  });
});
