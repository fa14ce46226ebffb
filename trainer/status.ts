// The train loop's status file, `<data>/loops/train.json`, read by `clawloop status`. Replaced
// atomically on every change, so a reader never sees half of it.
import fs from "node:fs";
import path from "node:path";
import { dataPaths, type TrainMode, type TrainPause } from "../core/index.js";
import type { SkipReason } from "./samples.js";
import { writeFileAtomic } from "./versions.js";

export interface TrainStatus {
  pid: number;
  state: "starting" | "waiting" | "training" | "paused" | "stopped" | "failed";
  mode: TrainMode;
  model: string | null;
  /** Samples ready and not yet trained on. */
  samplesWaiting: number;
  /** Judged turns that will not become samples, by reason. */
  samplesSkipped: Record<SkipReason | "failed", number>;
  /** Judged, but their turn is not in the store yet. */
  awaitingTurn: number;
  /** Set while training is paused (`clawloop train pause`): no step starts until the resume. */
  paused: TrainPause | null;
  /** Latest adapter version (null: none yet). */
  version: string | null;
  lastStep: {
    version: string;
    step: number;
    loss: number;
    meanReward: number;
    samples: number;
    durationMs: number;
    at: string;
  } | null;
  /** Mean reward of recent steps, oldest first. */
  rewardTrend: number[];
  lastError: { message: string; at: string } | null;
  startedAt: string;
  updatedAt: string;
}

export function newStatus(mode: TrainMode, model: string | null): TrainStatus {
  const now = new Date().toISOString();
  return {
    pid: process.pid,
    state: "starting",
    mode,
    model,
    samplesWaiting: 0,
    samplesSkipped: { "no-signal": 0, "empty-response": 0, "too-long": 0, unrenderable: 0, failed: 0 },
    awaitingTurn: 0,
    paused: null,
    version: null,
    lastStep: null,
    rewardTrend: [],
    lastError: null,
    startedAt: now,
    updatedAt: now,
  };
}

export function statusFile(dataDir: string): string {
  return path.join(dataPaths(dataDir).loops, "train.json");
}

export function writeStatus(dataDir: string, status: TrainStatus): void {
  // A status is replaced often and is worthless after a power loss: no fsync.
  writeFileAtomic(statusFile(dataDir), JSON.stringify(status, null, 2) + "\n", { fsync: false });
}

export function readStatus(dataDir: string): TrainStatus | null {
  try {
    return JSON.parse(fs.readFileSync(statusFile(dataDir), "utf8")) as TrainStatus;
  } catch {
    return null;
  }
}
