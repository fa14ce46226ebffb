// npm run bench:train — the trainer engine's speed on this machine, measured side by side.
//
// 1. ONNX Runtime's matmul peak here: a chain of [512, 896] × [896, 4864] products with the weight
//    fed as an input in PyTorch layout ([out, in], transposed in the graph), exactly how the engine
//    feeds frozen weights.
// 2. For SmolLM2-135M (the real Q4_1 GGUF when cached, else random weights of its shape) and a
//    Qwen2.5-0.5B-shaped model (random weights: only the shape matters for speed) at 256, 512 and
//    2,048 tokens: score and train-step throughput, achieved GFLOP/s (useful work, see
//    trainer/engine/flops.ts), peak RSS, and the ratio to the matmul peak.
//
// Each configuration runs in its own process (so peak RSS is its own), and the matmul peak (mean
// throughput over ~1 s) is measured right before and after every timed run in that process; the
// ratio uses their mean, because on a shared 2-core machine the available compute drifts minute by
// minute.
//
// 3. Where PyTorch (with transformers and PEFT) is importable, the same LoRA step and score in
//    PyTorch (bench/train_torch.py), run right after ours for each configuration in its own
//    process, with the same threads, the same useful-FLOP count and per-layer recomputation where
//    ours used it. Python: $CLAWLOOP_BENCH_PYTHON, else .cache/pyvenv-torch/bin/python, else python3;
//    BENCH_TORCH=0 leaves PyTorch out.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Engine, type ModelConfig } from "../trainer/engine/index.js";
import { forwardFlops, trainFlops } from "../trainer/engine/flops.js";
import { BENCH_LORA as LORA, BENCH_MODELS as MODELS, benchStep, benchWeights, type BenchModel as ModelName } from "../trainer/engine/testing/bench-workload.js";
import { Graph, toOnnxModel } from "../trainer/engine/graph/index.js";
import { ort } from "../trainer/engine/runtime.js";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const LENGTHS = [256, 512, 2048];

interface ChildResult {
  model: string;
  weights: string;
  tokens: number;
  mode: string;
  threads: number;
  setupSec: number;
  firstStepSec: number;
  scoreSec: number;
  trainSec: number;
  scoreGflops: number;
  trainGflops: number;
  peakGflops: number;
  scoreRatio: number;
  trainRatio: number;
  maxRssMiB: number;
  /** What PyTorch needs to run the same step: the model's shape and the FLOP counts of the run. */
  config: ModelConfig;
  responseTokens: number;
  trainFlops: number;
  scoreFlops: number;
}

/** bench/train_torch.py's result line. */
interface TorchResult {
  torch: string;
  transformers: string;
  peft: string;
  attention: string | null;
  threads: number;
  checkpointing: boolean;
  setupSec: number;
  firstStepSec: number;
  scoreSec: number;
  trainSec: number;
  matmulPeakGflops: number;
  maxRssMiB: number;
}

// ---- matmul peak -------------------------------------------------------------------------------

async function matmulPeak(threads: number): Promise<() => Promise<number>> {
  const M = 512;
  const K = 896;
  const N = 4864;
  const g = new Graph("float32");
  const x = g.input("x", "float", [M, K]);
  const w1 = g.input("w1", "float", [N, K]);
  const w2 = g.input("w2", "float", [K, N]);
  let h = x;
  for (let i = 0; i < 4; i++) h = g.linear(g.linear(h, w1), w2);
  g.output(h, "y");
  const session = await ort.InferenceSession.create(toOnnxModel(g).bytes, { intraOpNumThreads: threads, graphOptimizationLevel: "all" });
  const rand = (n: number, s: number) => Float32Array.from({ length: n }, (_, i) => (((i * 2654435761) % 1000) / 1000 - 0.5) * s);
  const feeds = {
    x: new ort.Tensor("float32", rand(M * K, 1), [M, K]),
    w1: new ort.Tensor("float32", rand(N * K, 0.05), [N, K]),
    w2: new ort.Tensor("float32", rand(K * N, 0.02), [K, N]),
  };
  const flops = 4 * 2 * (2 * M * K * N);
  await session.run(feeds);
  // The mean over about a second: on a shared machine a single short run catches the quiet
  // moments that a multi-second training step averages over, which would flatter the peak.
  return async () => {
    let runs = 0;
    const start = performance.now();
    while (performance.now() - start < 1000 || runs < 2) {
      await session.run(feeds);
      runs++;
    }
    return (runs * flops) / ((performance.now() - start) / 1000) / 1e9;
  };
}

