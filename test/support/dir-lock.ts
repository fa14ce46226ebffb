// A lock between test processes (vitest workers, the global setup, CI runs side by side) around a
// one-time install or build into a shared cache: a directory (mkdir is atomic) with a file naming
// its owner. A lock whose owner died is taken over, so a killed run does not block the next.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { processAlive } from "../../core/index.js";

export interface DirLockOptions {
  /** Give up after waiting this long for another owner (default: wait as long as it lives). */
  timeoutMs?: number;
  /** What the lock guards, for the waiting line and the timeout error. */
  what: string;
}

interface Owner {
  pid?: number;
  host?: string;
}

/** Holds the directory `lock` while `fn` runs. */
export async function withDirLock<T>(lock: string, fn: () => Promise<T>, opts: DirLockOptions): Promise<T> {
  const owner = path.join(lock, "owner.json");
  const deadline = Date.now() + (opts.timeoutMs ?? Infinity);
  let told = false;
  fs.mkdirSync(path.dirname(lock), { recursive: true });
  for (;;) {
    try {
      fs.mkdirSync(lock);
      fs.writeFileSync(owner, JSON.stringify({ pid: process.pid, host: os.hostname(), since: new Date().toISOString() }));
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      let held: Owner | null = null;
      try {
        held = JSON.parse(fs.readFileSync(owner, "utf8")) as Owner;
      } catch {
        held = null; // being written, or its writer died right after mkdir: judged by age below
      }
      const age = Date.now() - (fs.statSync(lock, { throwIfNoEntry: false })?.mtimeMs ?? Date.now());
      const dead = held ? held.host === os.hostname() && typeof held.pid === "number" && !processAlive(held.pid) : age > 30_000;
      if (dead) {
        fs.rmSync(lock, { recursive: true, force: true });
        continue;
      }
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${opts.what} (lock ${lock}, held by pid ${held?.pid ?? "?"})`);
      if (!told) {
        console.log(`waiting for process ${held?.pid ?? "?"}: ${opts.what} (${lock})`);
        told = true;
      }
      await new Promise((r) => setTimeout(r, 1_000));
    }
  }
  try {
    return await fn();
  } finally {
    fs.rmSync(lock, { recursive: true, force: true });
  }
}
