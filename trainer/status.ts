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
  /**
   * The latest time this run passed over a version because the switchboard rejected it (or what it
   * was built on) and grew from an older one (trainer/lineage.ts). Absent in files of older trainers.
   */
  fallback?: Fallback | null;
  /**
   * Whether the base model's weights and the engine are in memory: loaded when a batch is due, let
   * go after train.releaseAfterIdleS seconds with none. Absent in files of older trainers.
   */
  weights?: WeightsStatus | null;
  /** Mean reward of recent steps, oldest first. */
  rewardTrend: number[];
  lastError: { message: string; at: string } | null;
  startedAt: string;
  updatedAt: string;
}

export interface Fallback {
  /** The version steps grow from now (null: a fresh adapter). */
  grewFrom: string | null;
  /** The version the lineage would have continued from. */
  passedOver: string;
  /** The rejected versions that made it untrusted, and the switchboard's reasons. */
  rejected: { version: string; reason: string }[];
  at: string;
  /**
   * fallbackText of the facts above, written with them so that readers that cannot import this
   * module (the dashboard's static page) show the same line as `clawloop status`. Absent in files
   * of older trainers.
   */
  text?: string;
}

export interface WeightsStatus {
  state: "not loaded" | "loading" | "loaded";
  /** When it entered this state. */
  since: string;
  /** The trainer process's resident memory right after (MB). */
  rssMb: number;
}

/** "not loaded (loads when a batch is ready; RSS 160 MB)", for status lines. */
export function weightsText(w: WeightsStatus): string {
  const why = w.state === "not loaded" ? "loads when a batch is ready; " : w.state === "loading" ? "a batch is ready; " : "";
  return `${w.state} (${why}trainer RSS ${w.rssMb} MB)`;
}

/** "grew from v000001 after v000002 was rejected (reason)", for status lines. */
export function fallbackText(f: Omit<Fallback, "text">): string {
  const from = f.grewFrom ? `grew from ${f.grewFrom}` : "started a fresh adapter";
  const why = f.rejected.map((r) => `${r.version} was rejected (${r.reason})`).join(" and ");
  const over = f.rejected.some((r) => r.version === f.passedOver) ? "" : `; passed over ${f.passedOver}, built on it`;
  return `${from} after ${why}${over}`;
}

/** A fall back as the status file carries it: the facts and their line (fallbackText). */
export function fallbackOf(facts: Omit<Fallback, "text">): Fallback {
  return { ...facts, text: fallbackText(facts) };
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
    fallback: null,
    weights: null,
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