// ---- one configuration (child process) ---------------------------------------------------------

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function runChild(name: ModelName, T: number, reps: number): Promise<ChildResult> {
  const threads = Math.max(1, os.availableParallelism());
  const peak = await matmulPeak(threads);
  const { weights, label, close } = await benchWeights(name, ROOT);
  const config: ModelConfig = weights.config;
  let t = performance.now();
  const engine = await Engine.create({ model: { weights }, lora: { ...LORA, targets: [...LORA.targets] }, maxTokens: T, threads });
  await engine.warmUp();
  const setupSec = (performance.now() - t) / 1000;

  const { item, adapter, loss, responseTokens: R } = benchStep(engine, config.vocabSize, T);
  const shape = { batch: 1, tokens: T - 1, headRows: R, rank: LORA.rank, loraTargets: LORA.targets.length };

  t = performance.now();
  await engine.trainStep([item], adapter, loss);
  const firstStepSec = (performance.now() - t) / 1000;
  await engine.score([item], adapter);

  const scoreTimes: number[] = [];
  const trainTimes: number[] = [];
  const scoreRatios: number[] = [];
  const trainRatios: number[] = [];
  const peaks: number[] = [];
  for (let i = 0; i < reps; i++) {
    const p0 = await peak();
    t = performance.now();
    await engine.score([item], adapter);
    const s = (performance.now() - t) / 1000;
    const p1 = await peak();
    t = performance.now();
    await engine.trainStep([item], adapter, loss);
    const tr = (performance.now() - t) / 1000;
    const p2 = await peak();
    scoreTimes.push(s);
    trainTimes.push(tr);
    peaks.push(p0, p1, p2);
    scoreRatios.push(forwardFlops(config, shape) / s / 1e9 / ((p0 + p1) / 2));
    trainRatios.push(trainFlops(config, shape) / tr / 1e9 / ((p1 + p2) / 2));
  }
  engine.close();
  close?.();
  const scoreSec = median(scoreTimes);
  const trainSec = median(trainTimes);
  return {
    model: name,
    weights: label,
    tokens: T,
    mode: engine.mode,
    threads,
    setupSec,
    firstStepSec,
    scoreSec,
    trainSec,
    scoreGflops: forwardFlops(config, shape) / scoreSec / 1e9,
    trainGflops: trainFlops(config, shape) / trainSec / 1e9,
    peakGflops: median(peaks),
    scoreRatio: median(scoreRatios),
    trainRatio: median(trainRatios),
    maxRssMiB: process.resourceUsage().maxRSS / 1024,
    config,
    responseTokens: R,
    trainFlops: trainFlops(config, shape),
    scoreFlops: forwardFlops(config, shape),
  };
}

// ---- PyTorch side by side --------------------------------------------------------------------

const TORCH_SCRIPT = path.join(ROOT, "bench/train_torch.py");

/** The first Python that imports torch, transformers and peft, with torch's version; or why none does. */
function findTorchPython(): { python: string; version: string } | { missing: string } {
  const explicit = process.env.CLAWLOOP_BENCH_PYTHON;
  const candidates = explicit ? [explicit] : [path.join(ROOT, ".cache/pyvenv-torch/bin/python"), "python3"];
  for (const python of candidates) {
    const r = spawnSync(python, ["-c", "import torch, transformers, peft; print(torch.__version__)"], { encoding: "utf8" });
    if (r.status === 0) return { python, version: r.stdout.trim() };
  }
  return { missing: `no Python with torch, transformers and peft (tried ${candidates.join(", ")})` };
}

