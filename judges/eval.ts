// Scoring a judge against the labeled set: accuracy, the confusion matrix, hint precision and
// recall, and the cost per judgment. A case whose judge call fails counts as wrong (and is
// reported), so a broken endpoint can never look accurate.
import type { NextStateKind, Reward } from "../core/index.js";
import { inputFromCase, type JudgeCase } from "./cases.js";
import type { Judge } from "./verdict.js";

export interface CaseResult {
  index: number;
  kind: NextStateKind;
  label: Reward;
  /** null when the judge failed on this case. */
  predicted: Reward | null;
  hintExpected: boolean;
  hint: string | null;
  method: string | null;
  judgeModel: string | null;
  /** A model judge's votes (null: an answer without a valid \boxed{}). */
  votes: (Reward | null)[];
  costTokens: number;
  costMs: number;
  raw: string[];
  error: string | null;
}

const LABELS: Reward[] = [1, 0, -1];

export interface EvalReport {
  judge: string;
  /** The judge model(s) that answered, null for rules only. */
  model: string | null;
  cases: number;
  correct: number;
  accuracy: number;
  /** Rows: label 1, 0, −1; columns: predicted 1, 0, −1, failed. */
  confusion: { labels: Reward[]; matrix: number[][] };
  perLabel: Record<"1" | "0" | "-1", { count: number; precision: number | null; recall: number | null }>;
  hint: { expected: number; predicted: number; both: number; precision: number | null; recall: number | null };
  cost: { meanTokens: number; meanMs: number; p50Ms: number; p95Ms: number; totalTokens: number; wallMs: number };
  byKind: Record<string, { cases: number; accuracy: number }>;
  /** PRM votes cast and how many were valid answers (0/0 for other methods). */
  votes: { cast: number; valid: number };
  failed: number;
  firstError: string | null;
  results: CaseResult[];
}

export interface EvalOptions {
  concurrency?: number;
  onResult?: (r: CaseResult, done: number, total: number) => void;
  signal?: AbortSignal;
}

export async function evaluate(judge: Judge, cases: JudgeCase[], opts: EvalOptions = {}): Promise<EvalReport> {
  const started = performance.now();
  const results: CaseResult[] = new Array(cases.length);
  let next = 0;
  let done = 0;
  const worker = async () => {
    while (next < cases.length && !opts.signal?.aborted) {
      const index = next++;
      const c = cases[index]!;
      const base = { index, kind: c.next_state.kind, label: c.label, hintExpected: c.hint };
      const t0 = performance.now();
      try {
        const v = await judge.judge(inputFromCase(c), opts.signal);
        results[index] = { ...base, predicted: v.score, hint: v.hint, method: v.method, judgeModel: v.judgeModel, votes: v.votes, costTokens: v.costTokens, costMs: v.costMs, raw: v.raw, error: null };
      } catch (err) {
        results[index] = { ...base, predicted: null, hint: null, method: null, judgeModel: null, votes: [], costTokens: 0, costMs: performance.now() - t0, raw: [], error: err instanceof Error ? err.message : String(err) };
      }
      opts.onResult?.(results[index]!, ++done, cases.length);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, opts.concurrency ?? 1) }, worker));
  return summarize(judge.name, results.filter(Boolean), performance.now() - started);
}

const ratio = (a: number, b: number) => (b === 0 ? null : a / b);

