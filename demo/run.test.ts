import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { perplexityChange, standardError } from "./evaluate.js";
import { loadPersona } from "./personas.js";
import { interactionsBefore, prepareRunDir, runSettings, type InteractionRecord } from "./run.js";
import { DEMO_SETTINGS, mergeSettings } from "./settings.js";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "clawloop-demo-run-"));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe("run settings", () => {
  it("demo defaults < persona < caller, and the mode always wins", () => {
    const persona = { ...loadPersona("concise"), settings: { train: { lr: 1e-3, rank: 4 }, judge: { method: "prm" } } };
    const s = runSettings(persona, "opd", { train: { rank: 2, mode: "rl" } }) as { train: Record<string, unknown>; judge: Record<string, unknown>; serve: Record<string, unknown> };
    expect(s.train).toMatchObject({ lr: 1e-3, rank: 2, mode: "opd", batchSize: DEMO_SETTINGS.train!.batchSize });
    expect(s.judge.method).toBe("prm");
    expect(s.serve).toMatchObject({ parallel: 4 });
    // Arrays replace, objects merge, undefined leaves alone.
    expect(mergeSettings({ a: [1, 2], b: { c: 1, d: 2 } }, { a: [3], b: { d: undefined, e: 5 } })).toEqual({ a: [3], b: { c: 1, d: 2, e: 5 } });
  });

  it("writes the run's config.json (read by every loop, the trainer child too) and refuses a used data directory", () => {
    const dir = path.join(tmp, "run-a");
    const config = prepareRunDir(dir, runSettings(loadPersona("concise"), "combined"));
    expect(config.dataDir).toBe(dir);
    expect(config.judge.method).toBe("rules");
    expect(config.train.mode).toBe("combined");
    expect(JSON.parse(fs.readFileSync(path.join(dir, "config.json"), "utf8")).train.lr).toBe(config.train.lr);
    fs.mkdirSync(path.join(dir, "store"));
    expect(() => prepareRunDir(dir, {})).toThrow(/already holds a run's data/);
  });

  it("a version counts the interactions finished before it was written", () => {
    const rec = (i: number, endedAt: string) => ({ i, endedAt }) as InteractionRecord;
    const records = [rec(1, "2026-01-01T00:00:01Z"), rec(2, "2026-01-01T00:00:05Z"), rec(3, "2026-01-01T00:00:09Z")];
    expect(interactionsBefore(records, "2026-01-01T00:00:00Z")).toBe(0);
    expect(interactionsBefore(records, "2026-01-01T00:00:05Z")).toBe(2);
    expect(interactionsBefore(records, "2026-01-01T00:01:00Z")).toBe(3);
  });
});

describe("measurement arithmetic", () => {
  it("binomial standard error and relative perplexity change", () => {
    expect(standardError(0.5, 32)).toBeCloseTo(0.0884, 4);
    expect(standardError(1, 32)).toBe(0);
    expect(standardError(0.5, 0)).toBe(0);
    expect(perplexityChange(3, 3)).toBe(0);
    expect(perplexityChange(3, 3 + Math.log(1.05))).toBeCloseTo(0.05, 10);
    expect(perplexityChange(3, 3 - Math.log(1.02))).toBeCloseTo(1 / 1.02 - 1, 10);
  });
});
