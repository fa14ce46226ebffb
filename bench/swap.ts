// bench:swap — how long a new adapter version takes to serve, per driver, in one run.
//
// For each server, a hot-loading sidecar runs in this process in front of it while two clients
// stream chat calls for the base model without pause. Versions are written one at a time the way
// the trainer writes them (files, manifest with hashes, probe.json; renamed into place), and the
// bench records, per version:
//   written → live          the rename until the switchboard switched (watch, hashes, load, probe,
//                           log-prob check where the server can score)
//   written → first served  the rename until a client call answered by that version completed
// and every failed call. The embedded engine is real (llama.cpp through node-llama-cpp, SmolLM2-135M
// Q4_1, rank-16 adapters on all seven projections); vLLM, SGLang and Ollama are the scripted servers
// of fixtures/servers (their LoRA APIs, no weights: a load there costs only the HTTP exchange), so
// their rows measure clawloop's own overhead, not those servers' load times. Scripted rows are
// labelled so.
//
// The probe.json of each version predicts no shift (base = version log-probs, read from the server
// before the run; on the embedded engine the probe is a chat prompt and the model's own reply, as
// the trainer's are) and the adapters are tiny (B = 1e-4), so the check passes (within llama.cpp's
// noise) and runs its full path: two scoring calls on servers that can score, the probe on all.
//
//   npm run build && npm run bench:swap          (10 versions per server)
//   node dist/bench/swap.js --versions 3         (a smoke run)
//   node dist/bench/swap.js --model PATH.gguf    (another GGUF for the embedded row)
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { createLoraAdapter, readGguf, VllmDriver, writeGgufLora, writePeftAdapter, type LoraAdapter, type LoraTarget } from "../adapters/index.js";
import { loadConfig, silentLogger, type Config } from "../core/index.js";
import { startLoraServer, type LoraServerKind } from "../fixtures/servers/lora.js";
import { ensureModel, startServer, type RunningServer } from "../serve/index.js";
import { startHotloadingSidecar, type HotloadSidecarHandle } from "../sidecar/index.js";
// The version writer alone (not trainer/index, which would load ONNX Runtime beside llama.cpp).
import { versionName, writeAdapterDir } from "../trainer/versions.js";

const { values: args } = parseArgs({
  options: {
    versions: { type: "string", default: "10" },
    model: { type: "string" },
    clients: { type: "string", default: "2" },
  },
});
const VERSIONS = Number(args.versions);
const CLIENTS = Number(args.clients);
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const TARGETS: LoraTarget[] = ["q", "k", "v", "o", "gate", "up", "down"];

interface Shape {
  adapter: (seed: number) => LoraAdapter;
  gguf: { architecture: string; numHeads: number; numKvHeads: number } | null;
}

interface Row {
  driver: string;
  server: "real" | "scripted";
  live: number[];
  served: number[];
  requests: number;
  failed: number;
  note: string;
}

/** Writes a version through the trainer's own writer (temporary directory, hashes, fsync, rename). */
async function writeVersion(dir: string, n: number, shape: Shape, probe: object | null): Promise<void> {
  const name = versionName(n);
  const adapter = shape.adapter(n);
  const c = adapter.config;
  await writeAdapterDir(
    path.join(dir, name),
    { version: n, name },
    {
      parent: n > 1 ? versionName(n - 1) : null,
      baseModel: c.baseModel,
      baseModelHash: "bench",
      step: n,
      sampleCount: 1,
      sampleIds: [],
      rank: c.rank,
      alpha: c.alpha,
      targetModules: c.targets.map((t) => `${t}_proj`),
    },
    (tmp) => {
      writePeftAdapter(tmp, adapter);
      if (shape.gguf) writeGgufLora(path.join(tmp, "adapter.gguf"), adapter, shape.gguf, { dtype: "F16" });
      if (probe) fs.writeFileSync(path.join(tmp, "probe.json"), JSON.stringify(probe));
    },
  );
}

function tinyAdapter(config: Omit<LoraAdapter["config"], "rank" | "alpha" | "targets">, seed: number): LoraAdapter {
  const a = createLoraAdapter({ ...config, rank: 16, alpha: 32, targets: TARGETS }, seed);
  for (const b of a.b.values()) for (let i = 0; i < b.length; i++) b[i] = 1e-4 * Math.sin(seed + i);
  return a;
}

