// `clawloop train pause | resume | status` through the executable's entry (cli/entry.ts's
// programFor, which loads only the train command), and every command the plugin's skill tells the
// agent to run exists with the options it uses.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { Command } from "commander";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { readTrainPause } from "../../core/index.js";
import { programFor } from "../entry.js";

let dataDir: string;
let out: string[];

beforeEach(() => {
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "clawloop-train-cli-"));
  out = [];
  vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => {
    out.push(String(chunk));
    return true;
  });
});

afterEach(() => {
  vi.restoreAllMocks();
  fs.rmSync(dataDir, { recursive: true, force: true });
});

async function clawloop(...args: string[]): Promise<string> {
  out = [];
  const argv = ["node", "clawloop", ...args];
  const program = await programFor(argv);
  // Errors throw instead of exiting the test process, in every (sub)command.
  const override = (c: Command): void => {
    c.exitOverride();
    c.configureOutput({ writeErr: () => undefined });
    c.commands.forEach(override);
  };
  override(program);
  await program.parseAsync(argv);
  return out.join("");
}

describe("clawloop train pause | resume | status", () => {
  it("pauses and resumes through <data>/train.paused, with the data directory given after or before the subcommand", async () => {
    expect(await clawloop("train", "pause", "--data", dataDir, "--reason", "reviewing replies")).toMatch(/^training paused/);
    expect(readTrainPause(dataDir)).toMatchObject({ by: "cli", reason: "reviewing replies", since: expect.any(String) });
    expect(await clawloop("train", "--data", dataDir, "pause")).toMatch(/already paused since/);
    expect(await clawloop("train", "status", "--data", dataDir)).toMatch(/^training is paused since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d by cli \(reviewing replies\)[^\n]*\nthe trainer has never run/);
    expect(JSON.parse(await clawloop("train", "status", "--data", dataDir, "--json"))).toMatchObject({ paused: true, running: false, status: null });
    expect(await clawloop("train", "resume", "--data", dataDir)).toMatch(/^training resumed \(it was paused since/);
    expect(readTrainPause(dataDir)).toBe(null);
    expect(JSON.parse(await clawloop("train", "resume", "--data", dataDir, "--json"))).toEqual({ paused: false, wasPaused: false });
    expect(await clawloop("train", "status", "--data", dataDir)).toMatch(/^training is not paused/);
  });

  it("says whether the running trainer holds its base model, and when its last step was (the CLI's stamp)", async () => {
    const { newStatus, writeStatus } = await import("../../trainer/status.js");
    const lastStep = { version: "v000003", step: 3, loss: 0.5, meanReward: 0.25, samples: 4, durationMs: 900, at: "2026-01-02T03:04:05.678Z" };
    writeStatus(dataDir, { ...newStatus("rl", "m"), state: "waiting", lastStep, weights: { state: "not loaded", since: new Date().toISOString(), rssMb: 165 } });
    expect(await clawloop("train", "status", "--data", dataDir)).toMatch(
      /trainer running \(pid \d+\): waiting; .*; last step 3 at 2026-01-02 03:04:05; model not loaded \(loads when a batch is ready; trainer RSS 165 MB\)\n$/,
    );
  });

  it("keeps `clawloop train` itself: its options still reach the train action", async () => {
    const program = await programFor(["node", "clawloop", "train"]);
    const train = program.commands.find((c) => c.name() === "train")!;
    expect(train.commands.map((c) => c.name())).toEqual(["pause", "resume", "status"]);
    expect(train.options.map((o) => o.long)).toEqual(expect.arrayContaining(["--samples", "--out", "--model", "--data"]));
    // The action runs (and checks its flags) rather than taking `--out` for a subcommand.
    await expect(clawloop("train", "--data", dataDir, "--out", "x")).rejects.toThrow(/--out applies to offline training only/);
    await expect(clawloop("train", "--data", dataDir, "paws")).rejects.toThrow(/too many arguments/);
  });
});

describe("the plugin's skill", () => {
  const skill = fs.readFileSync(path.resolve(import.meta.dirname, "../../plugin/skills/clawloop/SKILL.md"), "utf8");
  const commands = [...skill.matchAll(/`(?:npx )?clawloop ([^`]+)`/g)].map((m) => m[1]!.trim());

  it("names only commands and options clawloop has", async () => {
    expect(commands).toEqual(expect.arrayContaining(["train pause", "train resume", "adapters rollback <version>", "status --json"]));
    for (const line of commands) {
      const words = line.split(/\s+/);
      const names = words.filter((w, i) => /^[a-z][a-z-]*$/.test(w) && words.slice(0, i).every((p) => /^[a-z][a-z-]*$/.test(p)));
      const program = await programFor(["node", "clawloop", ...names]);
      let cmd: Command = program;
      for (const name of names) {
        const next = cmd.commands.find((c) => c.name() === name);
        expect(next, `\`clawloop ${line}\`: no command ${name}`).toBeDefined();
        cmd = next!;
      }
      const known = new Set<string>();
      for (let c: Command | null = cmd; c; c = c.parent) for (const o of c.options) known.add(o.long!);
      for (const flag of words.filter((w) => w.startsWith("--"))) expect(known.has(flag), `\`clawloop ${line}\`: no option ${flag}`).toBe(true);
      const args = words.filter((w) => w.startsWith("<"));
      expect(cmd.registeredArguments.length, `\`clawloop ${line}\`: arguments`).toBe(args.length);
    }
  });
});
