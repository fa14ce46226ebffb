// bin/clawloop.js is run by the shell when executed (`clawloop …`): its first line gives a
// `clawloop sidecar` glibc's malloc settings, then execs Node on the same file.
import { spawnSync } from "node:child_process";
import path from "node:path";
import { describe, expect, it } from "vitest";

const BIN = path.resolve(import.meta.dirname, "..", "bin", "clawloop.js");
const MALLOC = ["MALLOC_ARENA_MAX", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"];

/**
 * Executes the bin as a user's shell would, on the real Node, which reports what it started with
 * (an `--import` that runs before the CLI) and exits before the CLI loads.
 */
function launch(args: string[], env: Record<string, string> = {}) {
  const report = `const e = process.env; console.log(JSON.stringify({ pid: process.pid, argv: process.argv.slice(2), malloc: Object.fromEntries(${JSON.stringify(MALLOC)}.filter((k) => k in e).map((k) => [k, e[k]])) })); process.exit(0);`;
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("MALLOC_")));
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
  it("starts `clawloop sidecar` with the malloc settings, the arguments intact", () => {
    const r = launch(["sidecar", "--upstream", "http://a b/v1", ""]);
    expect(r.argv).toEqual(["sidecar", "--upstream", "http://a b/v1", ""]);
    expect(r.malloc).toEqual({ MALLOC_ARENA_MAX: "2", MALLOC_MMAP_THRESHOLD_: "65536", MALLOC_TRIM_THRESHOLD_: "131072" });
  });

  it("keeps the user's own settings", () => {
    const r = launch(["sidecar"], { MALLOC_ARENA_MAX: "8", MALLOC_TRIM_THRESHOLD_: "" });
    expect(r.malloc).toEqual({ MALLOC_ARENA_MAX: "8", MALLOC_MMAP_THRESHOLD_: "65536", MALLOC_TRIM_THRESHOLD_: "" });
  });

  it("leaves every other command's environment alone (the trainer's large buffers stay glibc's choice)", () => {
    for (const args of [["train"], ["up"], ["--version"], []]) expect(launch(args).malloc).toEqual({});
  });
});
