// The lock around one-time installs and builds into the test cache: one holder at a time, the
// others wait; a lock left by a process that died is taken over.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { withDirLock } from "./dir-lock.js";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "dir-lock-"));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** The lock `<dir>.lock`, as the llama-server build and the OpenClaw install take it. */
const lock = <T>(dir: string, fn: () => Promise<T>) => withDirLock(`${dir}.lock`, fn, { what: "a test" });

describe("withDirLock", () => {
  it("lets one holder in at a time", async () => {
    const dir = path.join(tmp, "serial");
    const log: string[] = [];
    const section = (name: string) =>
      lock(dir, async () => {
        log.push(`${name} in`);
        await new Promise((r) => setTimeout(r, 300));
        log.push(`${name} out`);
      });
    await Promise.all([section("a"), section("b")]);
    expect(log).toEqual(["a in", "a out", "b in", "b out"]);
    expect(fs.existsSync(`${dir}.lock`)).toBe(false);
  });

  it("takes over a lock whose owner has died", async () => {
    const dir = path.join(tmp, "stale");
    const dead = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"], { encoding: "utf8" });
    fs.mkdirSync(`${dir}.lock`);
    fs.writeFileSync(path.join(`${dir}.lock`, "owner.json"), JSON.stringify({ pid: Number(dead.stdout), host: os.hostname(), since: "" }));
    await expect(lock(dir, async () => "mine")).resolves.toBe("mine");
  });

  it("gives up after its timeout while a live owner holds it, naming the owner", async () => {
    const dir = path.join(tmp, "timeout");
    fs.mkdirSync(`${dir}.lock`);
    fs.writeFileSync(path.join(`${dir}.lock`, "owner.json"), JSON.stringify({ pid: process.pid, host: os.hostname(), since: "" }));
    await expect(withDirLock(`${dir}.lock`, async () => "mine", { what: "a test", timeoutMs: 500 })).rejects.toThrow(
      `timed out waiting for a test (lock ${dir}.lock, held by pid ${process.pid})`,
    );
    fs.rmSync(`${dir}.lock`, { recursive: true });
  });

  it("waits for a live owner", async () => {
    const dir = path.join(tmp, "live");
    fs.mkdirSync(`${dir}.lock`);
    fs.writeFileSync(path.join(`${dir}.lock`, "owner.json"), JSON.stringify({ pid: process.pid, host: os.hostname(), since: "" }));
    let got = false;
    const waiting = lock(dir, async () => (got = true));
    await new Promise((r) => setTimeout(r, 1_500));
    expect(got).toBe(false);
    fs.rmSync(`${dir}.lock`, { recursive: true });
    await waiting;
    expect(got).toBe(true);
  });
});
