// `clawloop status [--json]`: the four loops at a glance.
//   serve    the model server and whether it answers (from the sidecar, when it runs)
//   collect  turns recorded; main-line turns still waiting for a next state
//   judge    turns waiting for a judge, verdicts so far (the judge's status file)
//   train    samples waiting for training, the latest version, the latest fall back from a rejected
//            version (the trainer's status file)
//   adapters the live version and its step, the pin, the last rejection and why, the last rollback
//   errors   the newest error of each loop
// Counts come from the store (read-only), so they are right whether or not the loops run; live
// state (upstream health, the switchboard) comes from the running sidecar's /clawloop/v1/status.
// Reads are bounded, so status stays quick on a store of 100k turns: totals are counts, and what
// waits for a next state, a judge or training is worked out over the newest main-line turns (a
// window of STATUS_WINDOW, said in the output when there are more), reading only their ids and
// the next states, judgments and train steps that refer to them.
import fs from "node:fs";
import path from "node:path";
import { Command } from "commander";
import { columnName, processAlive, readTrainPause, sqlString, Store, type AdapterVersion, type Config, type QueryOptions, type TableName, type Tables, type TrainPause } from "../../core/index.js";
import { readJudgeStatus, type JudgeStatus } from "../../judges/index.js";
import { latestFields, type RollbackReport } from "../../sidecar/index.js";
import { fallbackText, readStatus as readTrainStatus, weightsText, type TrainStatus } from "../../trainer/index.js";
import { configFrom, stamp, withCommonOptions, type CommonFlags } from "../shared.js";
import { ControlApiError, controlCall } from "./adapters.js";
import { readUpFile, sidecarUrl } from "../up-file.js";

interface StatusFlags extends CommonFlags {
  url?: string;
  json?: boolean;
}

interface SwitchboardView {
  mode: string;
  live: string | null;
  pinned?: string | null;
  liveStep?: number | null;
  waiting?: { version: string; reason: string } | null;
  lastRejection?: { version: string; reason: string; at: string } | null;
  lastRollback?: RollbackReport | null;
  lastError?: { message: string; at: string } | null;
}

export interface StatusReport {
  dataDir: string;
  sidecar: { url: string; running: boolean; upstream: { url: string; kind: string | null; ok: boolean | null; error: string | null } | null; error: string | null };
  counts: {
    turns: number;
    mainTurns: number;
    /** Next-state events linked to a turn. */
    nextStates: number;
    judgments: number;
    /** Main-line turns with no next state yet (in `window`). */
    waitingForNextState: number;
    /** Main-line turns with a next state and no judgment (in `window`). */
    waitingForJudge: number;
    /** Judged with a non-zero score and in no train step's samples (in `window`; the trainer's own count, when it runs, is `train.samplesWaiting`). */
    waitingForTraining: number;
    /** The newest main-line turns the three `waitingFor…` numbers look at; `complete`: that is all of them. */
    window: { mainTurns: number; complete: boolean };
  };
  judge: { running: boolean; status: JudgeStatus | null };
  train: { running: boolean; status: TrainStatus | null; paused: TrainPause | null };
  adapters: { live: string | null; liveStep: number | null; pinned: string | null; versions: number; lastRejection: { version: string; reason: string } | null; waiting: { version: string; reason: string } | null; lastRollback: RollbackReport | null };
  errors: { loop: string; message: string; at: string | null }[];
}


/** Main-line turns the `waitingFor…` counts look at, newest first. */
export const STATUS_WINDOW = 2_000;
/** Ids per `IN (…)` query. */
const IN_CHUNK = 500;

/** What status reads of a store (a `Store`; tests wrap one to see what is read). */
export type StatusStore = Pick<Store, "count" | "list" | "listFields" | "health">;

export interface StatusOptions {
  /** Default: the data directory's store, opened read-only. */
  store?: StatusStore;
  /** Default STATUS_WINDOW. */
  window?: number;
}

/** Rows of `table` whose `field` is one of `values`, `fields` only, in chunks of IN_CHUNK. */
async function rowsWithin<T extends TableName, K extends keyof Tables[T] & string>(
  store: StatusStore,
  table: T,
  field: keyof Tables[T] & string,
  values: string[],
  fields: readonly K[],
): Promise<Pick<Tables[T], K>[]> {
  const out: Pick<Tables[T], K>[] = [];
  for (let at = 0; at < values.length; at += IN_CHUNK) {
    const part = values.slice(at, at + IN_CHUNK);
    const sql = `${columnName(field)} IN (${part.map(sqlString).join(", ")})`;
    out.push(...(await store.listFields(table, fields, { sql } as QueryOptions<T>)));
  }
  return out;
}

