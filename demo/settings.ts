// The demo's clawloop settings: what a user would tune for a 135M model on a 2-core machine.
// Order: clawloop's defaults < these < the persona's `settings` < the caller's overrides.
//
// - judge.method "rules": the simulated user's replies are plain corrections and thanks, which
//   the rules read exactly (and turn into hints: "too long — two sentences at most" → "Answer in
//   at most two sentences."); a 135M model as PRM judge is close to chance (npm run bench:judge).
// - train: small, frequent steps (batchSize 4, or whatever is ready after 90 s) at a high
//   learning rate for a rank-8 adapter: a demo has tens of interactions, not weeks of use (the
//   default 5e-5 is for a loop that steps for days).
// - serve: 4 parallel sequences; the engine's sampling temperature is the persona's.
import type { ConfigOverrides } from "../core/index.js";

export const DEMO_SETTINGS: ConfigOverrides = {
  logLevel: "warn",
  sidecar: { port: 0 },
  judge: { method: "rules", pollMs: 250, settleMs: 1000 },
  train: {
    batchSize: 4,
    maxWaitSec: 90,
    pollMs: 500,
    lr: 5e-4,
    rank: 8,
    alpha: 16,
    maxTokens: 1024,
    // The demo measures learning per interaction: the trainer keeps up with the user instead of
    // yielding the CPU to serving (clawloop's default nice 10 is for a loop that runs for days).
    nice: 0,
  },
  serve: { port: 0, contextSize: 4096, parallel: 4 },
  // keepVersions 0: the demo measures every version after the run (retention would delete old ones).
  adapters: { retrySec: 2, keepVersions: 0 },
};

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Deep merge of plain objects; arrays and scalars of `over` replace. */
export function mergeSettings(base: Record<string, unknown>, ...overs: Record<string, unknown>[]): Record<string, unknown> {
  let out: Record<string, unknown> = { ...base };
  for (const over of overs) {
    const next: Record<string, unknown> = { ...out };
    for (const [k, v] of Object.entries(over)) {
      if (v === undefined) continue;
      next[k] = isObject(v) && isObject(next[k]) ? mergeSettings(next[k] as Record<string, unknown>, v) : v;
    }
    out = next;
  }
  return out;
}
