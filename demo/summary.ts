// `<run dir>/summary.json`: what a demo run measured. The dashboard reads `persona`, `mode`,
// `interactions`, `satisfaction[{version, afterInteractions, rate}]`, `perplexityChange` and
// `startedAt` (sidecar/dashboard/runs.ts); the rest is for people and for bench:learn.
import fs from "node:fs";
import path from "node:path";
import type { TrainMode } from "../core/index.js";

export const TARGET_RATE = 0.8;

export interface CurvePoint {
  /** Adapter version measured; null: the base model. */
  version: string | null;
  /** Interactions the simulated user had finished when this version was written (0 for the base). */
  afterInteractions: number;
  /** Share of held-out replies that met the preference. */
  rate: number;
  /** Binomial standard error of `rate`. */
  stderr: number;
  /** Replies measured. */
  n: number;
  meanWords: number;
  /** Mean NLL per token of the neutral text, and its perplexity's change from the base. */
  neutralNll: number;
  perplexityChange: number;
}

export interface DemoSummary {
  runId: string;
  persona: string;
  personaKind: string;
  preference: string;
  mode: TrainMode;
  interactions: number;
  startedAt: string;
  finishedAt: string;
  satisfaction: CurvePoint[];
  /** Perplexity change of the neutral text, last measured version against the base (0.02 = +2%). */
  perplexityChange: number | null;
  /** The first version whose satisfaction reached TARGET_RATE. */
  reached: { target: number; version: string | null; afterInteractions: number | null };
  /** How the user's reactions fell during the run. */
  reactions: { corrections: number; thanks: number; moveOn: number; satisfiedDuringRun: number };
  judgments: { total: number; positive: number; negative: number; zero: number; withHint: number };
  training: { steps: number; samples: number; trainMs: number; lastLoss: number | null };
  /** Calls served by an adapter version (the `adapter` field of the recorded turns). */
  servedByAdapter: number;
  /** The clawloop settings the run used (on top of defaults). */
  settings: Record<string, unknown>;
  /** Where the run's data, chart and logs are. */
  dataDir: string;
  chart: string;
  durationMs: number;
}

/** The first point at or above `target` (the base model counts: it may already be there). */
export function firstReached(points: CurvePoint[], target = TARGET_RATE): DemoSummary["reached"] {
  const p = points.find((x) => x.rate >= target);
  return { target, version: p?.version ?? null, afterInteractions: p ? p.afterInteractions : null };
}

/** The curve's value after `interactions`: the newest point measured at or before it. */
export function rateAfter(points: CurvePoint[], interactions: number): CurvePoint | null {
  let best: CurvePoint | null = null;
  for (const p of points) if (p.afterInteractions <= interactions && (!best || p.afterInteractions >= best.afterInteractions)) best = p;
  return best;
}

export function writeSummary(runDir: string, summary: DemoSummary): string {
  const file = path.join(runDir, "summary.json");
  fs.mkdirSync(runDir, { recursive: true });
  const tmp = `${file}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(summary, null, 2) + "\n");
  fs.renameSync(tmp, file);
  return file;
}
