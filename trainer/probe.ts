// NOTE: restored from dist/trainer/probe.js after the hot-load engineer overwrote this untracked
// file by mistake at 11:36:58; the original header comment and exact types were lost.
import type { LoraAdapter, ProbeFile } from "../adapters/index.js";
import type { Sample } from "../core/index.js";
import type { TrainEngine } from "./compute.js";

export const PROBE_FILE = "probe.json";

export async function makeProbe(engine: TrainEngine, adapter: LoraAdapter, samples: Sample[], maxCandidates = 4): Promise<ProbeFile> {
  if (!samples.length) throw new Error("a probe needs at least one sample");
  const candidates = [...samples].sort((a, b) => b.responseTokenIds.length - a.responseTokenIds.length).slice(0, maxCandidates);
  const items = candidates.map((s) => ({ promptIds: s.promptTokenIds, responseIds: s.responseTokenIds }));
  const [base, version] = [await engine.score(items, null), await engine.score(items, adapter)];
  let best = 0;
  let bestShift = -1;
  candidates.forEach((_, i) => {
    const shift = version[i]!.reduce((acc, v, t) => acc + Math.abs(v - base[i]![t]!), 0) / version[i]!.length;
    if (shift > bestShift) {
      bestShift = shift;
      best = i;
    }
  });
  return { format: 1, ...items[best]!, base: base[best]!, version: version[best]!, source: candidates[best]!.id };
}