function percentile(sorted: number[], p: number): number {
  if (!sorted.length) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

export function summarize(judge: string, results: CaseResult[], wallMs: number): EvalReport {
  const matrix = LABELS.map(() => [0, 0, 0, 0]);
  for (const r of results) matrix[LABELS.indexOf(r.label)]![r.predicted === null ? 3 : LABELS.indexOf(r.predicted)]!++;
  const correct = results.filter((r) => r.predicted === r.label).length;
  const perLabel = Object.fromEntries(
    LABELS.map((l, i) => {
      const predicted = results.filter((r) => r.predicted === l).length;
      const count = results.filter((r) => r.label === l).length;
      return [String(l), { count, precision: ratio(matrix[i]![i]!, predicted), recall: ratio(matrix[i]![i]!, count) }];
    }),
  ) as EvalReport["perLabel"];
  const expected = results.filter((r) => r.hintExpected).length;
  const predictedHints = results.filter((r) => r.hint !== null).length;
  const both = results.filter((r) => r.hintExpected && r.hint !== null).length;
  const ms = results.map((r) => r.costMs).sort((a, b) => a - b);
  const totalTokens = results.reduce((n, r) => n + r.costTokens, 0);
  const byKind: EvalReport["byKind"] = {};
  for (const r of results) {
    const k = (byKind[r.kind] ??= { cases: 0, accuracy: 0 });
    k.cases++;
    if (r.predicted === r.label) k.accuracy++;
  }
  for (const k of Object.values(byKind)) k.accuracy /= k.cases;
  const models = [...new Set(results.flatMap((r) => (r.judgeModel ? [r.judgeModel] : [])))];
  const failed = results.filter((r) => r.error !== null);
  return {
    judge,
    model: models.length ? models.join(",") : null,
    cases: results.length,
    correct,
    accuracy: results.length ? correct / results.length : 0,
    confusion: { labels: LABELS, matrix },
    perLabel,
    hint: { expected, predicted: predictedHints, both, precision: ratio(both, predictedHints), recall: ratio(both, expected) },
    cost: {
      meanTokens: results.length ? totalTokens / results.length : 0,
      meanMs: results.length ? ms.reduce((a, b) => a + b, 0) / results.length : 0,
      p50Ms: percentile(ms, 0.5),
      p95Ms: percentile(ms, 0.95),
      totalTokens,
      wallMs,
    },
    byKind,
    // Only sampled answers can be invalid: rules and the log-prob judge always give a score.
    votes: {
      cast: results.reduce((n, r) => n + (r.method === "prm" ? r.votes.length : 0), 0),
      valid: results.reduce((n, r) => n + (r.method === "prm" ? r.votes.filter((v) => v !== null).length : 0), 0),
    },
    failed: failed.length,
    firstError: failed[0]?.error ?? null,
    results,
  };
}

const pct = (x: number | null) => (x === null ? "  n/a" : `${(100 * x).toFixed(1).padStart(5)}%`);

/** A human-readable summary of one report. */
export function formatReport(r: EvalReport): string {
  const lines = [
    `judge ${r.judge}: ${r.correct}/${r.cases} correct, accuracy ${pct(r.accuracy)}${r.failed ? ` (${r.failed} failed: ${r.firstError})` : ""}`,
    "",
    "confusion (rows: label, columns: predicted)",
    "           +1     0    -1  failed",
    ...r.confusion.labels.map((l, i) => `  ${(l > 0 ? "+1" : String(l)).padStart(4)}  ${r.confusion.matrix[i]!.map((n) => String(n).padStart(5)).join(" ")}`),
    "",
    `per label: ${r.confusion.labels.map((l) => `${l > 0 ? "+1" : l}: precision ${pct(r.perLabel[String(l) as "1"].precision)} recall ${pct(r.perLabel[String(l) as "1"].recall)}`).join(" | ")}`,
    `hints: precision ${pct(r.hint.precision)} (${r.hint.both}/${r.hint.predicted}), recall ${pct(r.hint.recall)} (${r.hint.both}/${r.hint.expected})`,
    `by next state: ${Object.entries(r.byKind).map(([k, v]) => `${k} ${pct(v.accuracy)} of ${v.cases}`).join(", ")}`,
    ...(r.votes.cast ? [`valid answers: ${r.votes.valid}/${r.votes.cast} votes`] : []),
    `cost per judgment: ${r.cost.meanTokens.toFixed(0)} tokens, ${r.cost.meanMs.toFixed(1)} ms mean (p50 ${r.cost.p50Ms.toFixed(1)}, p95 ${r.cost.p95Ms.toFixed(1)}); wall ${(r.cost.wallMs / 1000).toFixed(1)} s`,
  ];
  return lines.join("\n");
}
