import { describe, expect, it } from "vitest";
import { learningCurveSvg } from "./chart.js";
import { summaryTable } from "./report.js";
import { firstReached, rateAfter, type CurvePoint, type DemoSummary } from "./summary.js";
import { runSummarySchema } from "../sidecar/dashboard/runs.js";

const pt = (version: string | null, afterInteractions: number, rate: number, perplexityChange = 0): CurvePoint => ({
  version,
  afterInteractions,
  rate,
  stderr: Math.sqrt((rate * (1 - rate)) / 32),
  n: 32,
  meanWords: 40,
  neutralNll: 3,
  perplexityChange,
});
const curve = [pt(null, 0, 0.1), pt("v000001", 4, 0.2, 0.004), pt("v000002", 8, 0.55, 0.01), pt("v000003", 12, 0.85, 0.02), pt("v000004", 16, 0.8, 0.021)];

describe("learning curve chart", () => {
  it("is a standalone SVG with one point per version, error bars, the target line and escaped text", () => {
    const svg = learningCurveSvg(curve, { title: "concise: <two> & short", subtitle: "combined", target: 0.8 });
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg.trimEnd().endsWith("</svg>")).toBe(true);
    expect(svg.match(/<circle /g)).toHaveLength(5);
    expect(svg.match(/stroke="#93c5fd"/g)).toHaveLength(5); // ±1 s.e. bars
    expect(svg).toContain("target 80%");
    expect(svg).toContain("concise: &lt;two&gt; &amp; short");
    expect(svg).toContain("v000003: 85% ± 6 after 12 interactions; perplexity +2.0%");
    expect(svg).not.toMatch(/NaN|undefined|https?:\/\/(?!www\.w3\.org)/);
    // Higher rates are drawn higher (smaller y).
    const ys = [...svg.matchAll(/<circle cx="[\d.]+" cy="([\d.]+)"/g)].map((m) => Number(m[1]));
    expect(ys[0]!).toBeGreaterThan(ys[3]!);
  });

  it("draws a lone base point without a line, and a flat curve without NaN", () => {
    const one = learningCurveSvg([pt(null, 0, 0.3)], { title: "t" });
    expect(one).not.toContain("<polyline");
    expect(one).not.toContain("NaN");
    expect(learningCurveSvg([pt(null, 0, 1), pt("v000001", 0, 1)], { title: "t" })).not.toContain("NaN");
  });
});

describe("summary", () => {
  it("finds where the curve first reached the target and its value after N interactions", () => {
    expect(firstReached(curve)).toEqual({ target: 0.8, version: "v000003", afterInteractions: 12 });
    expect(firstReached(curve.slice(0, 3))).toEqual({ target: 0.8, version: null, afterInteractions: null });
    expect(rateAfter(curve, 10)?.version).toBe("v000002");
    expect(rateAfter(curve, 64)?.version).toBe("v000004");
    expect(rateAfter(curve, 0)?.version).toBe(null);
  });

  const summary: DemoSummary = {
    runId: "20261121-120000-concise-combined",
    persona: "concise",
    personaKind: "length",
    preference: "answers of at most two sentences",
    mode: "combined",
    interactions: 16,
    startedAt: "2026-11-21T12:00:00.000Z",
    finishedAt: "2026-11-21T12:10:00.000Z",
    satisfaction: curve,
    perplexityChange: 0.021,
    reached: firstReached(curve),
    reactions: { corrections: 9, thanks: 3, moveOn: 4, satisfiedDuringRun: 7 },
    judgments: { total: 16, positive: 7, negative: 9, zero: 0, withHint: 9 },
    training: { steps: 4, samples: 16, trainMs: 42_000, lastLoss: 0.01 },
    servedByAdapter: 11,
    settings: {},
    dataDir: "/tmp/run",
    chart: "/tmp/run/learning-curve.svg",
    durationMs: 600_000,
  };

  it("has the shape the dashboard reads from runs/<id>/summary.json", () => {
    const parsed = runSummarySchema.safeParse(JSON.parse(JSON.stringify(summary)));
    expect(parsed.success, JSON.stringify(parsed.error?.issues)).toBe(true);
  });

  it("prints a table with every measured version, its standard error and perplexity change", () => {
    const text = summaryTable(summary);
    expect(text).toContain("Learning curve: concise (answers of at most two sentences), mode combined, 16 interactions");
    expect(text).toMatch(/base\s+0\s+10%\s+±5%\s+32\s+40\s+—/);
    expect(text).toMatch(/v000003\s+12\s+85%\s+±6%\s+32\s+40\s+\+2\.0%/);
    expect(text).toContain("reached 80%: v000003 after 12 interactions");
    expect(text).toContain("judge: 16 judged (+1: 7, −1: 9, 0: 0; 9 with a hint)");
    expect(text).toContain("11 calls served by an adapter version");
    expect(summaryTable({ ...summary, satisfaction: curve.slice(0, 2), reached: firstReached(curve.slice(0, 2)) })).toContain("did not reach 80% in 16 interactions");
  });
});