/** Our run's configuration in PyTorch, in its own process; the result or the reason it failed. */
function runTorch(python: string, r: ChildResult, reps: number): TorchResult | string {
  const args = [TORCH_SCRIPT, "--config", JSON.stringify(r.config), "--tokens", String(r.tokens), "--response", String(r.responseTokens)];
  args.push("--reps", String(reps), "--threads", String(r.threads), "--rank", String(LORA.rank), "--alpha", String(LORA.alpha));
  // Per-layer recomputation exactly where our engine used it.
  if (r.mode === "layered") args.push("--checkpointing");
  const child = spawnSync(python, ["-W", "ignore::FutureWarning", ...args], { encoding: "utf8", maxBuffer: 16 * 1024 * 1024 });
  const line = child.stdout.split("\n").find((l) => l.startsWith("RESULT "));
  if (!line) return `exit ${child.status ?? child.signal}: ${child.stderr.trim().split("\n").slice(-3).join(" | ")}`;
  return JSON.parse(line.slice(7)) as TorchResult;
}

// ---- orchestration ---------------------------------------------------------------------------

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r, k) => {
    const line = r.map((c, i) => (i < 3 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ");
    return k === 0 ? `${line}\n${widths.map((w) => "-".repeat(w)).join("  ")}` : line;
  }).join("\n");
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (args[0] === "--child") {
    const result = await runChild(args[1] as ModelName, Number(args[2]), Number(args[3] ?? 3));
    process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
    return;
  }
  const reps = Number(process.env.BENCH_REPS ?? 3);
  const only = process.env.BENCH_ONLY; // e.g. "SmolLM2-135M:512"
  const ortVersion = JSON.parse(fs.readFileSync(path.join(ROOT, "node_modules/onnxruntime-node/package.json"), "utf8")).version as string;
  console.log(`clawloop bench:train — onnxruntime-node ${ortVersion}, Node ${process.version}, ${os.cpus().length} × ${os.cpus()[0]?.model ?? "cpu"}`);
  console.log(`load average at start: ${os.loadavg().map((x) => x.toFixed(2)).join(" ")} (other work on this machine skews every number below)`);
  const peak = await matmulPeak(Math.max(1, os.availableParallelism()));
  const peaks = [await peak(), await peak(), await peak()];
  console.log(`ONNX Runtime fp32 matmul peak ([512,896]×[896,4864], weight as input): ${median(peaks).toFixed(0)} GFLOP/s (runs: ${peaks.map((p) => p.toFixed(0)).join(", ")})\n`);

  const torchPython = process.env.BENCH_TORCH === "0" ? null : findTorchPython();
  const torch = torchPython && "python" in torchPython ? torchPython : null;
  const torchResults = new Map<ChildResult, TorchResult>();
  const results: ChildResult[] = [];
  for (const model of MODELS) {
    for (const T of LENGTHS) {
      if (only && only !== `${model}:${T}`) continue;
      process.stderr.write(`running ${model} at ${T} tokens…\n`);
      const child = spawnSync(process.execPath, [fileURLToPath(import.meta.url), "--child", model, String(T), String(reps)], {
        encoding: "utf8",
        maxBuffer: 16 * 1024 * 1024,
      });
      const line = child.stdout.split("\n").find((l) => l.startsWith("RESULT "));
      if (!line) {
        console.log(`${model} at ${T} tokens failed (exit ${child.status}): ${child.stderr.trim().split("\n").slice(-3).join(" | ")}`);
        continue;
      }
      const ours = JSON.parse(line.slice(7)) as ChildResult;
      results.push(ours);
      if (torch) {
        process.stderr.write(`running ${model} at ${T} tokens in PyTorch…\n`);
        const t = runTorch(torch.python, ours, reps);
        if (typeof t === "string") console.log(`${model} at ${T} tokens failed in PyTorch (${t})`);
        else torchResults.set(ours, t);
      }
    }
  }

  const rows = [
    ["model", "weights", "mode", "tokens", "train s", "train tok/s", "train GFLOP/s", "train/peak", "score s", "score tok/s", "score GFLOP/s", "score/peak", "peak GFLOP/s", "peak RSS MiB", "setup s", "1st step s",
      ...(torch ? ["torch train tok/s", "ours/torch train", "torch score tok/s", "ours/torch score"] : [])],
    ...results.map((r) => [
      r.model,
      r.weights,
      r.mode,
      String(r.tokens),
      r.trainSec.toFixed(2),
      (r.tokens / r.trainSec).toFixed(0),
      r.trainGflops.toFixed(0),
      r.trainRatio.toFixed(2),
      r.scoreSec.toFixed(2),
      (r.tokens / r.scoreSec).toFixed(0),
      r.scoreGflops.toFixed(0),
      r.scoreRatio.toFixed(2),
      r.peakGflops.toFixed(0),
      r.maxRssMiB.toFixed(0),
      r.setupSec.toFixed(1),
      r.firstStepSec.toFixed(1),
      ...(torch ? torchColumns(r, torchResults.get(r)) : []),
    ]),
  ];
  console.log(table(rows));
  console.log(
    "\ntrain = one LoRA step (rank 16, all 7 projections) on one sequence: forward, loss, LoRA gradients. score = per-token log-probs." +
      "\nGFLOP/s count useful work (trainer/engine/flops.ts; per-layer recomputation is overhead, not counted). Ratios use the matmul peak" +
      "\nmeasured right before and after each timed run in the same process; medians of the repetitions. Target: train/peak ≥ 0.6 at 512 tokens.",
  );
  if (!torchPython) console.log("\nPyTorch left out (BENCH_TORCH=0).");
  else if ("missing" in torchPython) {
    console.log(
      `\nPyTorch is not installed here (${torchPython.missing}): no PyTorch columns. To add them:` +
        "\n  python3 -m venv .cache/pyvenv-torch && .cache/pyvenv-torch/bin/pip install torch transformers peft   (or set CLAWLOOP_BENCH_PYTHON)",
    );
  } else printTorchTable(results, torchResults, torchPython.version);
}

