// bench:judge — every judge method against the embedded engine serving SmolLM2-135M-Instruct, side
// by side in one run, on the same cases.
//
// The embedded engine (`serve/`) runs in this process on a free port; each method judges the same
// sample of the labeled set (`fixtures/judge-cases/cases.jsonl`), and the table shows accuracy,
// precision/recall per label, hint precision/recall and the cost per judgment. The rows
// "rules → prm" and "rules → logprob" are what `judge.rulesFirst` does: the rules' verdict where
// they have one, else the model's; they are computed from the same runs (the rules are
// deterministic), so they cost no extra model calls. Rules also run on the whole set.
//
// A 135M model is a weak judge: expect it near chance, and expect the rules to beat it wherever a
// rule applies. The numbers are what they are.
//
//   npm run build && npm run bench:judge                 (default sample of 40 cases)
//   node dist/bench/judge.js --sample all --json        (every case; slow on 2 cores)
//   node dist/bench/judge.js --model path/to/model.gguf --max-tokens 256
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { loadConfig, type ConfigOverrides, type Reward } from "../core/index.js";
import {
  createJudge,
  evaluate,
  inputFromCase,
  loadCases,
  RulesJudge,
  summarize,
  type CaseResult,
  type EvalReport,
  type JudgeCase,
} from "../judges/index.js";
import { ensureModel, startServer } from "../serve/index.js";
import { packageRoot } from "../cli/shared.js";

const ROOT = packageRoot();

const { values: args } = parseArgs({
  options: {
    cases: { type: "string", default: path.join(ROOT, "fixtures/judge-cases/cases.jsonl") },
    sample: { type: "string", default: "40" },
    /** Cases for the exact (prompt log-prob) log-prob scoring, which is slow on the embedded engine. */
    "continuation-sample": { type: "string", default: "8" },
    model: { type: "string" },
    "max-tokens": { type: "string", default: "256" },
    votes: { type: "string", default: "3" },
    "ctx-size": { type: "string", default: "4096" },
    json: { type: "boolean", default: false },
    /** Also write the full reports (every case's votes and raw answers) to this file. */
    out: { type: "string" },
  },
});

/** Every k-th case, so each category of the (category-ordered) file is represented. */
function spread(cases: JudgeCase[], n: number): JudgeCase[] {
  if (n >= cases.length) return cases;
  return Array.from({ length: n }, (_, i) => cases[Math.floor((i * cases.length) / n)]!);
}

async function modelPath(): Promise<string> {
  if (args.model) return args.model === "smollm2" ? ensureModel("smollm2", { dataDir: dataDir() }) : path.resolve(args.model);
  if (process.env.CLAWLOOP_TEST_MODEL && fs.existsSync(process.env.CLAWLOOP_TEST_MODEL)) return process.env.CLAWLOOP_TEST_MODEL;
  const cached = path.join(ROOT, ".cache/models/SmolLM2-135M-Instruct.Q4_1.gguf");
  if (fs.existsSync(cached)) return cached;
  return ensureModel("smollm2", { dataDir: dataDir() });
}

function dataDir(): string {
  return process.env.CLAWLOOP_HOME || path.join(os.homedir(), ".clawloop");
}

interface Row {
  name: string;
  report: EvalReport;
}

function log(msg: string): void {
  if (!args.json) process.stderr.write(msg + "\n");
}

/** `rules → model`: the rule's verdict where one applies, else the model's (as `rulesFirst` does). */
function composed(name: string, rules: (Reward | null)[], ruleHints: (string | null)[], model: CaseResult[]): Row {
  const results = model.map((m, i): CaseResult => {
    const r = rules[i];
    return r === null || r === undefined
      ? m
      : { ...m, predicted: r, hint: ruleHints[i] ?? null, method: "rules", judgeModel: null, votes: [], costTokens: 0, costMs: 0, raw: [], error: null };
  });
  return { name, report: summarize(name, results, results.reduce((n, r) => n + r.costMs, 0)) };
}

const pct = (x: number | null) => (x === null ? "  n/a" : `${(100 * x).toFixed(0).padStart(4)}%`);

function table(rows: Row[], prmMs: number): string {
  const head = [
    "method".padEnd(26),
    "cases",
    "  acc",
    " +1 P/R    ",
    " -1 P/R    ",
    "  0 P/R    ",
    "hint P/R   ",
    "tokens",
    "  ms mean",
    "   ms p50",
    "× PRM ms",
    "valid votes",
    "failed",
  ].join(" │ ");
  const line = "─".repeat(head.length);
  const body = rows.map(({ name, report: r }) =>
    [
      name.padEnd(26),
      String(r.cases).padStart(5),
      pct(r.accuracy),
      `${pct(r.perLabel["1"].precision)}/${pct(r.perLabel["1"].recall)}`,
      `${pct(r.perLabel["-1"].precision)}/${pct(r.perLabel["-1"].recall)}`,
      `${pct(r.perLabel["0"].precision)}/${pct(r.perLabel["0"].recall)}`,
      `${pct(r.hint.precision)}/${pct(r.hint.recall)}`,
      r.cost.meanTokens.toFixed(0).padStart(6),
      r.cost.meanMs.toFixed(1).padStart(9),
      r.cost.p50Ms.toFixed(1).padStart(9),
      (prmMs > 0 ? (r.cost.meanMs / prmMs).toFixed(3) : "n/a").padStart(8),
      (r.votes.cast ? `${r.votes.valid}/${r.votes.cast}` : "").padStart(11),
      String(r.failed).padStart(6),
    ].join(" │ "),
  );
  return [line, head, line, ...body, line].join("\n");
}

