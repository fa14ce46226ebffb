// Where a train step's (or score pass's) time goes, from ONNX Runtime's own profiler.
//
//   node dist/trainer/engine/tools/profile-step.js [smollm2|qwen05b] [tokens=512] [train|score] [steps=3] [--mode whole|layered] [--keep DIR] [--time-only]
//
// Runs one warm-up step and `steps` profiled steps of the same shape as bench:train (one sequence,
// a 3/4 prompt and a 1/4 response, LoRA rank 16 on all seven projections), then sums ONNX Runtime's
// kernel times per op type and per node over the profiled steps and prints: the wall time per step,
// the time inside ORT runs, the time inside kernels, and the top op types and nodes. Matrix
// products are also given their achieved GFLOP/s from the shapes the profiler records. Run it under
// `flock /tmp/clawloop-bench.lock` like every measurement on a shared machine.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Engine, type ModelConfig } from "../index.js";
import { forwardFlops, trainFlops } from "../flops.js";
import { BENCH_LORA, benchStep, benchWeights } from "../testing/bench-workload.js";

interface TraceEvent {
  cat: string;
  name: string;
  ts: number;
  dur: number;
  args?: { op_name?: string; input_type_shape?: Record<string, number[]>[]; output_type_shape?: Record<string, number[]>[] };
}

function parseArgs(argv: string[]) {
  const pos = argv.filter((a, i) => !a.startsWith("--") && !(argv[i - 1] ?? "").startsWith("--"));
  const flag = (name: string) => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  return {
    model: (pos[0] ?? "smollm2") as "smollm2" | "qwen05b",
    tokens: Number(pos[1] ?? 512),
    kind: (pos[2] ?? "train") as "train" | "score",
    steps: Number(pos[3] ?? 3),
    mode: flag("mode") as "whole" | "layered" | undefined,
    keep: flag("keep"),
    /** Wall time per step only, without the profiler (its per-node bookkeeping costs a few %). */
    timeOnly: argv.includes("--time-only"),
  };
}

/**
 * 2·M·N·K of a MatMul/Gemm/FusedMatMul from the shapes the profiler records: out is [.., M, N] and
 * K is the dim of a's last two that is not M (a transposed a puts K first; if M = K either is right).
 */
function matmulFlops(e: TraceEvent): number | null {
  const a = e.args?.input_type_shape?.map((s) => Object.values(s)[0]!)[0];
  const out = e.args?.output_type_shape?.map((s) => Object.values(s)[0]!)[0];
  if (!a || !out || a.length < 2 || out.length < 2) return null;
  const M = out[out.length - 2]!;
  const K = a[a.length - 2] === M ? a[a.length - 1]! : a[a.length - 2]!;
  return 2 * out.reduce((x, y) => x * y, 1) * K;
}

