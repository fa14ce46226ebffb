import { Writable } from "node:stream";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { modelSourceOf, wantsGguf } from "./backend.js";
import { loadConfig } from "../core/index.js";
import { createProgress, progressLine, sparkline } from "./progress.js";
import type { TrainStatus } from "./status.js";

const status = (over: Partial<TrainStatus> = {}): TrainStatus => ({
  pid: 1, state: "waiting", mode: "combined", model: "m", samplesWaiting: 2,
  samplesSkipped: { "no-signal": 1, "empty-response": 0, "too-long": 0, unrenderable: 0, failed: 0 },
  awaitingTurn: 0, version: "v000003",
  lastStep: { version: "v000003", step: 3, loss: 0.12345, meanReward: 0.5, samples: 4, durationMs: 900, at: "t" },
  rewardTrend: [-1, 0, 0.5, 1], lastError: null, paused: null, startedAt: "t", updatedAt: "t", ...over,
});

function sink(isTTY: boolean): { stream: Writable & { isTTY?: boolean; columns?: number }; text: () => string } {
  let text = "";
  const stream = new Writable({ write(chunk, _enc, cb) { text += String(chunk); cb(); } }) as Writable & { isTTY?: boolean; columns?: number };
  stream.isTTY = isTTY;
  stream.columns = 200;
  return { stream, text: () => text };
}

describe("progress", () => {
  it("draws rewards in [−1, 1] as bars", () => {
    expect(sparkline([-1, 0, 1, 5, -5])).toBe("▁▅██▁");
  });

  it("shows waiting samples, step, loss and the reward trend on one line", () => {
    expect(progressLine(status(), 4)).toBe("combined │ v000003 (step 3) │ 2/4 samples │ loss 0.1235 │ reward ▁▅▆█ +0.50 │ 1 skipped");
    expect(progressLine(status({ state: "training" }), 4)).toMatch(/│ training…$/);
    expect(progressLine(status({ weights: { state: "loading", since: "t", rssMb: 150 } }), 4)).toMatch(/│ loading the model…$/);
    expect(progressLine(status({ lastStep: null, version: null, lastError: { message: "boom", at: "t" } }), 4)).toContain("error: boom");
    expect(progressLine(status(), 4, 20)).toHaveLength(20);
  });

  it("redraws one line on a terminal and logs one line per version otherwise", () => {
    const tty = sink(true);
    const p = createProgress({ stream: tty.stream, logger: pino({ level: "silent" }), batchSize: 4 });
    p.update(status());
    p.update(status({ samplesWaiting: 3 }));
    p.close();
    expect(tty.text().split("\r\x1b[2K")).toHaveLength(3);
    expect(tty.text().endsWith("\n")).toBe(true);

    const logs = sink(false);
    const logger = pino({ level: "info", base: null, timestamp: false }, logs.stream);
    const plain = createProgress({ stream: sink(false).stream, logger, batchSize: 4 });
    plain.update(status());
    plain.update(status({ samplesWaiting: 0 }));
    plain.update(status({ lastError: { message: "engine failed", at: "t1" } }));
    plain.update(status({ lastError: { message: "engine failed", at: "t1" } }));
    const lines = logs.text().trim().split("\n").map((l) => JSON.parse(l) as { msg: string });
    expect(lines.map((l) => l.msg)).toEqual(["adapter version written", "train loop error"]);
    // A terminal shared with a parent process (clawloop up): plain lines on request.
    const shared = sink(true);
    createProgress({ stream: shared.stream, logger: pino({ level: "silent" }), batchSize: 4, live: false }).update(status());
    expect(shared.text()).toBe("");
  });
});

describe("backend choices", () => {
  it("writes adapter.gguf for GGUF bases unless told otherwise, and needs a base model", () => {
    expect(wantsGguf("auto", "/m/SmolLM2.Q4_1.GGUF")).toBe(true);
    expect(wantsGguf("auto", "/m/Qwen2.5-0.5B")).toBe(false);
    expect(wantsGguf("always", "/m/Qwen2.5-0.5B")).toBe(true);
    expect(wantsGguf("never", "/m/a.gguf")).toBe(false);
    const cfg = loadConfig({ env: {}, flags: { dataDir: "/tmp/x" } });
    expect(() => modelSourceOf(cfg)).toThrow(/no base model to train: pass --model/);
    expect(modelSourceOf({ ...cfg, serve: { ...cfg.serve, model: "/s.gguf" } })).toBe("/s.gguf");
    expect(modelSourceOf({ ...cfg, train: { ...cfg.train, model: "/t.gguf" } }, "/flag.gguf")).toBe("/flag.gguf");
  });
});
