// The log-prob shift comparison on its own: what passes, what fails, and the regime it reports.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { compareProbe, DISCRIMINATIVE_SHIFT, NOISE_MEAN, readProbeFile, REL } from "./probe.js";

const base = [-1, -2, -0.5, -3, -1.5, -0.2, -2.5, -1.1];
const shifted = (d: number[]) => base.map((b, i) => b + d[i]!);
const delta = [0.6, 0.4, 0.8, -0.5, 0.7, 0.3, -0.6, 0.5];

describe("compareProbe", () => {
  it("passes a server that moves as predicted, up to the noise allowance", () => {
    const noise = [0.05, -0.08, 0.1, -0.02, 0.04, -0.1, 0.07, -0.05];
    const r = compareProbe({ base, version: shifted(delta) }, { base: base.map((b) => b - 0.3), version: shifted(delta).map((v, i) => v - 0.3 + noise[i]!) });
    expect(r.ok).toBe(true);
    expect(r.discriminative).toBe(true);
    expect(r.meanError).toBeCloseTo(0.06375, 5);
    expect(r.cosine!).toBeGreaterThan(0.98);
  });

  it("fails an adapter applied twice, not at all, or with its sign flipped", () => {
    for (const k of [2, 0, -1]) {
      const r = compareProbe({ base, version: shifted(delta) }, { base, version: shifted(delta.map((d) => k * d)) });
      expect(r.ok, `k=${k}`).toBe(false);
      expect(r.reason).toContain("mean |measured − predicted|");
    }
  });

  it("fails shifts on the wrong tokens (same size, other places) by the cosine test", () => {
    // Each shift moved to the next token: same magnitudes, errors within the mean allowance.
    const small = delta.map((d) => d * 0.5);
    const rotated = [...small.slice(1), small[0]!];
    const r = compareProbe({ base, version: shifted(small) }, { base, version: shifted(rotated) });
    expect(r.predictedShift).toBeGreaterThanOrEqual(0.25);
    if (r.meanError <= NOISE_MEAN + REL * r.predictedShift) expect(r.reason).toContain("cosine");
    expect(r.ok).toBe(false);
  });

  it("bounds the damage below the noise floor: a tiny adapter passes only if the server moved little", () => {
    const tiny = delta.map((d) => d * 0.01);
    expect(compareProbe({ base, version: shifted(tiny) }, { base, version: shifted(tiny.map((d) => d * 3)) })).toMatchObject({ ok: true, discriminative: false });
    expect(compareProbe({ base, version: shifted(tiny) }, { base, version: shifted(delta) }).ok).toBe(false);
    expect(DISCRIMINATIVE_SHIFT).toBeCloseTo(NOISE_MEAN / (1 - REL), 10);
  });

  it("fails non-finite log-probs and a length mismatch", () => {
    expect(compareProbe({ base, version: base }, { base, version: base.map((x, i) => (i === 3 ? NaN : x)) }).reason).toContain("non-finite");
    expect(compareProbe({ base, version: base }, { base: base.slice(1), version: base.slice(1) }).reason).toContain("scored 7 tokens");
  });
});

describe("readProbeFile", () => {
  it("reads a probe, returns null without one, and names what is wrong with a malformed one", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "clawloop-probe-"));
    try {
      expect(readProbeFile(dir)).toBeNull();
      const p = { format: 1, promptIds: [1, 2], responseIds: [3, 4], base: [-1, -2], version: [-0.5, -2.5], source: "s" };
      fs.writeFileSync(path.join(dir, "probe.json"), JSON.stringify(p));
      expect(readProbeFile(dir)).toEqual(p);
      fs.writeFileSync(path.join(dir, "probe.json"), JSON.stringify({ ...p, version: [-1] }));
      expect(() => readProbeFile(dir)).toThrow(/2 response tokens but 2 base and 1 version/);
      fs.writeFileSync(path.join(dir, "probe.json"), JSON.stringify({ ...p, format: 2 }));
      expect(() => readProbeFile(dir)).toThrow(/malformed: format/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
