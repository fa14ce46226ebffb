// Hot-loading into the real embedded engine (llama.cpp through node-llama-cpp) with the real
// SmolLM2-135M-Instruct Q4_1 GGUF, behind a real sidecar:
// - the embedded driver loads a version's adapter.gguf, serves it under its own name, and scores;
// - the post-load log-prob check accepts a correct adapter whose predicted shift (by the trainer's
//   engine, fp32) is well above llama.cpp's Q4_1 noise floor, and rejects the same adapter broken
//   the ways a conversion breaks: scaled ×2, layers in the wrong order, q rows permuted
//   (a wrong head permutation), and a corrupted file;
// - 20 swaps under continuous streamed load fail and stall no request.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cloneLoraAdapter, loraKey, VllmDriver, type LoraAdapter } from "../../adapters/index.js";
import { loadConfig, silentLogger } from "../../core/index.js";
import { startServer, type RunningServer } from "../../serve/index.js";
import { startHotloadingSidecar, type HotloadSidecarHandle } from "../../sidecar/hotload/index.js";
import { AdamW, Engine, loadModel, type LoadedModel } from "../../trainer/engine/index.js";
import { versionName, writeVersion, type GgufBase } from "../support/adapter-versions.js";

const MODEL = process.env.CLAWLOOP_TEST_MODEL!;
const SERVED = "smol";

let server: RunningServer;
let model: LoadedModel;
let engine: Engine;
let gguf: GgufBase;
const dirs: string[] = [];

function tmp(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "clawloop-hotload-engine-"));
  dirs.push(d);
  return d;
}