async function run(label: string, server: "real" | "scripted", upstreamUrl: string, kind: Config["sidecar"]["upstreamKind"], baseModel: string, shape: Shape, probe: object | null, note: string): Promise<Row> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "clawloop-bench-swap-"));
  const config = loadConfig({
    flags: { dataDir, logLevel: "silent", sidecar: { upstream: upstreamUrl, port: 0, upstreamKind: kind }, adapters: { retrySec: 1, baseModel } },
    env: {},
  });
  const sc: HotloadSidecarHandle = await startHotloadingSidecar(config, { logger: silentLogger });
  const board = sc.hotload!;
  const adaptersDir = path.join(dataDir, "adapters");
  const done: { model: string | null; at: number }[] = [];
  let failed = 0;
  let stop = false;
  const client = async () => {
    while (!stop) {
      try {
        const res = await fetch(`${sc.url}/v1/chat/completions`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ model: baseModel, messages: [{ role: "user", content: "Count to five." }], max_tokens: 8, stream: true }),
          signal: AbortSignal.timeout(120_000),
        });
        const text = await res.text();
        if (res.status !== 200 || !text.endsWith("data: [DONE]\n\n")) failed++;
        done.push({ model: /"model":"([^"]+)"/.exec(text)?.[1] ?? null, at: performance.now() });
      } catch {
        failed++;
      }
    }
  };
  const clients = Array.from({ length: CLIENTS }, client);
  const live: number[] = [];
  const served: number[] = [];
  try {
    for (let n = 1; n <= VERSIONS; n++) {
      let liveAt = 0;
      const off = board.onSwap((v) => {
        if (v === versionName(n)) liveAt = performance.now();
      });
      const t0 = performance.now();
      await writeVersion(adaptersDir, n, shape, probe);
      const deadline = Date.now() + 120_000;
      while (!liveAt) {
        if (Date.now() > deadline) throw new Error(`${label}: ${versionName(n)} did not go live: ${JSON.stringify(board.status())}`);
        await new Promise((r) => setTimeout(r, 2));
      }
      off();
      const slot = board.status().loaded.find((s) => s.version === versionName(n))!;
      // The name a response carries: the request model the switchboard rewrote to.
      const names = new Set([slot.servedName, `${baseModel}:${slot.servedName}`]);
      let first: number | null = null;
      while (first === null) {
        const hit = done.find((d) => d.at > liveAt && d.model !== null && names.has(d.model));
        if (hit) first = hit.at;
        else if (Date.now() > deadline) throw new Error(`${label}: no call was served by ${versionName(n)}`);
        else await new Promise((r) => setTimeout(r, 2));
      }
      live.push(liveAt - t0);
      served.push(first - t0);
    }
  } finally {
    stop = true;
    await Promise.all(clients);
    await sc.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
  return { driver: label, server, live, served, requests: done.length, failed, note };
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

function modelPath(): Promise<string> {
  if (args.model) return Promise.resolve(path.resolve(args.model));
  if (process.env.CLAWLOOP_TEST_MODEL) return Promise.resolve(process.env.CLAWLOOP_TEST_MODEL);
  const cached = path.join(ROOT, ".cache", "models", "SmolLM2-135M-Instruct.Q4_1.gguf");
  if (fs.existsSync(cached)) return Promise.resolve(cached);
  return ensureModel("smollm2", { dataDir: path.join(os.homedir(), ".clawloop"), logger: silentLogger });
}

async function main(): Promise<void> {
  const rows: Row[] = [];
  const promptIds = [1, 9690, 28, 30, 2096];
  const responseIds = [19556, 28, 253, 1500, 2];

  // The embedded engine: real llama.cpp. Adapter shapes from the GGUF's metadata (llama family).
  const gguf = await modelPath();
  const md = readGguf(gguf).metadata;
  const arch = String(md.get("general.architecture"));
  const num = (key: string) => Number(md.get(`${arch}.${key}`));
  const hidden = num("embedding_length");
  const heads = num("attention.head_count");
  const kvHeads = num("attention.head_count_kv") || heads;
  const ffn = num("feed_forward_length");
  const kv = (hidden / heads) * kvHeads;
  const dims: Record<LoraTarget, { in: number; out: number }> = {
    q: { in: hidden, out: hidden },
    k: { in: hidden, out: kv },
    v: { in: hidden, out: kv },
    o: { in: hidden, out: hidden },
    gate: { in: hidden, out: ffn },
    up: { in: hidden, out: ffn },
    down: { in: ffn, out: hidden },
  };
  const embeddedShape: Shape = {
    adapter: (seed) => tinyAdapter({ numLayers: num("block_count"), dims, baseModel: path.basename(gguf) }, seed),
    gguf: { architecture: arch, numHeads: heads, numKvHeads: kvHeads },
  };
  const engine: RunningServer = await startServer({ model: gguf, port: 0, contextSize: 512, parallel: 2, servedModelName: "smol" });
  try {
    // A probe like the trainer's: a chat prompt and the model's own reply (its token ids).
    const res = await fetch(`${engine.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "smol", messages: [{ role: "user", content: "Say hello to the team in one short sentence." }], max_tokens: 24, temperature: 0, return_token_ids: true }),
    });
    const answer = (await res.json()) as { prompt_token_ids: number[]; choices: { token_ids: number[] }[] };
    const [p, r] = [answer.prompt_token_ids, answer.choices[0]!.token_ids];
    const baseLp = await new VllmDriver({ url: engine.url }, "clawloop").score("smol", p, r);
    rows.push(await run("embedded (llama.cpp)", "real", engine.url, "clawloop", "smol", embeddedShape, { format: 1, promptIds: p, responseIds: r, base: baseLp, version: baseLp }, "context per adapter"));
  } finally {
    await engine.close();
  }

  // The scripted servers: their LoRA APIs, no weights.
  const scriptedShape: Shape = {
    adapter: (seed) => tinyAdapter({ numLayers: 2, dims: Object.fromEntries(TARGETS.map((t) => [t, { in: 64, out: 64 }])), baseModel: "scripted-model" }, seed),
    gguf: { architecture: "llama", numHeads: 4, numKvHeads: 4 },
  };
  const { tokenLogprob } = await import("../fixtures/upstream/index.js");
  const scriptedProbe = { format: 1, promptIds, responseIds, base: responseIds.map(tokenLogprob), version: responseIds.map(tokenLogprob) };
  for (const [kind, base, probe] of [
    ["vllm", "base-m", scriptedProbe],
    ["sglang", "base-s", scriptedProbe],
    ["ollama", "base-o:latest", null],
  ] as [LoraServerKind, string, object | null][]) {
    const server = await startLoraServer({ kind, model: base, tokensPerSecond: 400, logLimit: 100 });
    try {
      rows.push(await run(kind, "scripted", `${server.url}/v1`, kind, base, scriptedShape, probe, kind === "ollama" ? "model per version; probe only" : "load over HTTP, no weights"));
    } finally {
      await server.close();
    }
  }

  const ref = pct(rows[0]!.live, 50);
  const table = [["driver", "server", "versions", "written→live p50", "p90", "written→first served p50", "p90", "live p50 ÷ embedded", "calls", "failed", "note"]];
  for (const r of rows) {
    table.push([
      r.driver,
      r.server === "real" ? "real" : "SCRIPTED",
      String(r.live.length),
      `${pct(r.live, 50).toFixed(0)} ms`,
      `${pct(r.live, 90).toFixed(0)} ms`,
      `${pct(r.served, 50).toFixed(0)} ms`,
      `${pct(r.served, 90).toFixed(0)} ms`,
      (pct(r.live, 50) / ref).toFixed(3),
      String(r.requests),
      String(r.failed),
      r.note,
    ]);
  }
  const widths = table[0]!.map((_, i) => Math.max(...table.map((row) => row[i]!.length)));
  process.stdout.write(`bench:swap — ${VERSIONS} versions per server, ${CLIENTS} clients streaming without pause, ${os.cpus().length} CPUs\n\n`);
  for (const row of table) process.stdout.write(row.map((cell, i) => cell.padEnd(widths[i]!)).join("  ").trimEnd() + "\n");
  process.stdout.write("\nSCRIPTED rows: fixtures/servers speak those servers' LoRA APIs without weights; they time clawloop's side of a swap only.\n");
  if (rows.some((r) => r.failed > 0)) process.exitCode = 1;
}

await main();
