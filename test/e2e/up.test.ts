// `clawloop up` as real processes with the real SmolLM2 GGUF: the embedded engine, the sidecar with
// hot-loading, the rules judge and the trainer child. Tagged calls with explicit feedback get
// judged, trained on, written as a version, checked and loaded by the engine, and serve the next
// call. `clawloop status` and `clawloop adapters` read it; SIGTERM stops everything with nothing
// lost (every answered turn, every judgment and the step's train_steps row are in the store).
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { Store } from "../../core/index.js";
import { until } from "../support/until.js";

const MODEL = process.env.CLAWLOOP_TEST_MODEL!;
const ROOT = path.resolve(import.meta.dirname, "../..");
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "clawloop-up-"));
// A script file, not `node -e`: node-llama-cpp forks a test process with this process's execArgv.
const ENTRY = path.join(dataDir, "clawloop.mjs");
fs.writeFileSync(ENTRY, `import { main } from ${JSON.stringify(path.join(ROOT, "cli", "main.ts"))};\nawait main(process.argv);\n`);
let child: ChildProcess | null = null;

afterAll(() => {
  if (child && child.exitCode === null) child.kill("SIGKILL");
  fs.rmSync(dataDir, { recursive: true, force: true });
});

function cli(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ["--import", "tsx", ENTRY, ...args], { cwd: ROOT, encoding: "utf8", timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}


describe("clawloop up (real processes, SmolLM2)", () => {
  it("runs the four loops: calls are judged, trained on, hot-loaded and served; status and adapters read it; SIGTERM loses nothing", { timeout: 900_000 }, async () => {
    fs.writeFileSync(
      path.join(dataDir, "config.json"),
      JSON.stringify({
        logLevel: "warn",
        judge: { method: "rules", pollMs: 200, settleMs: 0 },
        train: { mode: "rl", batchSize: 3, maxWaitSec: 120, pollMs: 300, lr: 1e-3, rank: 4, alpha: 8, targets: ["q", "v"], maxTokens: 256 },
        serve: { contextSize: 512, parallel: 2 },
        adapters: { retrySec: 1 },
      }),
    );
    child = spawn(process.execPath, ["--import", "tsx", ENTRY, "up", "--model", MODEL, "--data", dataDir, "--port", "0", "--engine-port", "0"], {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    child.stdout!.on("data", (c: Buffer) => (out += c.toString()));
    child.stderr!.on("data", (c: Buffer) => (err += c.toString()));
    const exited = new Promise<number | null>((r) => child!.on("exit", (code) => r(code)));
    const sidecar = await until("the sidecar's address", async () => /collect\s+sidecar: (http:\/\/[^\s]+)\/v1/.exec(out)?.[1], { timeoutMs: 180_000, everyMs: 250, ignoreErrors: true }).catch((e: Error) => {
      throw new Error(`${e.message}\nstdout: ${out}\nstderr: ${err}`);
    });
    expect(out).toMatch(/serve\s+embedded engine: .* on http:\/\/127\.0\.0\.1:\d+\/v1/);
    expect(out).toMatch(/dashboard http:\/\/.*\/clawloop\/\?token=/);
    const token = fs.readFileSync(path.join(dataDir, "token"), "utf8").trim();
    const api = (p: string) => fetch(sidecar + p, { headers: { authorization: `Bearer ${token}` } }).then((r) => r.json() as Promise<any>);
    const served = (await fetch(`${sidecar}/v1/models`).then((r) => r.json())) as { data: { id: string }[] };
    const base = served.data[0]!.id;

    // Tagged calls through the sidecar, each followed by explicit feedback.
    const chat = async (run: string, text: string) => {
      const res = await fetch(`${sidecar}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-session-id": "s-up", "x-openclaw-run-id": run, "x-openclaw-call-id": `${run}:model:1`, "x-turn-type": "main" },
        body: JSON.stringify({ model: base, messages: [{ role: "user", content: text }], max_tokens: 12, temperature: 0 }),
      });
      expect(res.status).toBe(200);
      return (await res.json()) as { model: string };
    };
    const runs = ["run-1", "run-2", "run-3"];
    for (const [i, run] of runs.entries()) {
      expect((await chat(run, `Say hello number ${i}.`)).model).toBe(base);
      const events = [{ id: `fb-${run}`, type: "next_state", kind: "feedback", sessionId: "s-up", forRunId: run, score: i === 1 ? -1 : 1, at: new Date().toISOString() }];
      const r = await fetch(`${sidecar}/clawloop/v1/events`, { method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body: JSON.stringify(events) });
      expect(r.status).toBe(200);
    }

    // Judged, trained, written, checked and loaded: v000001 goes live.
    const listing = await until("v000001 to go live", async () => {
      const l = await api("/clawloop/v1/adapters");
      return l.live === "v000001" ? l : null;
    }, { timeoutMs: 600_000, everyMs: 250, ignoreErrors: true }).catch((e: Error) => {
      throw new Error(`${e.message}\nstderr: ${err.slice(-3000)}`);
    });
    expect(listing.versions[0]).toMatchObject({ id: "v000001", status: "live" });
    const status = await api("/clawloop/v1/status");
    expect(status.switchboard).toMatchObject({ mode: "hotload", kind: "clawloop", live: "v000001", lastRejection: null });
    // The version carried a probe, and the engine's shift matched llama.cpp's.
    expect(status.switchboard.lastCheck.logprobs?.ok ?? status.switchboard.lastCheck.logprobsSkipped).toBeTruthy();
    // The next call is served by the new version.
    expect((await chat("run-4", "Say hello again.")).model).toBe("clawloop-v000001");

    const st = cli(["status", "--data", dataDir, "--json"]);
    expect(st.status, st.stderr).toBe(0);
    const report = JSON.parse(st.stdout);
    expect(report.sidecar.running).toBe(true);
    expect(report.adapters).toMatchObject({ live: "v000001", liveStep: 1 });
    expect(report.counts.turns).toBeGreaterThanOrEqual(4);
    expect(report.judge.running).toBe(true);
    expect(report.train.running).toBe(true);
    const text = cli(["status", "--data", dataDir]);
    expect(text.stdout).toMatch(/adapters\s+live: v000001 \(step 1\)/);
    const ls = cli(["adapters", "list", "--data", dataDir]);
    expect(ls.status, ls.stderr).toBe(0);
    expect(ls.stdout).toMatch(/\*v000001\s+live/);

    const pin = cli(["adapters", "pin", "v000001", "--data", dataDir]);
    expect(pin.stdout, pin.stderr).toContain("pinned: v000001");
    expect(cli(["adapters", "unpin", "--data", dataDir]).stdout).toContain("pinned: no");
    const bad = cli(["adapters", "rollback", "v000042", "--data", dataDir]);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain("no adapter version v000042");

    // A crashed trainer is restarted.
    const upFile = () => JSON.parse(fs.readFileSync(path.join(dataDir, "loops", "up.json"), "utf8")) as { trainerPid: number | null };
    const first = upFile().trainerPid!;
    expect(first).toBeGreaterThan(0);
    process.kill(first, "SIGKILL");
    const second = await until("a new trainer process", async () => {
      const pid = upFile().trainerPid;
      return pid && pid !== first ? pid : null;
    }, { timeoutMs: 60_000, everyMs: 250, ignoreErrors: true });
    expect(second).not.toBe(first);

    // SIGTERM: everything stops, nothing answered or judged is lost.
    child.kill("SIGTERM");
    expect(await exited).toBe(0);
    // The trainer stopped with it (no orphan left training on the data directory).
    const trainerAlive = () => {
      try {
        process.kill(second, 0);
        return true;
      } catch {
        return false;
      }
    };
    expect(trainerAlive()).toBe(false);
    expect(fs.existsSync(path.join(dataDir, "loops", "up.json"))).toBe(false);
    const store = await Store.open({ dataDir, writes: [] });
    try {
      const turns = await store.list("turns", { where: { sessionId: "s-up" } });
      expect(turns.map((t) => t.runId).sort()).toEqual(["run-1", "run-2", "run-3", "run-4"]);
      expect(turns.find((t) => t.runId === "run-4")!.adapter).toBe("v000001");
      expect((await store.list("judgments")).length).toBeGreaterThanOrEqual(2);
      expect((await store.list("train_steps")).map((s) => s.version)).toContain("v000001");
      expect((await store.list("adapters")).find((a) => a.id === "v000001")!.status).toBe("live");
    } finally {
      await store.close();
    }
    // Stopped: status still reads the store.
    const after = cli(["status", "--data", dataDir, "--json"]);
    expect(after.status, after.stderr).toBe(0);
    expect(JSON.parse(after.stdout)).toMatchObject({ sidecar: { running: false }, adapters: { live: "v000001" }, judge: { running: false }, train: { running: false } });
  });

  it("refuses to start without something to serve, or without the base model to train behind --upstream", () => {
    const empty = fs.mkdtempSync(path.join(os.tmpdir(), "clawloop-up-empty-"));
    try {
      const none = cli(["up", "--data", empty]);
      expect(none.status).toBe(1);
      expect(none.stderr).toContain("pass --model smollm2");
      const upstream = cli(["up", "--upstream", "http://127.0.0.1:9", "--data", empty]);
      expect(upstream.status).toBe(1);
      expect(upstream.stderr).toContain("set train.model");
      const both = cli(["up", "--upstream", "http://127.0.0.1:9", "--model", MODEL, "--data", empty]);
      expect(both.status).toBe(1);
      expect(both.stderr).toContain("not both");
      // Nothing was started, so nothing was left behind.
      expect(fs.existsSync(path.join(empty, "loops", "up.json"))).toBe(false);
    } finally {
      fs.rmSync(empty, { recursive: true, force: true });
    }
  });
});