beforeAll(async () => {
  // parallel 3: two streaming clients, and a sequence free for the post-load check (it waits in line otherwise).
  server = await startServer({ model: MODEL, port: 0, contextSize: 512, parallel: 3, servedModelName: SERVED });
  model = await loadModel(MODEL);
  engine = await Engine.create({ model, lora: { rank: 8, alpha: 16, targets: ["q", "k"] }, threads: 2, maxTokens: 256 });
  const c = model.weights.config;
  gguf = { architecture: c.architecture, numHeads: c.numHeads, numKvHeads: c.numKvHeads };
});
afterAll(async () => {
  engine?.close();
  model?.close();
  await server?.close();
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

/** An adapter with deterministic non-zero B of the given size. */
/**
 * A trained adapter, as the train loop makes them: a few real steps (binary RL, reward +1) on the
 * probe's own reply, so its effect is structured (those tokens up) rather than random.
 */
async function trainedAdapter(steps: number): Promise<LoraAdapter> {
  const adapter = engine.newAdapter(7, model.name);
  const optimizer = new AdamW({ lr: 1e-3, weightDecay: 0 });
  const item = probeItem();
  for (let i = 0; i < steps; i++) {
    const [old] = await engine.score([item], adapter);
    const r = await engine.trainStep([{ ...item, advantages: item.responseIds.map(() => 1), oldLogprobs: old! }], adapter, { epsLow: 0.2, epsHigh: 0.28, klCoef: 0 });
    optimizer.step(adapter, r.gradients);
  }
  return adapter;
}

function adapterOf(seed: number, bScale: number): LoraAdapter {
  const a = engine.newAdapter(seed, model.name);
  let k = seed;
  for (const b of a.b.values()) for (let i = 0; i < b.length; i++) b[i] = bScale * Math.sin(++k * 0.7);
  return a;
}

function probeItem() {
  const tok = model.tokenizer;
  const promptIds = tok.encodeChat([{ role: "user", content: "Say hello to the team in one short sentence." }], { addGenerationPrompt: true });
  const full = tok.encodeChat(
    [
      { role: "user", content: "Say hello to the team in one short sentence." },
      { role: "assistant", content: "Hello team, great to be working with all of you today!" },
    ],
    { addGenerationPrompt: false },
  );
  return { promptIds, responseIds: full.slice(promptIds.length) };
}

/** The probe sequence and the engine's predicted log-probs under base and adapter. */
async function probeFor(adapter: LoraAdapter) {
  const item = probeItem();
  const [base] = await engine.score([item], null);
  const [version] = await engine.score([item], adapter);
  return { ...item, base: base!, version: version! };
}

async function sidecarFor(dataDir: string): Promise<HotloadSidecarHandle> {
  const config = loadConfig({
    flags: { dataDir, sidecar: { upstream: `${server.url}/v1`, port: 0, upstreamKind: "auto" }, adapters: { retrySec: 0.5, keepLoaded: 1 } },
    env: {},
  });
  return startHotloadingSidecar(config, { logger: silentLogger, storeHost: "main" });
}

/** Waits until the switchboard has decided on `version` (live or rejected). */
async function settle(sc: HotloadSidecarHandle, version: string): Promise<void> {
  const until = Date.now() + 120_000;
  for (;;) {
    await sc.hotload!.idle();
    const row = sc.hotload!.versions().versions.find((v) => v.id === version);
    if (row && (row.status === "live" || row.status === "rejected")) return;
    if (Date.now() > until) throw new Error(`no decision on ${version}: ${JSON.stringify(sc.hotload!.status())}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("hot-loading into the embedded engine (real llama.cpp, SmolLM2)", () => {
  it("the driver loads, serves and scores a version; unloads it", async () => {
    const dir = tmp();
    const adapter = adapterOf(3, 0.02);
    const v = writeVersion(dir, 1, { adapter, gguf });
    const d = new VllmDriver({ url: server.url }, "clawloop");
    expect(await d.baseModel()).toBe(SERVED);
    await d.load("clawloop-v000001", v);
    expect(await d.loaded()).toEqual(["clawloop-v000001"]);
    const probe = await d.probe("clawloop-v000001");
    expect(probe.ok).toBe(true);
    const p = await probeFor(adapter);
    const base = await d.score(SERVED, p.promptIds, p.responseIds);
    const tuned = await d.score("clawloop-v000001", p.promptIds, p.responseIds);
    expect(base).toHaveLength(p.responseIds.length);
    expect(tuned.some((x, i) => Math.abs(x - base[i]!) > 1e-3)).toBe(true);
    await d.unload("clawloop-v000001");
    expect(await d.loaded()).toEqual([]);
    // A PEFT-only version cannot be served by llama.cpp: the engine says so.
    const peftOnly = writeVersion(dir, 2, { adapter });
    await expect(d.load("clawloop-v000002", peftOnly)).rejects.toThrow(/adapter\.gguf|GGUF/);
  });

  it("accepts a correct adapter by its log-prob shift and rejects broken conversions of it", async () => {
    const dataDir = tmp();
    const adapters = path.join(dataDir, "adapters");
    const sc = await sidecarFor(dataDir);
    try {
      const good = await trainedAdapter(3);
      const probe = await probeFor(good);
      writeVersion(adapters, 1, { adapter: good, gguf, probe });
      await settle(sc, "v000001");
      let st = sc.hotload!.status();
      const check = st.lastCheck!.logprobs!;
      console.log(
        `good adapter: predicted mean |δ| ${check.predictedShift.toFixed(3)}, measured ${check.measuredShift.toFixed(3)}, ` +
          `mean |err| ${check.meanError.toFixed(3)}, max ${check.maxError.toFixed(3)}, cos ${check.cosine?.toFixed(3)}`,
      );
      expect(st.live).toBe("v000001");
      expect(check.ok).toBe(true);
      // Large enough that a broken adapter cannot hide in the noise floor.
      expect(check.discriminative).toBe(true);

      const broken: [string, LoraAdapter | null, string | undefined][] = [];
      const doubled = cloneLoraAdapter(good);
      for (const b of doubled.b.values()) for (let i = 0; i < b.length; i++) b[i]! *= 2;
      broken.push(["scaled ×2", doubled, undefined]);
      const reversed = cloneLoraAdapter(good);
      const n = good.config.numLayers;
      for (const t of good.config.targets) {
        for (let l = 0; l < n; l++) {
          reversed.a.set(loraKey(l, t), good.a.get(loraKey(n - 1 - l, t))!.slice());
          reversed.b.set(loraKey(l, t), good.b.get(loraKey(n - 1 - l, t))!.slice());
        }
      }
      broken.push(["layers reversed", reversed, undefined]);
      // The q/k rows in the interleaved RoPE order instead of llama.cpp's (the permutation a GGUF
      // converter must apply to llama q/k, applied twice here): within each head, row r ↔ its
      // even/odd-split position.
      const permuted = cloneLoraAdapter(good);
      const rank = good.config.rank;
      for (const [t, heads] of [["q", gguf.numHeads], ["k", gguf.numKvHeads]] as const) {
        for (let l = 0; l < n; l++) {
          const b = good.b.get(loraKey(l, t))!;
          const out = b.length / rank;
          const hd = out / heads;
          const p = new Float32Array(b.length);
          for (let row = 0; row < out; row++) {
            const h = Math.floor(row / hd);
            const r = row % hd;
            const to = h * hd + (r < hd / 2 ? 2 * r : 2 * (r - hd / 2) + 1);
            p.set(b.subarray(row * rank, (row + 1) * rank), to * rank);
          }
          permuted.b.set(loraKey(l, t), p);
        }
      }
      broken.push(["q/k rows in the wrong RoPE order", permuted, undefined]);
      broken.push(["corrupted file", null, "adapter.gguf"]);

      let n2 = 2;
      for (const [what, ggufAdapter, corrupt] of broken) {
        writeVersion(adapters, n2, { adapter: good, ggufAdapter: ggufAdapter ?? undefined, gguf, probe, corrupt });
        await settle(sc, versionName(n2));
        st = sc.hotload!.status();
        const lp = st.lastCheck?.version === versionName(n2) ? st.lastCheck.logprobs : null;
        console.log(`${what}: ${st.lastRejection?.version === versionName(n2) ? `rejected — ${st.lastRejection.reason}` : "NOT rejected"}${lp ? ` (${JSON.stringify(lp)})` : ""}`);
        expect(st.lastRejection?.version, what).toBe(versionName(n2));
        expect(st.live, what).toBe("v000001");
        n2++;
      }
      // The live version still serves, and the rejected ones were unloaded.
      await sc.hotload!.idle();
      expect(server.engine.adapters().map((a) => a.name)).toEqual(["clawloop-v000001"]);
    } finally {
      await sc.close();
    }
  });

  it("swaps 20 versions under continuous streamed load with zero failed and zero stalled requests", { timeout: 600_000 }, async () => {
    const dataDir = tmp();
    const adapters = path.join(dataDir, "adapters");
    const sc = await sidecarFor(dataDir);
    let stop = false;
    const results: { status: number; model: string | null; done: boolean }[] = [];
    const errors: string[] = [];
    const client = async (i: number) => {
      while (!stop) {
        try {
          const res = await fetch(`${sc.url}/v1/chat/completions`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ model: SERVED, messages: [{ role: "user", content: `Count to ${3 + (i % 3)}.` }], max_tokens: 12, stream: true }),
            signal: AbortSignal.timeout(60_000),
          });
          const text = await res.text();
          results.push({ status: res.status, model: /"model":"([^"]+)"/.exec(text)?.[1] ?? null, done: text.endsWith("data: [DONE]\n\n") });
        } catch (err) {
          errors.push((err as Error).message);
        }
      }
    };
    // Tiny adapters with the engine's own prediction: llama.cpp's noise must not reject them.
    // (Predicted before the load starts: ONNX Runtime and llama.cpp are not run at once in one process here.)
    const versions: { adapter: LoraAdapter; probe: Awaited<ReturnType<typeof probeFor>> }[] = [];
    for (let n = 1; n <= 20; n++) {
      const adapter = adapterOf(100 + n, 0.002);
      versions.push({ adapter, probe: await probeFor(adapter) });
    }
    const clients = [0, 1].map(client);
    const swapMs: number[] = [];
    try {
      for (let n = 1; n <= 20; n++) {
        const { adapter, probe } = versions[n - 1]!;
        const written = performance.now();
        writeVersion(adapters, n, { adapter, gguf, probe });
        const until = Date.now() + 60_000;
        while (sc.hotload!.status().live !== versionName(n)) {
          if (Date.now() > until) throw new Error(`v${n} did not go live: ${JSON.stringify(sc.hotload!.status())}`);
          await new Promise((r) => setTimeout(r, 20));
        }
        swapMs.push(performance.now() - written);
        await new Promise((r) => setTimeout(r, 100));
      }
      // Until a request has been answered by the last version (bounded by the clients' own timeouts).
      while (!results.some((r) => r.model === "clawloop-v000020") && !errors.length) await new Promise((r) => setTimeout(r, 50));
    } finally {
      stop = true;
      await Promise.all(clients);
    }
    await sc.hotload!.idle();
    const st = sc.hotload!.status();
    await sc.close();
    console.log(`20 swaps: ${results.length} requests, served by ${new Set(results.map((r) => r.model)).size} names; written → live ms: ${swapMs.map((x) => Math.round(x)).join(" ")}`);
    expect(errors).toEqual([]);
    expect(results.filter((r) => r.status !== 200 || !r.done)).toEqual([]);
    expect(st.swaps).toBe(19);
    // No false rejection: each tiny version passed the log-prob check within the noise allowance.
    expect(st.lastRejection).toBeNull();
    expect(st.lastCheck).toMatchObject({ version: "v000020", logprobs: { ok: true, discriminative: false } });
    expect(results.some((r) => r.model === "clawloop-v000020")).toBe(true);
    // The engine holds the live version and one for rollback; the rest were disposed.
    expect(server.engine.adapters().map((a) => a.name).sort()).toEqual(["clawloop-v000019", "clawloop-v000020"]);
  });
});
