// What the train loop shows: on a terminal one live line (samples waiting, step, loss, reward
// trend), redrawn in place; otherwise plain log lines, one per step or error.
import type { Logger } from "../core/index.js";
import type { TrainStatus } from "./status.js";

export interface Progress {
  update(status: TrainStatus): void;
  close(): void;
}

const BARS = "▁▂▃▄▅▆▇█";

/** Rewards in [−1, 1] as a bar per value. */
export function sparkline(values: number[]): string {
  return values
    .map((v) => BARS[Math.round(((Math.max(-1, Math.min(1, v)) + 1) / 2) * (BARS.length - 1))])
    .join("");
}

export function progressLine(s: TrainStatus, batchSize: number, width = 120): string {
  const parts = [s.mode, s.lastStep ? `${s.lastStep.version} (step ${s.lastStep.step})` : (s.version ?? "no version yet"), `${s.samplesWaiting}/${batchSize} samples`];
  if (s.lastStep) parts.push(`loss ${s.lastStep.loss.toFixed(4)}`, `reward ${sparkline(s.rewardTrend)} ${signed(s.lastStep.meanReward)}`);
  const skipped = Object.values(s.samplesSkipped).reduce((a, b) => a + b, 0);
  if (skipped) parts.push(`${skipped} skipped`);
  if (s.weights?.state === "loading") parts.push("loading the model…");
  if (s.state === "training") parts.push("training…");
  if (s.paused) parts.push(`paused since ${s.paused.since.replace("T", " ").slice(0, 19)} (clawloop train resume)`);
  if (s.lastError) parts.push(`error: ${s.lastError.message}`);
  const line = parts.join(" │ ");
  return line.length > width ? line.slice(0, width - 1) + "…" : line;
}

function signed(x: number): string {
  return (x >= 0 ? "+" : "") + x.toFixed(2);
}

export function createProgress(opts: {
  stream: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  logger: Logger;
  batchSize: number;
  /** The live line; default: when `stream` is a terminal. */
  live?: boolean;
}): Progress {
  const { stream, logger, batchSize } = opts;
  if (opts.live ?? stream.isTTY) {
    let drawn = false;
    return {
      update(s) {
        stream.write(`\r\x1b[2K${progressLine(s, batchSize, (stream.columns ?? 120) - 1)}`);
        drawn = true;
      },
      close() {
        if (drawn) stream.write("\n");
      },
    };
  }
  let lastVersion: string | null = null;
  let lastError: string | null = null;
  let paused = false;
  return {
    update(s) {
      if (Boolean(s.paused) !== paused) {
        paused = Boolean(s.paused);
        if (s.paused) logger.info({ since: s.paused.since, by: s.paused.by, reason: s.paused.reason, waiting: s.samplesWaiting }, "training paused: no step starts until `clawloop train resume`");
        else logger.info({ waiting: s.samplesWaiting }, "training resumed");
      }
      if (s.lastStep && s.lastStep.version !== lastVersion) {
        lastVersion = s.lastStep.version;
        logger.info(
          { version: s.lastStep.version, step: s.lastStep.step, loss: s.lastStep.loss, meanReward: s.lastStep.meanReward, samples: s.lastStep.samples, durationMs: Math.round(s.lastStep.durationMs), waiting: s.samplesWaiting },
          "adapter version written",
        );
      }
      const err = s.lastError ? `${s.lastError.at} ${s.lastError.message}` : null;
      if (err && err !== lastError) logger.warn({ err: s.lastError!.message }, "train loop error");
      lastError = err;
    },
    close() {},
  };
}
