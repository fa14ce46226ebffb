// `clawloop status [--json]`: the four loops at a glance.
//   serve    the model server and whether it answers (from the sidecar, when it runs)
//   collect  turns recorded; main-line turns still waiting for a next state
//   judge    turns waiting for a judge, verdicts so far (the judge's status file)
//   train    samples waiting for training, the latest version (the trainer's status file)
//   adapters the live version and its step, the pin, the last rejection and why
//   errors   the newest error of each loop
// Counts come from the store (read-only), so they are right whether or not the loops run; live
// state (upstream health, the switchboard) comes from the running sidecar's /clawloop/v1/status.
import fs from "node:fs";
import path from "node:path";
import { Command } from "commander";
import { readTrainPause, Store, type AdapterVersion, type Config, type TrainPause } from "../../core/index.js";
import { readJudgeStatus, type JudgeStatus } from "../../judges/index.js";
import { readStatus as readTrainStatus, type TrainStatus } from "../../trainer/index.js";
import { configFrom, withCommonOptions, type CommonFlags } from "../shared.js";
import { ControlApiError, controlCall } from "./adapters.js";
import { readUpFile, sidecarUrl } from "./up.js";

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
  lastError?: { message: string; at: string } | null;
}

export interface StatusReport {
  dataDir: string;
  sidecar: { url: string; running: boolean; upstream: { url: string; kind: string | null; ok: boolean | null; error: string | null } | null; error: string | null };
  counts: {
    turns: number;
    mainTurns: number;
    nextStates: number;
    judgments: number;
    /** Main-line turns with no next state yet. */
    waitingForNextState: number;
    /** Main-line turns with a next state and no judgment. */
    waitingForJudge: number;
    /** Judged with a non-zero score and in no version's samples (the trainer's own count, when it runs, is `train.samplesWaiting`). */
    waitingForTraining: number;
  };
  judge: { running: boolean; status: JudgeStatus | null };
  train: { running: boolean; status: TrainStatus | null; paused: TrainPause | null };
  adapters: { live: string | null; liveStep: number | null; pinned: string | null; versions: number; lastRejection: { version: string; reason: string } | null; waiting: { version: string; reason: string } | null };
  errors: { loop: string; message: string; at: string | null }[];
}

function alive(pid: number | undefined): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

export async function collectStatus(config: Config, url: string): Promise<StatusReport> {
  let live: { upstream?: { url: string; kind: string | null; health?: { ok: boolean; error: string | null } }; switchboard?: SwitchboardView } | null = null;
  let sidecarError: string | null = null;
  try {
    live = await controlCall(config, url, "GET", "/clawloop/v1/status");
  } catch (err) {
    if (!(err instanceof ControlApiError)) throw err;
    sidecarError = err.message;
  }

  const store = await Store.open({ dataDir: config.dataDir, writes: [] });
  let turns = 0;
  let mainIds: string[] = [];
  let linked = new Set<string>();
  let judged = new Map<string, number>();
  let rows: AdapterVersion[] = [];
  try {
    turns = await store.count("turns");
    mainIds = (await store.list("turns", { where: { turnType: "main" } })).map((t) => t.id);
    linked = new Set((await store.list("next_states")).map((s) => s.turnId).filter((id): id is string => id !== null));
    judged = new Map((await store.list("judgments")).map((j) => [j.turnId, j.score]));
    rows = await store.list("adapters");
  } finally {
    await store.close();
  }
  const trainedIds = new Set(rows.flatMap((r) => r.manifest.sampleIds));
  const main = new Set(mainIds);
  const judgeStatus = readJudgeStatus(config.dataDir);
  const trainStatus = readTrainStatus(config.dataDir);
  const sb = live?.switchboard;
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
    counts: {
      turns,
      mainTurns: main.size,
      nextStates: linked.size,
      judgments: judged.size,
      waitingForNextState: mainIds.filter((id) => !linked.has(id)).length,
      waitingForJudge: mainIds.filter((id) => linked.has(id) && !judged.has(id)).length,
      waitingForTraining: [...judged].filter(([id, score]) => score !== 0 && main.has(id) && !trainedIds.has(id)).length,
    },
    judge: { running: judgeStatus?.state === "running" && alive(judgeStatus.pid), status: judgeStatus },
    train: { running: trainStatus !== null && trainStatus.state !== "stopped" && trainStatus.state !== "failed" && alive(trainStatus.pid), status: trainStatus, paused: readTrainPause(config.dataDir) },
    adapters: {
      live: sb ? sb.live : (liveRow?.id ?? null),
      liveStep: liveRow?.manifest.step ?? null,
      pinned: sb?.pinned ?? rows.find((r) => r.pinned)?.id ?? null,
      // Versions deleted by retention (adapters.keepVersions) keep their rows but are not counted.
      versions: rows.filter((r) => fs.existsSync(path.join(r.dir, "manifest.json"))).length,
      lastRejection: sb ? (sb.lastRejection ?? null) : lastRejected ? { version: lastRejected.id, reason: lastRejected.statusReason ?? "" } : null,
      waiting: sb?.waiting ?? null,
    },
    errors,
  };
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
      (s.train.paused ? `; PAUSED${s.train.paused.since ? ` since ${s.train.paused.since.replace("T", " ").slice(0, 19)}` : ""} (clawloop train resume)` : ""),
    `adapters  live: ${s.adapters.live ? `${s.adapters.live} (step ${s.adapters.liveStep ?? "?"})` : "the base model"}${s.adapters.pinned ? `, pinned to ${s.adapters.pinned}` : ""}; ${s.adapters.versions} versions` +
      (s.adapters.waiting ? `; waiting: ${s.adapters.waiting.version} (${s.adapters.waiting.reason})` : ""),
  ];
  if (s.adapters.lastRejection) lines.push(`          last rejected: ${s.adapters.lastRejection.version}: ${s.adapters.lastRejection.reason}`);
  if (s.errors.length) {
    lines.push("errors");
    for (const e of s.errors) lines.push(`  ${e.loop.padEnd(8)} ${e.at ? `${e.at.replace("T", " ").slice(0, 19)} ` : ""}${e.message}`);
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