/** The store's part of the report: totals by count, the waiting numbers over the newest main-line turns. */
async function storeCounts(store: StatusStore, window: number) {
  const [turns, mainTurns, nextStatesAll, nextStatesUnlinked, judgments] = await Promise.all([
    store.count("turns"),
    store.count("turns", { turnType: "main" }),
    store.count("next_states"),
    store.count("next_states", { turnId: null }),
    store.count("judgments"),
  ]);
  // The newest main-line turns, their ids and times only (latestFields: bounded queries by time).
  const latest = await latestFields(store, ["startedAt"], { table: "turns", timeField: "startedAt", limit: window, where: { turnType: "main" } });
  const ids = latest.rows.map((t) => t.id);
  const linked = new Set((await rowsWithin(store, "next_states", "turnId", ids, ["turnId"])).map((s) => s.turnId));
  const judged = new Map((await rowsWithin(store, "judgments", "turnId", ids, ["turnId", "score"])).map((j) => [j.turnId, j.score]));
  // A turn is trained by a step made after it: the steps since the window's oldest turn suffice.
  const oldest = latest.rows.at(-1)?.startedAt;
  const trained = new Set<string>();
  if (oldest) {
    const steps = await store.listFields("train_steps", ["sampleIds"], { sql: `created_at >= ${sqlString(oldest)}` });
    for (const s of steps) for (const id of s.sampleIds) trained.add(id);
  }
  return {
    turns,
    mainTurns,
    nextStates: nextStatesAll - nextStatesUnlinked,
    judgments,
    waitingForNextState: ids.filter((id) => !linked.has(id)).length,
    waitingForJudge: ids.filter((id) => linked.has(id) && !judged.has(id)).length,
    waitingForTraining: [...judged].filter(([id, score]) => score !== 0 && !trained.has(id)).length,
    window: { mainTurns: ids.length, complete: !latest.more || ids.length >= mainTurns },
  };
}

export async function collectStatus(config: Config, url: string, opts: StatusOptions = {}): Promise<StatusReport> {
  let live: { upstream?: { url: string; kind: string | null; health?: { ok: boolean; error: string | null } }; switchboard?: SwitchboardView } | null = null;
  let sidecarError: string | null = null;
  try {
    live = await controlCall(config, url, "GET", "/clawloop/v1/status");
  } catch (err) {
    if (!(err instanceof ControlApiError)) throw err;
    sidecarError = err.message;
  }

  const own = opts.store ? null : await Store.open({ dataDir: config.dataDir, writes: [] });
  const store: StatusStore = opts.store ?? own!;
  let counts: StatusReport["counts"];
  let rows: Pick<AdapterVersion, "id" | "version" | "dir" | "status" | "statusReason" | "pinned">[];
  let liveStep: number | null = null;
  const sb = live?.switchboard;
  try {
    counts = await storeCounts(store, opts.window ?? STATUS_WINDOW);
    // The versions' rows without their manifests (sample ids and file hashes); the live one's step.
    rows = await store.listFields("adapters", ["version", "dir", "status", "statusReason", "pinned"]);
    const liveId = sb?.live ?? rows.find((x) => x.status === "live")?.id;
    if (liveId) liveStep = (await store.listFields("adapters", ["manifest"], { where: { id: liveId }, limit: 1 }))[0]?.manifest.step ?? null;
  } finally {
    await own?.close();
  }
  const judgeStatus = readJudgeStatus(config.dataDir);
  const trainStatus = readTrainStatus(config.dataDir);
  const liveRow = rows.find((r) => r.id === (sb?.live ?? rows.find((x) => x.status === "live")?.id));
  const lastRejected = rows.filter((r) => r.status === "rejected").sort((a, b) => b.version - a.version)[0];
  const errors: StatusReport["errors"] = [];
  const health = live?.upstream?.health;
  if (health && !health.ok) errors.push({ loop: "serve", message: health.error ?? "the upstream does not answer", at: null });
  if (judgeStatus?.lastError) errors.push({ loop: "judge", message: judgeStatus.lastError.message, at: judgeStatus.lastError.at });
  if (trainStatus?.lastError) errors.push({ loop: "train", message: trainStatus.lastError.message, at: trainStatus.lastError.at });
  if (sb?.lastError) errors.push({ loop: "adapters", message: sb.lastError.message, at: sb.lastError.at });
  errors.sort((a, b) => (b.at ?? "").localeCompare(a.at ?? ""));
  return {
    dataDir: config.dataDir,
    sidecar: {
      url,
      running: live !== null,
      upstream: live?.upstream ? { url: live.upstream.url, kind: live.upstream.kind, ok: health?.ok ?? null, error: health?.error ?? null } : null,
      error: sidecarError,
    },
    counts,
    judge: { running: judgeStatus?.state === "running" && processAlive(judgeStatus.pid), status: judgeStatus },
    train: { running: trainStatus !== null && trainStatus.state !== "stopped" && trainStatus.state !== "failed" && processAlive(trainStatus.pid), status: trainStatus, paused: readTrainPause(config.dataDir) },
    adapters: {
      live: sb ? sb.live : (liveRow?.id ?? null),
      liveStep: liveRow ? liveStep : null,
      pinned: sb?.pinned ?? rows.find((r) => r.pinned)?.id ?? null,
      // Versions deleted by retention (adapters.keepVersions) keep their rows but are not counted.
      versions: rows.filter((r) => fs.existsSync(path.join(r.dir, "manifest.json"))).length,
      lastRejection: sb ? (sb.lastRejection ?? null) : lastRejected ? { version: lastRejected.id, reason: lastRejected.statusReason ?? "" } : null,
      waiting: sb?.waiting ?? null,
      lastRollback: sb?.lastRollback ?? null,
    },
    errors,
  };
}

