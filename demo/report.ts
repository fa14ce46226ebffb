// The end-of-run table: satisfaction per measured version, with its standard error, the replies'
// length and the neutral text's perplexity change.
import type { DemoSummary } from "./summary.js";

const pct = (x: number) => `${Math.round(x * 100)}%`;
const signedPct = (x: number) => `${x >= 0 ? "+" : "−"}${Math.abs(x * 100).toFixed(1)}%`;

/** Rows as text columns, right-aligned except the first. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] ?? "").length)));
  const fmt = (r: string[]) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join("   ");
  return [fmt(header), widths.map((w) => "─".repeat(w)).join("   "), ...rows.map(fmt)].join("\n");
}

export function summaryTable(s: DemoSummary): string {
  const rows = s.satisfaction.map((p) => [
    p.version ?? "base",
    String(p.afterInteractions),
    pct(p.rate),
    `±${pct(p.stderr)}`,
    String(p.n),
    p.meanWords.toFixed(0),
    p.version ? signedPct(p.perplexityChange) : "—",
  ]);
  const lines = [
    `Learning curve: ${s.persona} (${s.preference}), mode ${s.mode}, ${s.interactions} interactions`,
    "",
    table(["version", "after", "satisfied", "s.e.", "replies", "words", "perplexity"], rows),
    "",
    s.reached.version !== null || s.reached.afterInteractions === 0
      ? `reached ${pct(s.reached.target)}: ${s.reached.version ?? "base"} after ${s.reached.afterInteractions} interactions`
      : `did not reach ${pct(s.reached.target)} in ${s.interactions} interactions`,
    `the user: ${s.reactions.corrections} corrections, ${s.reactions.thanks} thanks, ${s.reactions.moveOn} moved on (${s.reactions.satisfiedDuringRun} of ${s.interactions} replies met the preference during the run)`,
    `judge: ${s.judgments.total} judged (+1: ${s.judgments.positive}, −1: ${s.judgments.negative}, 0: ${s.judgments.zero}; ${s.judgments.withHint} with a hint)`,
    `train: ${s.training.steps} steps on ${s.training.samples} samples, ${(s.training.trainMs / 1000).toFixed(0)} s of training; ${s.servedByAdapter} calls served by an adapter version`,
    `s.e. is the binomial standard error sqrt(p(1−p)/n); replies to one question are correlated, so the real uncertainty is somewhat larger`,
    `chart ${s.chart}`,
    `summary ${s.dataDir}/summary.json`,
  ];
  return lines.join("\n");
}
