// A bench's temporary data directories go however it ends: SIGINT, SIGTERM, an exception. A bench
// process (a script using bench/temp-dirs.ts) starts a writer with a child of its own, as a sidecar
// with its store process, both writing into the directory without pause (recreating it if it were
// removed under them); the bench is then ended, and neither the directory nor the writers remain.
// What a SIGKILL leaves is swept at the next start: only directories whose owner no longer runs.
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import readline from "node:readline";
import { afterAll, describe, expect, it } from "vitest";
import { until } from "../test/support/until.js";
import { OWNER_FILE, sweepStaleBenchDirs } from "./temp-dirs.js";

const PREFIX = `clawloop-bench-temp-dirs-test-${process.pid}-`;
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), "clawloop-temp-dirs-test-"));
const pids: number[] = [];

afterAll(() => {
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // ended, as it should have
    }
  }
  fs.rmSync(scratch, { recursive: true, force: true });
  for (const name of fs.readdirSync(os.tmpdir())) if (name.startsWith(PREFIX)) fs.rmSync(path.join(os.tmpdir(), name), { recursive: true, force: true });
});

// Writes a file into DIR/w/<pid>/ every 5 ms (mkdir -p: it would bring a removed DIR back); the first
// one starts a second like it, beneath it.
const WRITER = `
const { spawn } = require("node:child_process");
const fs = require("node:fs");
const dir = process.argv[1];
if (!process.env.GRANDCHILD) spawn(process.execPath, ["-e", process.env.WRITER_CODE, dir], { env: { ...process.env, GRANDCHILD: "1" }, stdio: "ignore" });
let i = 0;
setInterval(() => { const d = dir + "/w/" + process.pid; fs.mkdirSync(d, { recursive: true }); fs.writeFileSync(d + "/" + i++, "x"); }, 5);
`;

const BENCH = path.join(scratch, "bench.mts");
fs.writeFileSync(
  BENCH,
  `import { spawn } from "node:child_process";
import { benchTempDir, writesInto } from ${JSON.stringify(path.resolve(import.meta.dirname, "temp-dirs.ts"))};
const dir = benchTempDir(${JSON.stringify(PREFIX)});
const writer = spawn(process.execPath, ["-e", process.env.WRITER_CODE, dir], { stdio: "ignore" });
writesInto(dir, writer);
console.log(JSON.stringify({ dir, writer: writer.pid }));
if (process.argv[2] === "throw") process.stdin.once("data", () => { throw new Error("the bench failed"); });
else setInterval(() => {}, 1000);
`,
);

function alive(pid: number): boolean {
  try {
    return !fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.startsWith("Z");
  } catch {
    return false;
  }
}

/** Starts the bench, waits until both writers write, ends it with `end`, returns its exit and what is left. */
async function runBench(mode: "wait" | "throw", end: (pid: number, stdin: NodeJS.WritableStream) => void) {
  const bench = spawn(process.execPath, ["--import", "tsx", BENCH, mode], { env: { ...process.env, WRITER_CODE: WRITER }, stdio: ["pipe", "pipe", "pipe"] });
  pids.push(bench.pid!);
  let stderr = "";
  bench.stderr!.on("data", (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => bench.on("exit", (code, signal) => r({ code, signal })));
  const first = await new Promise<string>((resolve) => readline.createInterface({ input: bench.stdout! }).once("line", resolve));
  const { dir, writer } = JSON.parse(first) as { dir: string; writer: number };
  pids.push(writer);
  const writers = await until("both writers to write", () => {
    const ws = fs.existsSync(path.join(dir, "w")) ? fs.readdirSync(path.join(dir, "w")).map(Number) : [];
    return ws.length === 2 ? ws : null;
  }, { timeoutMs: 30_000, everyMs: 20 });
  pids.push(...writers);
  expect(writers).toContain(writer);
  end(bench.pid!, bench.stdin!);
  const result = await exited;
  // Time for anything left to bring the directory back.
  await new Promise((r) => setTimeout(r, 300));
  return { ...result, stderr, dirLeft: fs.existsSync(dir), writersLeft: writers.filter(alive) };
}

describe("a bench's temporary data directories", () => {
  it("are removed on SIGINT, their writers stopped first; the bench exits 130", { timeout: 60_000 }, async () => {
    const r = await runBench("wait", (pid) => process.kill(pid, "SIGINT"));
    expect(r).toMatchObject({ code: 130, dirLeft: false, writersLeft: [] });
  });

  it("are removed on SIGTERM; the bench exits 143", { timeout: 60_000 }, async () => {
    const r = await runBench("wait", (pid) => process.kill(pid, "SIGTERM"));
    expect(r).toMatchObject({ code: 143, dirLeft: false, writersLeft: [] });
  });

  it("are removed when the bench fails with an exception (exit 1, the error reported)", { timeout: 60_000 }, async () => {
    const r = await runBench("throw", (_pid, stdin) => stdin.write("go\n"));
    expect(r).toMatchObject({ code: 1, dirLeft: false, writersLeft: [] });
    expect(r.stderr).toContain("the bench failed");
  });
});

describe("sweepStaleBenchDirs", () => {
  it("removes the directories of benches that no longer run, and only those", () => {
    const stat = fs.readFileSync("/proc/self/stat", "utf8");
    const myStart = stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]!;
    const dead = spawnSync(process.execPath, ["-e", ""]).pid!;
    const make = (name: string, owner: object | null) => {
      const dir = path.join(scratch, name);
      fs.mkdirSync(path.join(dir, "store"), { recursive: true });
      if (owner) fs.writeFileSync(path.join(dir, OWNER_FILE), JSON.stringify(owner));
      return dir;
    };
    const gone = make("clawloop-bench-proxy-dead", { pid: dead, start: "1" });
    // The same pid, started at another time: a reused pid, not the bench that made it.
    const reused = make("clawloop-bench-inference-on-reused", { pid: process.pid, start: String(Number(myStart) - 1) });
    const live = make("clawloop-bench-proxy-live", { pid: process.pid, start: myStart });
    const unowned = make("clawloop-bench-proxy-old", null);
    const otherPrefix = make("something-else-dead", { pid: dead, start: "1" });
    const removed = sweepStaleBenchDirs(["clawloop-bench-proxy-", "clawloop-bench-inference-"], scratch);
    expect(removed.sort()).toEqual([gone, reused].sort());
    expect([gone, reused].map((d) => fs.existsSync(d))).toEqual([false, false]);
    expect([live, unowned, otherPrefix].map((d) => fs.existsSync(d))).toEqual([true, true, true]);
  });
});
