// The parts of the llama-server build helper that decide without building: which tools are
// missing (the error must name them), and the build lock (one builder, the others wait; a lock left
// by a process that died is taken over).
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { findToolchain, withLock } from "./llama-server.js";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "llama-server-lock-"));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe("findToolchain", () => {
  const only = (...present: string[]) => (cmd: string) => present.includes(cmd);

  it("names the one tool that is missing", () => {
    expect(() => findToolchain({}, only("git", "c++", "cc", "ninja"))).toThrow(/but cmake is not installed/);
  });

  it("names every missing tool, compilers included", () => {
    let message = "";
    try {
      findToolchain({}, only());
    } catch (err) {
      message = (err as Error).message;
    }
    for (const tool of ["git", "cmake", "a C++ compiler (c++, g++ or clang++)", "a C compiler (cc, gcc or clang)", "ninja or make"]) expect(message).toContain(tool);
    expect(message).toContain("CLAWLOOP_LLAMA_SERVER");
  });

  it("names a compiler set in CXX that does not run, rather than falling back to another", () => {
    expect(() => findToolchain({ CXX: "clang++-99" }, only("git", "cmake", "g++", "cc", "ninja"))).toThrow(/the C\+\+ compiler CXX=clang\+\+-99 is not installed/);
  });

  it("picks ninja when it is there, else make", () => {
    expect(findToolchain({}, only("git", "cmake", "g++", "gcc", "ninja", "make"))).toEqual({ generator: "Ninja", cc: "gcc", cxx: "g++" });
    expect(findToolchain({}, only("git", "cmake", "clang++", "clang", "make"))).toEqual({ generator: "Unix Makefiles", cc: "clang", cxx: "clang++" });
  });
});

describe("withLock", () => {
  it("lets one holder in at a time", async () => {
    const dir = path.join(tmp, "serial");
    const log: string[] = [];
    const section = (name: string) =>
      withLock(dir, async () => {
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
    await expect(withLock(dir, async () => "mine")).resolves.toBe("mine");
  });

  it("waits for a live owner", async () => {
    const dir = path.join(tmp, "live");
    fs.mkdirSync(`${dir}.lock`);
    fs.writeFileSync(path.join(`${dir}.lock`, "owner.json"), JSON.stringify({ pid: process.pid, host: os.hostname(), since: "" }));
    let got = false;
    const waiting = withLock(dir, async () => (got = true));
    await new Promise((r) => setTimeout(r, 1_500));
    expect(got).toBe(false);
    fs.rmSync(`${dir}.lock`, { recursive: true });
    await waiting;
    expect(got).toBe(true);
  });
});