const listMs = (walls: number[]) => walls.map((w) => w.toFixed(0)).join(" ");

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const dir = args.keep ?? fs.mkdtempSync(path.join(os.tmpdir(), "clawloop-profile-"));
  fs.mkdirSync(dir, { recursive: true });
  // Relative to the working directory, as run from the repository (`.cache/models`).
  const { weights, close } = await benchWeights(args.model === "qwen05b" ? "Qwen2.5-0.5B-shape" : "SmolLM2-135M", process.cwd());
  const config: ModelConfig = weights.config;
  const T = args.tokens;
  const engine = await Engine.create({
    model: { weights },
    lora: { ...BENCH_LORA, targets: [...BENCH_LORA.targets] },
    maxTokens: T,
    ...(args.mode ? { mode: args.mode } : {}),
    ...(args.timeOnly ? {} : { profileFilePrefix: path.join(dir, "ort") }),
  });
  const { item, adapter, loss, responseTokens: R } = benchStep(engine, config.vocabSize, T);
  const step = () => (args.kind === "train" ? engine.trainStep([item], adapter, loss) : engine.score([item], adapter));

  await step(); // warm-up: excluded below by skipping each session's first run
  const walls: number[] = [];
  for (let i = 0; i < args.steps; i++) {
    const t = performance.now();
    await step();
    walls.push(performance.now() - t);
  }
  engine.runtime.endProfiling();
  engine.close();
  close?.();
  if (args.timeOnly) {
    const sorted = [...walls].sort((a, b) => a - b);
    const med = sorted[Math.floor(sorted.length / 2)]!;
    console.log(`${args.model} ${args.kind} @ ${T}: median ${med.toFixed(0)} ms per step (min ${sorted[0]!.toFixed(0)}; ${listMs(walls)}), load ${os.loadavg()[0]!.toFixed(2)}`);
    fs.rmSync(dir, { recursive: true, force: true });
    return;
  }

  const shape = { batch: 1, tokens: T - 1, headRows: R, rank: BENCH_LORA.rank, loraTargets: BENCH_LORA.targets.length };
  const flops = args.kind === "train" ? trainFlops(config, shape) : forwardFlops(config, shape);
  const files = fs.readdirSync(dir).filter((f) => f.startsWith("ort") && f.endsWith(".json"));
  const byOp = new Map<string, { us: number; n: number; flops: number }>();
  const byNode = new Map<string, { op: string; us: number; flops: number; shapes: string }>();
  let runUs = 0;
  let kernelUs = 0;
  for (const f of files) {
    const events = JSON.parse(fs.readFileSync(path.join(dir, f), "utf8")) as TraceEvent[];
    const runs = events.filter((e) => e.cat === "Session" && e.name === "model_run").sort((a, b) => a.ts - b.ts);
    if (runs.length < 2) continue;
    const from = runs[1]!.ts; // skip the warm-up run
    for (const r of runs.slice(1)) runUs += r.dur;
    for (const e of events) {
      if (e.cat !== "Node" || !e.name.endsWith("_kernel_time") || e.ts < from) continue;
      const op = e.args?.op_name ?? "?";
      const node = e.name.slice(0, -"_kernel_time".length);
      const mf = /MatMul|Gemm/.test(op) ? (matmulFlops(e) ?? 0) : 0;
      kernelUs += e.dur;
      const o = byOp.get(op) ?? { us: 0, n: 0, flops: 0 };
      o.us += e.dur;
      o.n++;
      o.flops += mf;
      byOp.set(op, o);
      const key = `${path.basename(f).split("_")[0]}:${node}`;
      const shapes = (e.args?.input_type_shape ?? []).map((s) => `[${Object.values(s)[0]}]`).join("×");
      const nd = byNode.get(key) ?? { op, us: 0, flops: 0, shapes };
      nd.us += e.dur;
      nd.flops += mf;
      byNode.set(key, nd);
    }
  }
  const steps = args.steps;
  const wall = walls.reduce((a, b) => a + b, 0) / steps;
  console.log(`${args.model} ${args.kind} @ ${T} tokens, mode ${engine.mode}, ${steps} profiled steps, load ${os.loadavg()[0]!.toFixed(2)}`);
  console.log(`wall per step ${wall.toFixed(0)} ms (useful ${(flops / 1e9).toFixed(1)} GFLOP → ${(flops / wall / 1e6).toFixed(0)} GFLOP/s)`);
  console.log(`inside ORT runs ${(runUs / steps / 1000).toFixed(0)} ms, inside kernels ${(kernelUs / steps / 1000).toFixed(0)} ms (JS + feeds/fetches: ${(wall - runUs / steps / 1000).toFixed(0)} ms; ORT between kernels: ${((runUs - kernelUs) / steps / 1000).toFixed(0)} ms)\n`);
  const pct = (us: number) => ((100 * us) / kernelUs).toFixed(1).padStart(5);
  console.log("op type                    ms/step   %kern   nodes   GFLOP/s");
  for (const [op, o] of [...byOp].sort((a, b) => b[1].us - a[1].us).slice(0, 25)) {
    const gf = o.flops ? (o.flops / o.us / 1e3).toFixed(0) : "";
    console.log(`${op.padEnd(24)} ${(o.us / steps / 1000).toFixed(1).padStart(9)}  ${pct(o.us)}  ${String(o.n / steps).padStart(6)}  ${gf.padStart(8)}`);
  }
  // Nodes repeat per layer; group them by op and input shapes to see which kind of node costs.
  const byKind = new Map<string, { us: number; n: number; flops: number }>();
  for (const nd of byNode.values()) {
    const k = `${nd.op} ${nd.shapes}`;
    const o = byKind.get(k) ?? { us: 0, n: 0, flops: 0 };
    o.us += nd.us;
    o.n++;
    o.flops += nd.flops;
    byKind.set(k, o);
  }
  console.log("\nnode kind (op, input shapes)                                              ms/step   %kern  nodes  GFLOP/s");
  for (const [k, o] of [...byKind].sort((a, b) => b[1].us - a[1].us).slice(0, 40)) {
    const gf = o.flops ? (o.flops / o.us / 1e3).toFixed(0) : "";
    console.log(`${k.slice(0, 72).padEnd(72)} ${(o.us / steps / 1000).toFixed(1).padStart(9)}  ${pct(o.us)}  ${String(o.n).padStart(5)}  ${gf.padStart(7)}`);
  }
  if (!args.keep) fs.rmSync(dir, { recursive: true, force: true });
  else console.log(`\ntraces in ${dir}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
