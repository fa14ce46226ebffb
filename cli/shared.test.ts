// exitWithParent + onShutdown in real child processes: a process started with an IPC channel (and
// CLAWLOOP_EXIT_WITH_PARENT=1) stops through its registered stop when the channel closes (what the
// kernel does when the parent dies, even by kill -9; closing it from this side is the same event
// for the child), also when the stop is registered only later (a trainer still loading its model);
// the watch never keeps a process alive, and without the opt-in nothing changes.
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "clawloop-shared-"));
const SHARED = path.join(import.meta.dirname, "shared.ts");
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Runs a script importing cli/shared.ts; resolves with its exit code, or null if it is still running after `ms`. */
function run(body: string, opts: { ipc: boolean; optIn?: boolean; onReady?: (child: ReturnType<typeof spawn>) => void; ms?: number }): Promise<number | null> {
  const file = path.join(dir, `s-${Math.random().toString(36).slice(2)}.mjs`);
  fs.writeFileSync(file, `import { exitWithParent, onShutdown, EXIT_WITH_PARENT_ENV } from ${JSON.stringify(SHARED)};\nimport fs from "node:fs";\n${body}\n`);
  const child = spawn(process.execPath, ["--import", "tsx", file], {
    stdio: ["ignore", "inherit", "inherit", ...(opts.ipc ? ["ipc" as const] : [])],
    env: { ...process.env, ...(opts.optIn === false ? {} : { CLAWLOOP_EXIT_WITH_PARENT: "1" }) },
  });
  if (opts.ipc) child.on("message", (m) => m === "ready" && opts.onReady?.(child));
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      resolve(null);
    }, opts.ms ?? 30_000);
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}

describe("exitWithParent", () => {
  it("stops through onShutdown when the parent's channel closes", async () => {
    const marker = path.join(dir, "a");
    const code = await run(
      `exitWithParent();
onShutdown(async () => fs.writeFileSync(${JSON.stringify(marker)}, "stopped"));
setInterval(() => undefined, 1000); // a loop that runs until stopped
process.send("ready");`,
      { ipc: true, onReady: (c) => c.disconnect() },
    );
    expect(code).toBe(0);
    expect(fs.readFileSync(marker, "utf8")).toBe("stopped");
  });

  it("stops as soon as the stop is registered when the parent went away during startup", async () => {
    const marker = path.join(dir, "b");
    const code = await run(
      `exitWithParent();
setInterval(() => undefined, 1000);
process.send("ready");
process.on("disconnect", () => setTimeout(() => onShutdown(async () => fs.writeFileSync(${JSON.stringify(marker)}, "stopped")), 300));`,
      { ipc: true, onReady: (c) => c.disconnect() },
    );
    expect(code).toBe(0);
    expect(fs.readFileSync(marker, "utf8")).toBe("stopped");
  });

  it("keeps running while the parent is there", async () => {
    const marker = path.join(dir, "c");
    // The script stops itself after 1.5 s unless the watch stopped it before (it must not).
    const code = await run(
      `exitWithParent();
onShutdown(async () => fs.writeFileSync(${JSON.stringify(marker)}, "stopped early"));
setTimeout(() => process.exit(7), 1500);
process.send("ready");`,
      { ipc: true },
    );
    expect(code).toBe(7);
    expect(fs.existsSync(marker)).toBe(false);
  });

  it("leaves a process alone whose parent did not ask for it (e.g. a test runner's worker running a command)", async () => {
    const marker = path.join(dir, "d");
    const code = await run(
      `exitWithParent();
onShutdown(async () => fs.writeFileSync(${JSON.stringify(marker)}, "stopped"));
process.on("disconnect", () => setTimeout(() => process.exit(7), 500));
process.send("ready");`,
      { ipc: true, optIn: false, onReady: (c) => c.disconnect() },
    );
    expect(code).toBe(7);
    expect(fs.existsSync(marker)).toBe(false);
  });

  it("is not passed on to the processes it starts", async () => {
    expect(await run(`exitWithParent(); process.exit(process.env[EXIT_WITH_PARENT_ENV] === undefined ? 0 : 1);`, { ipc: true })).toBe(0);
  });

  it("never keeps a finished process alive, with or without a channel", async () => {
    expect(await run(`exitWithParent(); process.send?.("ready");`, { ipc: true, ms: 20_000 })).toBe(0);
    expect(await run(`exitWithParent();`, { ipc: false, ms: 20_000 })).toBe(0);
  });
});
