// The four loops at a glance: serve (the upstream answers), collect (this sidecar and its store),
// judge and train (from the status files those loops write under `<data>/loops/`).
import fs from "node:fs";
import path from "node:path";
import { processAlive, readTrainPause, type StoreHealth, type TrainPause } from "../../core/index.js";
import type { SidecarMetrics } from "../metrics.js";
import type { UpstreamHealth } from "../upstream.js";

export interface UpstreamView {
  url: string;
  kind: string | null;
  health(): Promise<UpstreamHealth>;
}

export type LoopState = "running" | "stopped" | "not running" | "never ran" | "unreadable";

export interface LoopFile {
  state: LoopState;
  /** The status file as the loop wrote it (judges/status.ts, trainer/status.ts). */
  status: Record<string, unknown> | null;
  error: string | null;
}

export interface LoopsView {
  serve: { url: string; kind: string | null; health: UpstreamHealth };
  collect: {
    ok: boolean;
    store: StoreHealth;
    /** Rows in the append-only log, not yet in LanceDB. */
    pendingRows: number;
    turnsSinceStart: number;
    /** Turns in the store: those there at start (counted once) plus those recorded since; null while unknown. */
    turnsTotal: number | null;
    eventsSinceStart: Record<string, number>;
    inflight: number;
    startedAt: string;
  };
  judge: LoopFile;
  /**
   * `paused` is the pause flag (`<data>/train.paused`), read here rather than taken from train.json:
   * it holds whether or not the trainer runs, and the trainer copies it into its file only later.
   */
  train: LoopFile & { paused: TrainPause | null };
  /** The newest errors any loop reported, newest first. */
  errors: { loop: string; message: string; at: string | null }[];
}


/** Reads `<loops>/<name>.json`. A loop whose process is gone is "not running", whatever the file says. */
export function readLoopFile(loopsDir: string, name: string): LoopFile {
  let text: string;
  try {
    text = fs.readFileSync(path.join(loopsDir, `${name}.json`), "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return { state: "never ran", status: null, error: null };
    return { state: "unreadable", status: null, error: (err as Error).message };
  }
  let status: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(text);
    if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) throw new Error("not a JSON object");
    status = parsed as Record<string, unknown>;
  } catch (err) {
    return { state: "unreadable", status: null, error: `${name}.json: ${(err as Error).message}` };
  }
  const declared = typeof status.state === "string" ? status.state : "unknown";
  const finished = declared === "stopped" || declared === "failed";
  const state: LoopState = finished ? "stopped" : processAlive(status.pid) ? "running" : "not running";
  return { state, status, error: null };
}

interface MetricLike {
  get(): Promise<{ values: { value: number; labels: Partial<Record<string, string | number>> }[] }>;
}

async function counterValues(metric: MetricLike, label?: string) {
  const out: Record<string, number> = {};
  let total = 0;
  for (const v of (await metric.get()).values) {
    total += v.value;
    if (label) out[String(v.labels[label] ?? "")] = (out[String(v.labels[label] ?? "")] ?? 0) + v.value;
  }
  return { total, by: out };
}

function lastErrorOf(loop: string, file: LoopFile): LoopsView["errors"][number] | null {
  if (file.error) return { loop, message: file.error, at: null };
  const e = file.status?.lastError as { message?: unknown; at?: unknown } | null | undefined;
  if (!e || typeof e.message !== "string") return null;
  return { loop, message: e.message, at: typeof e.at === "string" ? e.at : null };
}

export async function loopsView(d: {
  upstream: UpstreamView;
  store: { health(): StoreHealth };
  metrics: SidecarMetrics;
  loopsDir: string;
  /** The data directory, for the training pause flag. */
  dataDir: string;
  startedAt: Date;
  /** Turns in the store when the dashboard was mounted (null: not counted yet, or the count failed). */
  initialTurns: () => number | null;
}): Promise<LoopsView> {
  const [health, turns, events, inflight] = await Promise.all([
    d.upstream.health(),
    counterValues(d.metrics.turns),
    counterValues(d.metrics.events, "result"),
    counterValues(d.metrics.inflight),
  ]);
  const store = d.store.health();
  const judge = readLoopFile(d.loopsDir, "judge");
  const train = readLoopFile(d.loopsDir, "train");
  const errors: LoopsView["errors"] = [];
  if (!health.ok) errors.push({ loop: "serve", message: health.error ?? `upstream answered ${health.status}`, at: health.checkedAt });
  if (store.lastError) errors.push({ loop: "collect", message: store.lastError, at: null });
  for (const [loop, file] of [["judge", judge], ["train", train]] as const) {
    const e = lastErrorOf(loop, file);
    if (e) errors.push(e);
  }
  errors.sort((a, b) => (b.at ?? "").localeCompare(a.at ?? ""));
  return {
    serve: { url: d.upstream.url, kind: d.upstream.kind, health },
    collect: {
      ok: store.ok,
      store,
      pendingRows: Object.values(store.tables).reduce((n, t) => n + (t?.pending ?? 0), 0),
      turnsSinceStart: turns.total,
      turnsTotal: d.initialTurns() === null ? null : d.initialTurns()! + turns.total,
      eventsSinceStart: events.by,
      inflight: inflight.total,
      startedAt: d.startedAt.toISOString(),
    },
    judge,
    train: { ...train, paused: readTrainPause(d.dataDir) },
    errors,
  };
}
