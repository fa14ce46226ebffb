// `clawloop demo` as a real process on the real SmolLM2 GGUF, short: one persona (concise, with
// short replies and a small held-out set so it fits CI), eight interactions, small training steps,
// the user in lockstep with the trainer (the default). Proves the loop is wired end to end — every
// call recorded as a tagged main-line turn, every turn judged from the simulated user's reply,
// trained on, a version written, loaded by the embedded engine and serving the calls after the
// swap (the `adapter` field of the recorded turns) — and that the run leaves its summary (the
// dashboard's shape), chart and --json output.
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { Store } from "../../core/index.js";
import { loadPersona } from "../../demo/index.js";
import { runSummarySchema } from "../../sidecar/dashboard/runs.js";

const MODEL = process.env.CLAWLOOP_TEST_MODEL!;
const ROOT = path.resolve(import.meta.dirname, "../..");
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "clawloop-demo-"));
// A script file, not `node -e`: node-llama-cpp forks a test process with this process's execArgv.
const ENTRY = path.join(tmp, "clawloop.mjs");
fs.writeFileSync(ENTRY, `import { main } from ${JSON.stringify(path.join(ROOT, "cli", "main.ts"))};\nawait main(process.argv);\n`);
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const INTERACTIONS = 8;

describe("clawloop demo (real processes, SmolLM2)", () => {
  it("records, judges, trains, hot-loads and serves; writes summary.json, the chart and --json", { timeout: 1_500_000 }, async () => {
    // The shipped concise persona, cut down for CI: short replies, two held-out questions × 2 samples.
    const persona = { ...loadPersona("concise"), name: "concise-ci", sampling: { temperature: 0.7, topP: 1, maxTokens: 48 }, eval: { samplesPerPrompt: 2, seed: 7 } };
    persona.heldOut = persona.heldOut.slice(0, 2);
    const personaFile = path.join(tmp, "concise-ci.json");
    fs.writeFileSync(personaFile, JSON.stringify(persona));
    const configFile = path.join(tmp, "ci-settings.json");
    fs.writeFileSync(configFile, JSON.stringify({ train: { batchSize: 2, maxWaitSec: 10, rank: 4, alpha: 8, targets: ["q", "v"], maxTokens: 512 }, serve: { threads: 1 } }));
    const runDir = path.join(tmp, "run");
    const child = spawn(
      process.execPath,
      ["--import", "tsx", ENTRY, "demo", "--persona", personaFile, "--interactions", String(INTERACTIONS), "--mode", "combined", "--json", "--model", MODEL, "--data", tmp, "--run-dir", runDir, "--config", configFile, "--eval-every", "3"],
      { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] },
    );
    let out = "";
    let err = "";
    child.stdout.on("data", (c: Buffer) => (out += c.toString()));
    child.stderr.on("data", (c: Buffer) => (err += c.toString()));
    const code = await new Promise<number | null>((r) => child.on("exit", (c) => r(c)));
    const logs = () => `stderr:\n${err.slice(-4000)}\ntrain.log:\n${fs.existsSync(path.join(runDir, "logs/train.log")) ? fs.readFileSync(path.join(runDir, "logs/train.log"), "utf8").slice(-2000) : ""}`;
    expect(code, logs()).toBe(0);

    // Progress went to stderr: each interaction, judgment, training step and swap.
    expect(err).toMatch(/#\s*1\s+user\s+How do volcanoes form\?/);
    expect(err).toMatch(/judge #\d+ [+−]1 \(rules\)/);
    expect(err).toMatch(/train step 1 → v000001\s+loss/);
    expect(err).toMatch(/swap\s+v0000\d\d is live/);
    expect(err).toContain("Learning curve: concise-ci");

    // --json: the summary on stdout, and the same in summary.json, in the dashboard's shape.
    const summary = JSON.parse(out);
    const onDisk = JSON.parse(fs.readFileSync(path.join(runDir, "summary.json"), "utf8"));
    expect(onDisk).toEqual(summary);
    expect(runSummarySchema.safeParse(summary).success).toBe(true);
    expect(summary).toMatchObject({ persona: "concise-ci", mode: "combined", interactions: INTERACTIONS });
    expect(summary.satisfaction[0]).toMatchObject({ version: null, afterInteractions: 0, n: 4 });
    expect(summary.satisfaction.length).toBeGreaterThanOrEqual(2);
    expect(summary.satisfaction.at(-1).version).toMatch(/^v\d{6}$/);
    expect(typeof summary.perplexityChange).toBe("number");
    expect(fs.readFileSync(path.join(runDir, "learning-curve.svg"), "utf8")).toMatch(/^<svg[\s\S]*<\/svg>\n$/);
    expect(fs.readFileSync(path.join(runDir, "interactions.jsonl"), "utf8").trim().split("\n")).toHaveLength(INTERACTIONS);

    // The store: what the loops did, nothing the demo wrote itself.
    const store = await Store.open({ dataDir: runDir, writes: [] });
    try {
      const turns = (await store.list("turns")).filter((t) => t.turnType === "main");
      expect(turns).toHaveLength(INTERACTIONS);
      expect(turns.every((t) => t.placement === "tagged" && t.status === "ok" && t.completionTokenIds?.length)).toBe(true);
      const judgments = await store.list("judgments");
      expect(judgments).toHaveLength(INTERACTIONS);
      expect(judgments.filter((j) => j.score === -1).every((j) => j.hint)).toBe(true);
      const steps = await store.list("train_steps");
      expect(steps.length).toBeGreaterThanOrEqual(1);
      expect(summary.training.steps).toBe(steps.length);
      const adapters = await store.list("adapters");
      const wentLive = adapters.filter((a) => a.liveAt !== null).sort((a, b) => a.liveAt!.localeCompare(b.liveAt!));
      expect(wentLive.length).toBeGreaterThanOrEqual(1);
      // After the first swap, calls are served by an adapter version the engine loaded.
      const first = wentLive[0]!;
      const after = turns.filter((t) => t.startedAt > first.liveAt!);
      expect(after.length).toBeGreaterThanOrEqual(1);
      expect(after.every((t) => t.adapter !== null && adapters.some((a) => a.id === t.adapter))).toBe(true);
      expect(turns.filter((t) => t.startedAt < first.liveAt!).every((t) => t.adapter === null)).toBe(true);
      expect(summary.servedByAdapter).toBe(turns.filter((t) => t.adapter !== null).length);
    } finally {
      await store.close();
    }
  });

  it("refuses a bad persona and a used run directory with a clear error", async () => {
    const run = (args: string[]) =>
      new Promise<{ code: number | null; err: string }>((resolve) => {
        const c = spawn(process.execPath, ["--import", "tsx", ENTRY, "demo", "--data", tmp, "--model", MODEL, ...args], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
        let err = "";
        c.stderr.on("data", (b: Buffer) => (err += b.toString()));
        c.on("exit", (code) => resolve({ code, err }));
      });
    const bad = await run(["--persona", "nobody"]);
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/no persona "nobody"; shipped: .*concise/);
    const badMode = await run(["--mode", "sft"]);
    expect(badMode.code).not.toBe(0);
    expect(badMode.err).toContain("must be rl, opd or combined");
    const used = path.join(tmp, "used");
    fs.mkdirSync(path.join(used, "store"), { recursive: true });
    const again = await run(["--run-dir", used]);
    expect(again.code).toBe(1);
    expect(again.err).toContain("already holds a run's data");
  });
});
