// `clawloop train` and `clawloop export` as real processes on the real model (SmolLM2-135M-
// Instruct Q4_1): the continuous loop over a store (killed mid-step with SIGKILL and restarted,
// then stopped with SIGTERM), export of the judged turns, and offline training from the export.
// The versions it writes must pass the sidecar's own checks: manifest hashes, and probe.json's
// predicted log-prob shift against what real llama.cpp measures with the version's adapter.gguf.
// (Batching, resume and rollback bookkeeping are tested exhaustively in trainer/loop.test.ts.)
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { compareProbe, readPeftAdapter, readProbeFile, versionProblems } from "../../adapters/index.js";
import { Store, type Judgment, type Turn } from "../../core/index.js";
import { openLlamaReference, type LlamaReference } from "../../trainer/engine/testing/llama-reference.js";
import { loadModel } from "../../trainer/engine/model/index.js";
import { readStatus } from "../../trainer/status.js";
import { listVersions } from "../../trainer/versions.js";
import { makeTurn } from "../support/rows.js";

const ROOT = path.resolve(import.meta.dirname, "../..");
const ENTRY = 'const { main } = await import("./cli/main.ts"); await main(["node", "clawloop", ...process.argv.slice(1)]);';
const MODEL = () => process.env.CLAWLOOP_TEST_MODEL!;

let dir: string;
let llama: LlamaReference;
const children: ChildProcess[] = [];

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "clawloop-train-cli-"));
  llama = await openLlamaReference(MODEL());
});

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  await llama?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

interface Run {
  child: ChildProcess;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stdout: () => string;
  stderr: () => string;
}

/** The CLI from source (what bin/clawloop.js runs once built), small LoRA and short samples to stay quick. */
function cli(args: string[]): Run {
  const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", ENTRY, "--", ...args], {
    cwd: ROOT,
    env: {
      ...process.env,
      CLAWLOOP_HOME: path.join(dir, "data"),
      CLAWLOOP_TRAIN_RANK: "4",
      CLAWLOOP_TRAIN_ALPHA: "8",
      CLAWLOOP_TRAIN_TARGETS: '["q","v"]',
      CLAWLOOP_TRAIN_MAX_TOKENS: "256",
      CLAWLOOP_TRAIN_LR: "0.001",
      CLAWLOOP_TRAIN_POLL_MS: "200",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(child);
  let out = "";
  let err = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })));
  return { child, exit, stdout: () => out, stderr: () => err };
}

async function until<T>(what: string, f: () => T, timeoutMs: number, run?: Run): Promise<NonNullable<T>> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = f();
    if (v) return v as NonNullable<T>;
    if (run && run.child.exitCode !== null) throw new Error(`the process exited while waiting for ${what}:\n${run.stderr()}\n${run.stdout()}`);
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const QA: [string, string, -1 | 1, string | null][] = [
  ["What is the capital of France?", "Paris.", 1, null],
  ["How many legs does a spider have?", "Great question! Spiders have eight legs. I hope this helps!", -1, "Answer in as few words as possible."],
  ["What do bees make?", "Honey.", 1, null],
];

/** Checks a version directory the way the sidecar does before and after loading it into llama.cpp. */
async function checkVersionDir(vdir: string): Promise<void> {
  expect(versionProblems(vdir, "gguf")).toEqual([]);
  expect(versionProblems(vdir, "peft")).toEqual([]);
  expect(readPeftAdapter(vdir).config).toMatchObject({ rank: 4, alpha: 8, targets: ["q", "v"], numLayers: 30 });
  const probe = readProbeFile(vdir)!;
  const tokens = [...probe.promptIds, ...probe.responseIds];
  const from = probe.promptIds.length;
  const server = {
    base: await llama.logprobs(tokens, { from }),
    version: await llama.logprobs(tokens, { from, loraFile: path.join(vdir, "adapter.gguf") }),
  };
  const cmp = compareProbe(probe, server);
  expect(cmp.reason).toBe(null);
  expect(cmp.ok).toBe(true);
  expect(cmp.measuredShift).toBeGreaterThan(0);
}

