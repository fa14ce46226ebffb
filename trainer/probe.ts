// `probe.json`: the numeric check the sidecar runs after loading a version (adapters/drivers/
// probe.ts). One sample the step trained on, with the engine's log-probs of its response under
// the base model and under the new version; the sidecar measures the same shift on the server.
// Of a few candidates from the batch, the one the version moved most is kept, since a larger
// predicted shift lets the check tell a broken adapter from numeric noise.
import type { LoraAdapter, ProbeFile } from "../adapters/index.js";
import type { Sample } from "../core/index.js";
import { k3Kl } from "./advantages.js";
import type { TrainEngine } from "./compute.js";

export const PROBE_FILE = "probe.json";

export interface ProbeResult {
  probe: ProbeFile;
  /**
   * How far the version is from the base model: the k3 estimate of KL(version ‖ base) per token,
   * averaged over the candidates' response tokens (a by-product of choosing the probe).
   */
  klToBase: number;
}

export async function makeProbe(engine: TrainEngine, adapter: LoraAdapter, samples: Sample[], maxCandidates = 4): Promise<ProbeResult> {
  if (!samples.length) throw new Error("a probe needs at least one sample");
  const candidates = [...samples].sort((a, b) => b.responseTokenIds.length - a.responseTokenIds.length).slice(0, maxCandidates);
  const items = candidates.map((s) => ({ promptIds: s.promptTokenIds, responseIds: s.responseTokenIds }));
  const base = await engine.score(items, null);
  const version = await engine.score(items, adapter);
  let best = 0;
  let bestShift = -1;
  let kl = 0;
  let tokens = 0;
  candidates.forEach((_, i) => {
    const shift = version[i]!.reduce((acc, v, t) => acc + Math.abs(v - base[i]![t]!), 0) / version[i]!.length;
    if (shift > bestShift) {
      bestShift = shift;
      best = i;
    }
    kl += k3Kl(version[i]!, base[i]!) * version[i]!.length;
    tokens += version[i]!.length;
  });
  return {
    probe: { format: 1, ...items[best]!, base: base[best]!, version: version[best]!, source: candidates[best]!.id },
    klToBase: tokens ? kl / tokens : 0,
  };
}
