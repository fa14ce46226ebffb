// bench:learn — the demo's loop for each persona in each mode, side by side: held-out
// satisfaction before training and after 16, 32 and 64 interactions, the interactions it took to
// first reach 80%, the time spent training, and the held-out perplexity change of a neutral text.
//
// Every run is a real `clawloop demo` run (its own data directory, the four loops on the embedded
// engine with SmolLM2-135M-Instruct, the simulated user through the sidecar), one after the other.
// Satisfaction comes from a few samples per held-out question: its binomial standard error is
// printed with it, and differences smaller than about two of them are noise.
//
//   npm run build && npm run bench:learn                        (every persona × rl, opd, combined × 64)
//   node dist/bench/learn.js --personas concise --modes combined --interactions 64
//   node dist/bench/learn.js --eval-every 1 --json               (measure every version; default: every other)
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import type { TrainMode } from "../core/index.js";
import { demoModelPath, loopsStarter, newRunId } from "../cli/commands/demo.js";
import { packageRoot } from "../cli/shared.js";
import { createPrinter, listPersonas, loadPersona, rateAfter, runDemo, table, TARGET_RATE, type DemoSummary } from "../demo/index.js";

const { values: args } = parseArgs({
  options: {
    personas: { type: "string" },
    modes: { type: "string", default: "rl,opd,combined" },
    interactions: { type: "string", default: "64" },
    "eval-every": { type: "string", default: "2" },
    seed: { type: "string", default: "1" },
    model: { type: "string", default: "smollm2" },
    /** Where the runs' data goes (default: a new folder under the system's temp dir). */
    data: { type: "string" },
    /** Print every interaction of every run (default: one line per run). */
    verbose: { type: "boolean", default: false },
    json: { type: "boolean", default: false },
    /** Let the simulated user run ahead of the trainer (then results depend on this machine's speed). */
    "no-lockstep": { type: "boolean", default: false },
  },
});

const personas = (args.personas ?? listPersonas().join(",")).split(",").filter(Boolean);
const modes = args.modes!.split(",").filter(Boolean) as TrainMode[];
for (const m of modes) if (!["rl", "opd", "combined"].includes(m)) throw new Error(`--modes: ${m} is not rl, opd or combined`);
const interactions = Number(args.interactions);
const checkpoints = [16, 32, 64].filter((n) => n <= interactions);
if (!checkpoints.includes(interactions)) checkpoints.push(interactions);
const root = path.resolve(args.data ?? fs.mkdtempSync(path.join(os.tmpdir(), "clawloop-bench-learn-")));
const model = await demoModelPath(args.model!, process.env.CLAWLOOP_HOME ?? path.join(os.homedir(), ".clawloop"));
// The trainer child runs the compiled CLI (this script is not the CLI).
const cliCommand = [process.execPath, path.join(packageRoot(), "bin", "clawloop.js")];
const quiet = createPrinter(process.stderr);
const silent = { ...quiet, interaction() {}, judgment() {}, step() {}, swap() {} };

process.stderr.write(`bench:learn — ${personas.join(", ")} × ${modes.join(", ")} × ${interactions} interactions; runs in ${root}\n`);
const results: { persona: string; mode: TrainMode; summary: DemoSummary; wallMs: number }[] = [];
for (const name of personas) {
  const persona = loadPersona(name);
  for (const mode of modes) {
    const runId = newRunId(persona.name, mode);
    const t0 = Date.now();
    process.stderr.write(`\n▶ ${persona.name} · ${mode}\n`);
    const { summary } = await runDemo({
      persona,
      mode,
      interactions,
      runDir: path.join(root, "runs", runId),
      runId,
      seed: Number(args.seed),
      evalEvery: Number(args["eval-every"]),
      lockstep: !args["no-lockstep"],
      settings: { serve: { model } },
      startLoops: loopsStarter({ cliCommand }),
      printer: args.verbose ? quiet : silent,
    });
    results.push({ persona: persona.name, mode, summary, wallMs: Date.now() - t0 });
    const last = summary.satisfaction.at(-1)!;
    process.stderr.write(`  ${pct(summary.satisfaction[0]!.rate)} → ${pct(last.rate)} (${last.version ?? "base"}), ${summary.training.steps} steps, ${((Date.now() - t0) / 60000).toFixed(1)} min\n`);
  }
}

function pct(x: number): string {
  return `${Math.round(x * 100)}%`;
}
function cell(s: DemoSummary, n: number): string {
  const p = rateAfter(s.satisfaction, n);
  return p ? `${pct(p.rate)}±${Math.round(p.stderr * 100)}` : "—";
}

const header = ["persona", "mode", "base", ...checkpoints.map((n) => `after ${n}`), `first ≥${pct(TARGET_RATE)}`, "steps", "train s", "run min", "perplexity"];
const rows = results.map(({ persona, mode, summary: s, wallMs }) => [
  persona,
  mode,
  `${pct(s.satisfaction[0]!.rate)}±${Math.round(s.satisfaction[0]!.stderr * 100)}`,
  ...checkpoints.map((n) => cell(s, n)),
  s.reached.afterInteractions === null ? "not reached" : `${s.reached.afterInteractions} (${s.reached.version ?? "base"})`,
  String(s.training.steps),
  (s.training.trainMs / 1000).toFixed(0),
  (wallMs / 60000).toFixed(1),
  s.perplexityChange === null ? "—" : `${s.perplexityChange >= 0 ? "+" : "−"}${Math.abs(s.perplexityChange * 100).toFixed(1)}%`,
]);
process.stdout.write("\n" + table(header, rows) + "\n\n");
process.stdout.write(
  `satisfaction: share of held-out replies meeting the preference (questions × samples per version), ±: binomial standard error in points;\n` +
    `"after N": the newest version written by then; perplexity: neutral text, last version vs base. Runs: ${root}\n`,
);
if (args.json) process.stdout.write(JSON.stringify(results.map((r) => ({ ...r.summary, wallMs: r.wallMs })), null, 2) + "\n");
