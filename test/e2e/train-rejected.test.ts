// The train loop against a running hot-loading sidecar (the real switchboard, its store writing the
// `adapters` table, the vLLM driver in front of the scripted vLLM): a version the switchboard
// rejects is not built on. The trainer runs on the stand-in engine (trainer/testing/fake-backend.ts)
// with PEFT-readable adapter configs, and for one step its engine predicts a log-prob shift the
// server does not show (the scripted server's log-probs ignore the adapter), so the switchboard's
// log-prob check rejects exactly that version, the way it rejects a broken adapter.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { pino } from "pino";
import { loadConfig, silentLogger, Store, type AdapterVersion } from "../../core/index.js";
import { startLoraServer } from "../../fixtures/servers/lora.js";
import { startHotloadingSidecar } from "../../sidecar/hotload/index.js";
import { startTrainLoop } from "../../trainer/loop.js";
import { fakeBackend } from "../../trainer/testing/fake-backend.js";
import { listVersions } from "../../trainer/versions.js";
import { makeJudgment, makeTrainableTurn } from "../support/rows.js";
import { until } from "../support/until.js";

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

/** The stand-in backend, with adapter configs vLLM accepts, and a switch that breaks the probe's prediction. */
function testBackend() {
  const base = fakeBackend();
  const control = { brokenPrediction: false };
  const backend = {
    ...base,
    async createEngine(...args: Parameters<typeof base.createEngine>) {
      const engine = await base.createEngine(...args);
      const score = engine.score.bind(engine);
      // Under the adapter, every token 2 nats less likely than the server will measure.
      engine.score = async (items, adapter) => {
        const out = await score(items, adapter);
        return control.brokenPrediction && adapter ? out.map((row) => row.map((v) => v - 2)) : out;
      };
      return engine;
    },
    async writeAdapter(...args: Parameters<typeof base.writeAdapter>) {
      await base.writeAdapter(...args);
      const [dir, adapter] = args;
      const file = path.join(dir, "adapter_config.json");
      const cfg = JSON.parse(fs.readFileSync(file, "utf8")) as Record<string, unknown>;
      const { rank, alpha, targets } = adapter.config;
      fs.writeFileSync(file, JSON.stringify({ ...cfg, r: rank, lora_alpha: alpha, target_modules: targets.map((t) => `${t}_proj`) }));
    },
  };
  return { backend, control };
}

describe("train loop with the hot-load switchboard", () => {
  it("does not build on a version the switchboard rejected: the next one grows from the live version", async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "clawloop-train-rejected-"));
    cleanup.push(() => fs.rmSync(dataDir, { recursive: true, force: true }));
    const adapters = path.join(dataDir, "adapters");
    // The turns first: the sidecar's store host writes `turns` once it runs; judgments come in
    // batches, so each step's samples are chosen by the test.
    const seed = await Store.open({ dataDir, writes: ["turns", "judgments"], flushIntervalMs: 50 });
    for (let i = 1; i <= 6; i++) seed.put("turns", makeTrainableTurn(i));
    await seed.close();
    const judge = await Store.open({ dataDir, writes: ["judgments"], flushIntervalMs: 50 });
    cleanup.push(() => judge.close());
    const judged = async (...ids: number[]) => {
      for (const i of ids) judge.put("judgments", makeJudgment(i));
      await judge.flush();
    };

    const server = await startLoraServer({ kind: "vllm", model: "base-m" });
    cleanup.push(() => server.close());
    const config = loadConfig({
      env: {},
      flags: {
        dataDir,
        sidecar: { upstream: `${server.url}/v1`, port: 0, upstreamKind: "vllm" },
        adapters: { retrySec: 0.2 },
        train: { batchSize: 2, maxWaitSec: 0, pollMs: 30, lr: 0.1 },
      },
    });
    const sc = await startHotloadingSidecar(config, { logger: silentLogger, storeHost: "main" });
    cleanup.push(() => sc.close());
    const board = sc.hotload!;
    const logs: { level: number; msg: string; [k: string]: unknown }[] = [];
    const logger = pino({ level: "info" }, { write: (line: string) => void logs.push(JSON.parse(line)) });
    const { backend, control } = testBackend();
    const loop = await startTrainLoop(config, { backend, model: "/models/fake.gguf", logger });
    cleanup.push(() => loop.stop());
    const reader = await Store.open({ dataDir });
    cleanup.push(() => reader.close());
    const row = async (name: string): Promise<AdapterVersion | null> => (await reader.list("adapters")).find((r) => r.id === name) ?? null;

    await judged(1, 2);
    await until("v000001 live", () => board.status().live === "v000001", 30_000);

    control.brokenPrediction = true;
    await judged(3, 4);
    await until("v000002 written", () => listVersions(adapters).length === 2);
    control.brokenPrediction = false;
    const rejected = await until("v000002 rejected in the adapters table", async () => {
      const r = await row("v000002");
      return r?.status === "rejected" ? r : null;
    }, 30_000);
    expect(rejected.statusReason).toMatch(/^log-prob check failed/);
    expect(board.status().live).toBe("v000001");
    const v2Files = listVersions(adapters)[1]!.manifest.files;

    await judged(5, 6);
    await until("v000003 live", () => board.status().live === "v000003", 30_000);
    const versions = listVersions(adapters);
    expect(versions.map((v) => v.name)).toEqual(["v000001", "v000002", "v000003"]);
    // Built on the live version, not on the rejected one; the rejected one stays for inspection.
    expect(versions[2]!.manifest).toMatchObject({ parent: "v000001", step: 2, sampleIds: ["call-5", "call-6"] });
    expect(versions[1]!.manifest.files).toEqual(v2Files);
    // The trainer said so, naming the rejected version and the switchboard's reason.
    const warning = logs.find((l) => l.level === 40 && String(l.msg).includes("v000002"));
    expect(warning?.msg).toMatch(/v000002 was rejected by the switchboard \(log-prob check failed/);
    expect(warning).toMatchObject({ continuingFrom: "v000001" });
  });
});