/** A pause as one line: when, by whom (the trainer pauses itself after rejections) and why. */
function pausedText(p: TrainPause): string {
  const since = p.since ? ` since ${stamp(p.since)}` : "";
  const by = p.by && p.by !== "unknown" ? ` by ${p.by}` : "";
  return `PAUSED${since}${by}${p.reason ? `: ${p.reason}` : ""} (clawloop train resume)`;
}

function rollbackText(r: RollbackReport): string {
  const when = (iso: string | null) => (iso ? stamp(iso) : "?");
  if (r.state === "pending") return `to ${r.version}, asked at ${when(r.requestedAt)}, not live yet`;
  if (r.state === "done") return `to ${r.version} at ${when(r.at)}`;
  return `to ${r.version} FAILED at ${when(r.at)}: ${r.reason ?? "no reason given"}`;
}

export function formatStatus(s: StatusReport): string {
  const c = s.counts;
  const j = s.judge.status;
  const t = s.train.status;
  const up = s.sidecar.upstream;
  const lines = [
    `clawloop status (data ${s.dataDir})`,
    `serve     ${up ? `${up.url} (${up.kind ?? "kind unknown"}): ${up.ok === null ? "?" : up.ok ? "answers" : `NOT answering: ${up.error ?? ""}`}` : "unknown (the sidecar is not running)"}`,
    `collect   sidecar ${s.sidecar.running ? `running at ${s.sidecar.url}` : "not running"}; ${c.turns} turns (${c.mainTurns} main-line); waiting for a next state: ${c.waitingForNextState}`,
    `judge     ${s.judge.running ? "running" : j ? `not running (last: ${j.state})` : "never ran"}; waiting for a judge: ${c.waitingForJudge}; judged ${c.judgments}` +
      (j ? ` (+1: ${j.byScore["1"]}, 0: ${j.byScore["0"]}, −1: ${j.byScore["-1"]})` : ""),
    `train     ${s.train.running ? t!.state : t ? `not running (last: ${t.state})` : "never ran"}; waiting for training: ${t && s.train.running ? `${t.samplesWaiting} samples` : `${c.waitingForTraining} judged turns`}` +
      (t?.lastStep ? `; last step ${t.lastStep.step} → ${t.lastStep.version} (loss ${t.lastStep.loss.toFixed(4)}, reward ${t.lastStep.meanReward.toFixed(2)})` : "") +
      (s.train.paused ? `; ${pausedText(s.train.paused)}` : ""),
    `adapters  live: ${s.adapters.live ? `${s.adapters.live} (step ${s.adapters.liveStep ?? "?"})` : "the base model"}${s.adapters.pinned ? `, pinned to ${s.adapters.pinned}` : ""}; ${s.adapters.versions} versions` +
      (s.adapters.waiting ? `; waiting: ${s.adapters.waiting.version} (${s.adapters.waiting.reason})` : ""),
  ];
  if (!c.window.complete) lines.splice(3, 0, `          (waiting counts over the newest ${c.window.mainTurns} of ${c.mainTurns} main-line turns)`);
  if (t?.fallback) lines.splice(lines.findIndex((l) => l.startsWith("train ")) + 1, 0, `          fell back: ${fallbackText(t.fallback)} (${stamp(t.fallback.at)})`);
  // The trainer's memory: its base model is loaded only while it has work.
  if (s.train.running && t?.weights) lines.splice(lines.findIndex((l) => l.startsWith("train ")) + 1, 0, `          model ${t.model ?? "?"}: ${weightsText(t.weights)}`);
  if (s.adapters.lastRejection) lines.push(`          last rejected: ${s.adapters.lastRejection.version}: ${s.adapters.lastRejection.reason}`);
  if (s.adapters.lastRollback) lines.push(`          last rollback: ${rollbackText(s.adapters.lastRollback)}`);
  if (s.errors.length) {
    lines.push("errors");
    for (const e of s.errors) lines.push(`  ${e.loop.padEnd(8)} ${e.at ? `${stamp(e.at)} ` : ""}${e.message}`);
  } else lines.push("errors    none");
  return lines.join("\n") + "\n";
}

export function register(program: Command): void {
  withCommonOptions(
    program
      .command("status")
      .description("Show the four loops: turns waiting for a next state, for a judge, for training; the live adapter; the last errors.")
      .option("--url <url>", "the sidecar's base URL (default: the running `clawloop up`, else sidecar.host:port)")
      .option("--json", "print JSON"),
  ).action(async (flags: StatusFlags) => {
    const config = configFrom(flags);
    const report = await collectStatus(config, sidecarUrl(config, flags.url));
    const up = readUpFile(config.dataDir);
    if (flags.json) process.stdout.write(JSON.stringify({ ...report, up }, null, 2) + "\n");
    else process.stdout.write(formatStatus(report));
  });
}