describe("clawloop train on the real model", () => {
  it("trains the judged turns of the store into versions, survives SIGKILL mid-step, stops on SIGTERM; export → train --samples round-trips", async () => {
    const data = path.join(dir, "data");
    // Judged main-line turns as the sidecar and the judge write them: two without server token
    // ids (rendered with the chat template), one with the ids and log-probs llama.cpp returned.
    const model = await loadModel(MODEL());
    const writer = await Store.open({ dataDir: data, writes: ["turns", "judgments"] });
    for (const [i, [q, a, score, hint]] of QA.entries()) {
      const messages = [{ role: "user", content: q }];
      let ids: Partial<Turn> = { promptTokenIds: null, completionTokenIds: null, completionLogprobs: null };
      if (i === 2) {
        const prompt = model.tokenizer.encodeChat(messages, { addGenerationPrompt: true });
        const completion = [...model.tokenizer.encode(a, { parseSpecial: false }), model.tokenizer.eosTokenIds[0]!];
        const lp = await llama.logprobs([...prompt, ...completion], { from: prompt.length });
        ids = { promptTokenIds: prompt, completionTokenIds: completion, completionLogprobs: lp };
      }
      writer.put("turns", makeTurn(i, { request: { messages, params: {} }, response: { id: null, content: a, reasoning: null, toolCalls: [], finishReason: "stop" }, ...ids }));
      const j: Judgment = {
        id: `call-${i}`, turnId: `call-${i}`, sessionId: "s1", score, method: "rules", votes: [], raw: [], hint,
        nextStateIds: [], judgeModel: null, costTokens: 0, costMs: 0, createdAt: new Date().toISOString(),
      };
      writer.put("judgments", j);
    }
    await writer.close();
    model.close();

    const adapters = path.join(data, "adapters");
    const loopArgs = ["train", "--model", MODEL(), "--batch-size", "3", "--max-wait", "600"];
    // Killed mid-step: nothing is written; a restart trains the same batch.
    const first = cli(loopArgs);
    await until("a step in progress", () => readStatus(data)?.state === "training" && readStatus(data)?.pid === first.child.pid, 240_000, first);
    first.child.kill("SIGKILL");
    expect((await first.exit).signal).toBe("SIGKILL");
    expect(listVersions(adapters)).toEqual([]);

    const second = cli(loopArgs);
    await until("v000001", () => listVersions(adapters).length === 1, 300_000, second);
    const [v1] = listVersions(adapters);
    expect(v1!.manifest).toMatchObject({ name: "v000001", parent: null, sampleIds: ["call-0", "call-1", "call-2"], rank: 4, alpha: 8, targetModules: ["q_proj", "v_proj"] });
    expect(Object.keys(v1!.manifest.files).sort()).toEqual(["adapter.gguf", "adapter_config.json", "adapter_model.safetensors", "probe.json"]);
    await checkVersionDir(v1!.dir);
    await until("the status file to show v000001", () => readStatus(data)?.version === "v000001", 30_000, second);
    // The continuous loop yields the CPU to serving (train.nice 10).
    expect(os.getPriority(second.child.pid!)).toBe(Math.min(19, os.getPriority() + 10));
    second.child.kill("SIGTERM");
    expect((await second.exit).code).toBe(0);
    expect(readStatus(data)).toMatchObject({ state: "stopped", samplesWaiting: 0, lastStep: { version: "v000001", samples: 3 } });
    // Plain log lines when stdout is not a terminal.
    expect(second.stdout()).toMatch(/"msg":"adapter version written"/);

    const reader = await Store.open({ dataDir: data });
    const [row] = await reader.list("train_steps");
    await reader.close();
    expect(row).toMatchObject({ version: "v000001", mode: "combined", samples: 3, sampleIds: ["call-0", "call-1", "call-2"] });
    // One of the three turns carried llama.cpp's log-probs: the step measured them against the engine.
    expect(row!.behaviourMismatch).toBeGreaterThan(0);
    expect(Number.isFinite(row!.loss) && Number.isFinite(row!.gradNorm) && row!.tokens > 0).toBe(true);

    // export → train --samples, with a broken line added: the rest still trains.
    const file = path.join(dir, "samples.jsonl");
    const exp = cli(["export", "--samples", file]);
    expect((await exp.exit).code).toBe(0);
    expect(exp.stdout()).toMatch(/wrote 3 samples/);
    fs.appendFileSync(file, '{"messages": "oops"}\n');
    const out = path.join(dir, "offline");
    const offline = cli(["train", "--samples", file, "--model", MODEL(), "--out", out, "--mode", "rl", "--steps", "2", "--batch-size", "2"]);
    const done = await offline.exit;
    expect(done.code, offline.stderr()).toBe(0);
    expect(offline.stdout()).toMatch(/wrote .*offline: 2 steps on 3 samples \(mode rl\)/);
    expect(offline.stderr()).toMatch(/line 4: messages: /);
    expect(JSON.parse(fs.readFileSync(path.join(out, "manifest.json"), "utf8"))).toMatchObject({ step: 2, sampleIds: ["call-0", "call-1", "call-2"] });
    await checkVersionDir(out);
  }, 900_000);

  it("rejects bad offline input with a clear error and writes nothing", async () => {
    const out = path.join(dir, "never");
    const missing = cli(["train", "--samples", path.join(dir, "missing.jsonl"), "--model", MODEL(), "--out", out]);
    expect((await missing.exit).code).toBe(1);
    expect(missing.stderr()).toMatch(/cannot read samples file/);
    const noOut = cli(["train", "--samples", path.join(dir, "x.jsonl"), "--model", MODEL()]);
    expect((await noOut.exit).code).toBe(1);
    expect(noOut.stderr()).toMatch(/--samples needs --out/);
    expect(fs.existsSync(out)).toBe(false);
  }, 120_000);
});
