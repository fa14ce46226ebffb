// bin/clawloop.js is run by the shell when executed (`clawloop …`): its first line gives
// `clawloop sidecar` and `clawloop up` glibc's malloc settings, names those it set in
// CLAWLOOP_MALLOC_SET_BY_LAUNCHER, then execs Node on the same file. `up` leaves exactly those out
// of its trainer child's environment (withoutLauncherMalloc; the trainer's own environment is read
// from /proc in test/e2e/up-kill.test.ts).
import { spawnSync } from "node:child_process";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { MALLOC_SET_BY_LAUNCHER_ENV, withoutLauncherMalloc } from "./launcher-env.js";

const BIN = path.resolve(import.meta.dirname, "..", "bin", "clawloop.js");
const MALLOC = ["MALLOC_ARENA_MAX", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", MALLOC_SET_BY_LAUNCHER_ENV];
const DEFAULTS = { MALLOC_ARENA_MAX: "2", MALLOC_MMAP_THRESHOLD_: "65536", MALLOC_TRIM_THRESHOLD_: "131072" };

/**
 * Executes the bin as a user's shell would, on the real Node, which reports what it started with
 * (an `--import` that runs before the CLI) and exits before the CLI loads.
 */
function launch(args: string[], env: Record<string, string> = {}) {
  const report = `const e = process.env; console.log(JSON.stringify({ pid: process.pid, argv: process.argv.slice(2), malloc: Object.fromEntries(${JSON.stringify(MALLOC)}.filter((k) => k in e).map((k) => [k, e[k]])) })); process.exit(0);`;
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("MALLOC_") && k !== MALLOC_SET_BY_LAUNCHER_ENV));
  const r = spawnSync(BIN, args, {
    encoding: "utf8",
    env: { ...clean, ...env, PATH: `${path.dirname(process.execPath)}:${process.env.PATH}`, NODE_OPTIONS: `--import=data:text/javascript,${encodeURIComponent(report)}` },
  });
  if (r.status !== 0) throw new Error(`bin/clawloop.js exited ${r.status}: ${r.stderr}`);
  const seen = JSON.parse(r.stdout.trim().split("\n").at(-1)!) as { pid: number; argv: string[]; malloc: Record<string, string> };
  // The shell became Node (exec): no process is left in between.
  expect(seen.pid).toBe(r.pid);
  return seen;
}

describe("the clawloop executable", () => {
  it("starts `clawloop sidecar` and `clawloop up` with the malloc settings, the arguments intact, naming the ones it set", () => {
    for (const cmd of ["sidecar", "up"]) {
      const r = launch([cmd, "--upstream", "http://a b/v1", ""]);
      expect(r.argv).toEqual([cmd, "--upstream", "http://a b/v1", ""]);
      expect(r.malloc).toEqual({ ...DEFAULTS, [MALLOC_SET_BY_LAUNCHER_ENV]: "MALLOC_ARENA_MAX,MALLOC_MMAP_THRESHOLD_,MALLOC_TRIM_THRESHOLD_" });
    }
  });

  it("keeps the user's own settings, and names only the ones it set", () => {
    for (const cmd of ["sidecar", "up"]) {
      const r = launch([cmd], { MALLOC_ARENA_MAX: "8", MALLOC_TRIM_THRESHOLD_: "" });
      expect(r.malloc).toEqual({ MALLOC_ARENA_MAX: "8", MALLOC_MMAP_THRESHOLD_: "65536", MALLOC_TRIM_THRESHOLD_: "", [MALLOC_SET_BY_LAUNCHER_ENV]: "MALLOC_MMAP_THRESHOLD_" });
    }
    // All three the user's: none named, and a list inherited from another clawloop is replaced.
    const all = { MALLOC_ARENA_MAX: "4", MALLOC_MMAP_THRESHOLD_: "1048576", MALLOC_TRIM_THRESHOLD_: "0" };
    expect(launch(["up"], { ...all, [MALLOC_SET_BY_LAUNCHER_ENV]: "MALLOC_ARENA_MAX" }).malloc).toEqual({ ...all, [MALLOC_SET_BY_LAUNCHER_ENV]: "" });
  });

  it("leaves every other command's environment alone (the trainer's large buffers stay glibc's choice)", () => {
    for (const args of [["train"], ["status"], ["--version"], []]) expect(launch(args).malloc).toEqual({});
  });
});

describe("withoutLauncherMalloc (the trainer child's environment under `clawloop up`)", () => {
  it("removes the settings the launcher named and its list; the user's and every other variable pass through", () => {
    const env = {
      MALLOC_ARENA_MAX: "2",
      MALLOC_MMAP_THRESHOLD_: "65536",
      MALLOC_TRIM_THRESHOLD_: "262144",
      [MALLOC_SET_BY_LAUNCHER_ENV]: "MALLOC_ARENA_MAX,MALLOC_MMAP_THRESHOLD_",
      PATH: "/usr/bin",
      HOME: "/home/u",
    };
    const out = withoutLauncherMalloc(env);
    expect(out).toEqual({ MALLOC_TRIM_THRESHOLD_: "262144", PATH: "/usr/bin", HOME: "/home/u" });
    // The environment it was given is left as it was (it is this process's own).
    expect(env.MALLOC_ARENA_MAX).toBe("2");
  });

  it("removes nothing but the list when the launcher set none, or did not run", () => {
    const user = { MALLOC_ARENA_MAX: "4", MALLOC_MMAP_THRESHOLD_: "1048576", MALLOC_TRIM_THRESHOLD_: "0", PATH: "/bin" };
    expect(withoutLauncherMalloc({ ...user, [MALLOC_SET_BY_LAUNCHER_ENV]: "" })).toEqual(user);
    expect(withoutLauncherMalloc(user)).toEqual(user);
  });

  it("removes only malloc settings, whatever the list names", () => {
    expect(withoutLauncherMalloc({ PATH: "/bin", HOME: "/h", [MALLOC_SET_BY_LAUNCHER_ENV]: "PATH, HOME" })).toEqual({ PATH: "/bin", HOME: "/h" });
  });
});