async function main(): Promise<void> {
  const all = loadCases(path.resolve(args.cases!));
  const sample = args.sample === "all" ? all : spread(all, Number(args.sample));
  const contSample = spread(sample, Math.min(sample.length, Number(args["continuation-sample"])));
  const model = await modelPath();
  log(`model ${model}; ${sample.length} of ${all.length} cases (${contSample.length} for exact log-prob scoring)`);
  let server = await startServer({ model, contextSize: Number(args["ctx-size"]), parallel: 2 });
  let endpoint = server.url;
  const rows: Row[] = [];
  try {
    type JudgeSettings = NonNullable<ConfigOverrides["judge"]>;
    const config = (judge: JudgeSettings) =>
      loadConfig({
        env: {},
        flags: {
          dataDir: fs.mkdtempSync(path.join(os.tmpdir(), "bench-judge-")),
          judge: { endpoint, maxTokens: Number(args["max-tokens"]), votes: Number(args.votes), timeoutMs: 600_000, retries: 1, ...judge },
        },
      });
    const rules = new RulesJudge();
    const ruleVerdicts = sample.map((c) => rules.judge(inputFromCase(c)));
    const progress = (name: string) => (_r: CaseResult, done: number, total: number) => {
      if (done % 5 === 0 || done === total) log(`  ${name}: ${done}/${total}`);
    };
    const run = async (name: string, cases: JudgeCase[], judge: JudgeSettings): Promise<Row> => {
      log(`${name} …`);
      const report = await evaluate(createJudge(config(judge), { rulesFirst: false }), cases, { concurrency: 2, onResult: progress(name) });
      return { name, report };
    };

    rows.push({ name: "rules (whole set)", report: await evaluate(createJudge(config({ method: "rules" })), all) });
    rows.push(await run("rules", sample, { method: "rules" }));
    const prm = await run("prm", sample, { method: "prm" });
    rows.push(prm);
    const next = await run("logprob next-token", sample, { method: "logprob", logprobScoring: "next-token" });
    rows.push(next);
    // Concurrent prompt-log-prob requests crash the embedded engine (heap corruption, reported), so
    // the exact scoring runs against a second engine instance that serves one request at a time.
    await server.close();
    server = await startServer({ model, contextSize: Number(args["ctx-size"]), parallel: 1 });
    endpoint = server.url;
    rows.push(await run("logprob continuation", contSample, { method: "logprob", logprobScoring: "continuation" }));
    const verdicts = ruleVerdicts.map((v) => v?.score ?? null);
    const hints = ruleVerdicts.map((v) => v?.hint ?? null);
    rows.push(composed("rules → prm", verdicts, hints, prm.report.results));
    rows.push(composed("rules → logprob next-token", verdicts, hints, next.report.results));
  } finally {
    await server.close();
  }

  const prmMs = rows.find((r) => r.name === "prm")?.report.cost.meanMs ?? 0;
  if (args.out) fs.writeFileSync(args.out, JSON.stringify({ model: path.basename(model), rows }, null, 2) + "\n");
  if (args.json) {
    process.stdout.write(
      JSON.stringify(
        { model: path.basename(model), cases: all.length, sample: sample.length, maxTokens: Number(args["max-tokens"]), votes: Number(args.votes), rows: rows.map((r) => ({ name: r.name, ...r.report, results: undefined })) },
        null,
        2,
      ) + "\n",
    );
    return;
  }
  process.stdout.write(
    `\nJudges on ${path.basename(model)} (embedded engine, ${os.cpus().length} CPUs): ${sample.length} of ${all.length} labeled cases, PRM ${args.votes} votes × ≤${args["max-tokens"]} tokens at T=0.6\n`,
  );
  process.stdout.write(table(rows, prmMs) + "\n");
  process.stdout.write(
    "P/R: precision/recall; × PRM ms: mean time per judgment relative to the PRM judge's, measured in this run; valid votes: answers with a \\boxed{1|-1|0}.\n",
  );
  process.stdout.write("Label counts in the sample: " + JSON.stringify(countLabels(sample)) + "\n");
}

function countLabels(cases: JudgeCase[]): Record<string, number> {
  const out: Record<string, number> = { "1": 0, "0": 0, "-1": 0 };
  for (const c of cases) out[String(c.label)]!++;
  return out;
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:judge failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
