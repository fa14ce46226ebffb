// Data directories a bench makes in the OS temp dir, gone however the bench ends: a normal end or an
// exception (the `exit` handler), SIGINT/SIGTERM/SIGHUP (handlers that clean, then exit as the
// signal would have: 128 + its number). A process writing into a directory (a sidecar and its store
// process) is killed, with its descendants, before the directory is removed, so nothing recreates
// it on the way out. What a SIGKILL leaves is swept by the next run: each directory names its owner
// (pid and start time, so a reused pid does not count as alive). Linux only (/proc), as the benches.
import type { ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { family } from "./processes.js";

/** The file in each directory that names the bench process that made it. */
export const OWNER_FILE = ".clawloop-bench-owner";

interface Owner {
  pid: number;
  /** Field 22 of /proc/PID/stat: when the process started, in clock ticks since boot. */
  start: string;
}

/** Directories of this process, each with the child writing into it (null: none yet). */
const owned = new Map<string, ChildProcess | null>();
let installed = false;

function startTime(pid: number): string | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    // "pid (comm) state …": comm may hold spaces, so count fields after the last ")"; starttime is the 22nd.
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19] ?? null;
  } catch {
    return null;
  }
}

/** True while the process that wrote `owner` runs (a zombie has ended). */
function running(owner: Owner): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${owner.pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return fields[0] !== "Z" && fields[19] === owner.start;
  } catch {
    return false;
  }
}

function gone(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z");
  } catch {
    return true;
  }
}

const pause = new Int32Array(new SharedArrayBuffer(4));

/** Kills the writers of this process's directories and removes them. Synchronous: it runs in `exit`. */
function removeAll(): void {
  const victims: number[] = [];
  for (const child of owned.values()) {
    if (child?.pid !== undefined && child.exitCode === null && child.signalCode === null) victims.push(...family(child.pid));
  }
  for (const pid of victims) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // ended already
    }
  }
  // A killed process may finish the system call it is in: wait (up to 5 s) until none runs.
  const until = Date.now() + 5_000;
  while (victims.some((p) => !gone(p)) && Date.now() < until) Atomics.wait(pause, 0, 0, 20);
  for (const dir of [...owned.keys()]) removeBenchTempDir(dir);
}

function install(): void {
  if (installed) return;
  installed = true;
  process.on("exit", removeAll);
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    // once: a second Ctrl-C ends the bench at once (the next run sweeps what that leaves).
    process.once(signal, () => {
      process.stderr.write(`\nbench: ${signal}: stopping its processes and removing ${owned.size} temporary data director${owned.size === 1 ? "y" : "ies"}\n`);
      removeAll();
      process.exit(128 + os.constants.signals[signal]);
    });
  }
}

/** A new directory in the OS temp dir named `<prefix>XXXXXX`, removed however this process ends. */
export function benchTempDir(prefix: string): string {
  install();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  owned.set(dir, null);
  const owner: Owner = { pid: process.pid, start: startTime(process.pid) ?? "" };
  fs.writeFileSync(path.join(dir, OWNER_FILE), JSON.stringify(owner));
  return dir;
}

/** Records that `child` (and what it starts) writes into `dir`: it is killed before `dir` is removed. */
export function writesInto(dir: string, child: ChildProcess): void {
  if (owned.has(dir)) owned.set(dir, child);
}

/** Removes one of this process's directories now (its writer has stopped). */
export function removeBenchTempDir(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
  owned.delete(dir);
}

/**
 * Removes directories named `<prefix>…` in the OS temp dir that a bench process no longer running
 * made (one killed with SIGKILL, say). Directories without an owner file (from a bench before this
 * one, or one being made) are left alone. Returns the removed paths.
 */
export function sweepStaleBenchDirs(prefixes: string[], tmp = os.tmpdir()): string[] {
  const removed: string[] = [];
  for (const name of fs.readdirSync(tmp)) {
    if (!prefixes.some((p) => name.startsWith(p))) continue;
    const dir = path.join(tmp, name);
    let owner: Owner;
    try {
      owner = JSON.parse(fs.readFileSync(path.join(dir, OWNER_FILE), "utf8")) as Owner;
    } catch {
      continue;
    }
    if (!Number.isInteger(owner.pid) || running(owner)) continue;
    try {
      fs.rmSync(dir, { recursive: true, force: true });
      removed.push(dir);
    } catch {
      // another user's, or being removed by someone else
    }
  }
  return removed;
}