/** Our row's PyTorch columns: throughput and our speed over PyTorch's (> 1: ours is faster). */
function torchColumns(r: ChildResult, t: TorchResult | undefined): string[] {
  if (!t) return ["failed", "-", "failed", "-"];
  return [(r.tokens / t.trainSec).toFixed(0), (t.trainSec / r.trainSec).toFixed(2), (r.tokens / t.scoreSec).toFixed(0), (t.scoreSec / r.scoreSec).toFixed(2)];
}

function printTorchTable(results: ChildResult[], torchResults: Map<ChildResult, TorchResult>, version: string): void {
  const measured = results.filter((r) => torchResults.has(r));
  if (measured.length === 0) return;
  const first = torchResults.get(measured[0]!)!;
  console.log(`\nPyTorch ${version}, transformers ${first.transformers}, PEFT ${first.peft}, attention "${first.attention}", ${first.threads} threads — the same step (bench/train_torch.py):`);
  const rows = [
    ["model", "recompute", "tokens", "train s", "train tok/s", "train GFLOP/s", "train/torch peak", "score s", "score tok/s", "score GFLOP/s", "score/torch peak", "torch peak GFLOP/s", "peak RSS MiB", "setup s", "1st step s"],
    ...measured.map((r) => {
      const t = torchResults.get(r)!;
      const train = r.trainFlops / t.trainSec / 1e9;
      const score = r.scoreFlops / t.scoreSec / 1e9;
      return [
        r.model,
        t.checkpointing ? "per layer" : "none",
        String(r.tokens),
        t.trainSec.toFixed(2),
        (r.tokens / t.trainSec).toFixed(0),
        train.toFixed(0),
        (train / t.matmulPeakGflops).toFixed(2),
        t.scoreSec.toFixed(2),
        (r.tokens / t.scoreSec).toFixed(0),
        score.toFixed(0),
        (score / t.matmulPeakGflops).toFixed(2),
        t.matmulPeakGflops.toFixed(0),
        t.maxRssMiB.toFixed(0),
        t.setupSec.toFixed(1),
        t.firstStepSec.toFixed(1),
      ];
    }),
  ];
  console.log(table(rows));
  console.log(
    "PyTorch: LlamaForCausalLM / Qwen2ForCausalLM of the same shape (random fp32 weights) with PEFT LoRA (rank 16, alpha 32, the same" +
      "\n7 projections), the same sequence, response rows only at the LM head, the same clipped policy loss, backward to the LoRA" +
      "\nmatrices; score under torch.no_grad(). GFLOP/s use our FLOP count for the run; \"torch peak\" is PyTorch's own matmul peak on" +
      "\nthe same [512,896]×[896,4864] chain, measured before and after in its process. ours/torch > 1: our engine is faster.",
  );
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
