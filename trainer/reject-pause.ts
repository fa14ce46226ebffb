// Pausing training when the sidecar's switchboard rejects version after version. The trainer never
// builds on a rejected version (trainer/verdicts.ts), but when the check rejects EVERY version (a
// check wrong for this server, a broken conversion path, a model server that changed under us),
// it would keep training, being rejected and falling back, and each round spends samples on a
// version that is never served. After `train.pauseAfterRejections` rejections in a row it pauses
// instead (`<data>/train.paused`, core/train-pause.ts) with a reason the user can act on.
//
// The run, counted before each step:
//   - over the trainer's own versions in this adapters directory, on disk or deleted by retention
//     (PRUNED.jsonl), newest version number first; rows of the `adapters` table naming any other
//     version (a directory moved away, a version deleted by hand) are not looked at;
//   - a rejected version counts, also one abandoned earlier (built on a rejected one, or left by a
//     rollback) and one deleted by retention since: each is a version the switchboard would not serve;
//   - a version that passed the check (went live) ends the run: the switchboard can serve this
//     trainer's versions;
//   - a version with no verdict (not checked yet, overtaken before it was loaded, never seen by a
//     sidecar) neither counts nor ends the run: the switchboard only checks the newest version, so
//     the ones it overtakes never get a verdict, and the newest is usually still being checked when
//     the next step comes. So the run is "the last N verdicts were all rejections";
//   - only versions numbered above the one remembered at the last such pause count (below).
//
// Not pausing again for the same run after the user resumed: at the pause the trainer remembers the
// highest version number written so far (`<data>/trainer/reject-pause.json`), and the next run is
// counted over higher numbers only. Version numbers are never reused (pruned ones stay taken) and
// no version is written while paused, so "above that number" is exactly "written after the resume",
// across restarts and without comparing clocks. The pause file is written first, the number second:
// a crash between the two costs at most one more pause for the same run, never a missed one.
import fs from "node:fs";
import path from "node:path";
import { pauseTraining, type Logger, type TrainPause } from "../core/index.js";
import type { Verdicts } from "./verdicts.js";
import { listAdapters, versionName, writeFileAtomic, type AdaptersListing } from "./versions.js";

export interface Rejection {
  version: string;
  reason: string;
}

/** What the trainer keeps of its last pause for rejections. */
export interface RejectPauseMemory {
  /** Versions up to this number were counted: only higher ones count towards the next pause. */
  countedThrough: number;
  /** The rejected versions the pause named. */
  versions: string[];
  at: string;
}

export function rejectPauseFile(stateDir: string): string {
  return path.join(stateDir, "reject-pause.json");
}

/**
 * The newest `n` rejections of the run (oldest first) when the last `n` verdicts on `versions`
 * numbered above `after` are all rejections; otherwise null. `n` 0: never.
 */
export function rejectionRun(versions: Iterable<string>, verdicts: Verdicts, n: number, after = 0): Rejection[] | null {
  if (n <= 0 || verdicts.rejected.size < n) return null;
  const newestFirst = [...new Set(versions)].map((name) => ({ name, version: Number(name.slice(1)) })).filter((v) => v.version > after).sort((a, b) => b.version - a.version);
  const run: Rejection[] = [];
  for (const { name } of newestFirst) {
    const reason = verdicts.rejected.get(name);
    if (reason !== undefined) run.push({ version: name, reason });
    else if (verdicts.accepted.has(name)) break;
    if (run.length === n) return run.reverse();
  }
  return null;
}

export function rejectPauseReason(run: readonly Rejection[]): string {
  const list = run.map((r) => `${r.version}: ${r.reason}`).join("; ");
  return (
    `the sidecar rejected the last ${run.length} adapter versions it checked (${list}); training is paused so that no more ` +
    "samples are spent on versions that will not be served. Check the model server and the rejection reasons " +
    "(clawloop status, /clawloop/v1/status), then run `clawloop train resume`."
  );
}

/** The memory of the last pause for rejections; null when there is none (or it is unreadable: then the safe side, counting everything). */
export function readRejectPauseMemory(stateDir: string, logger?: Logger): RejectPauseMemory | null {
  let text: string;
  try {
    text = fs.readFileSync(rejectPauseFile(stateDir), "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") logger?.warn({ err: (err as Error).message }, "could not read the trainer's last pause for rejections; counting every version");
    return null;
  }
  try {
    const m = JSON.parse(text) as Partial<RejectPauseMemory>;
    if (typeof m.countedThrough === "number" && Number.isInteger(m.countedThrough) && m.countedThrough >= 0) {
      return { countedThrough: m.countedThrough, versions: Array.isArray(m.versions) ? m.versions.map(String) : [], at: String(m.at ?? "") };
    }
  } catch {
    // Reported below.
  }
  logger?.warn({ file: rejectPauseFile(stateDir) }, "the trainer's last pause for rejections is unreadable; counting every version");
  return null;
}

export interface RejectPauseContext {
  dataDir: string;
  adaptersDir: string;
  /** The trainer's state directory (trainer/state.ts), where the memory of the last pause is kept. */
  stateDir: string;
  /** train.pauseAfterRejections (0: never). */
  pauseAfter: number;
  logger: Logger;
}

/**
 * Pauses training when the last `pauseAfter` verdicts on this trainer's versions (not yet counted at an
 * earlier pause) are all rejections, and returns the pause; null otherwise. `verdicts`: as just read;
 * `listing`: the adapters directory as read for this step (listAdapters; read here when not given).
 */
export function pauseOnRejections(ctx: RejectPauseContext, verdicts: Verdicts, listing?: AdaptersListing): TrainPause | null {
  // Cheap way out before touching the disk: most steps see no (or too few) rejections.
  if (ctx.pauseAfter <= 0 || verdicts.rejected.size < ctx.pauseAfter) return null;
  const { versions, pruned } = listing ?? listAdapters(ctx.adaptersDir);
  const names = [...versions.map((v) => v.name), ...pruned().keys()];
  const newest = names.reduce((n, name) => Math.max(n, Number(name.slice(1))), 0);
  let memory = readRejectPauseMemory(ctx.stateDir, ctx.logger);
  if (memory && memory.countedThrough > newest) {
    // The adapters directory started over (moved away): its numbers begin again, so the old mark
    // would hide the new versions' rejections.
    ctx.logger.info({ countedThrough: versionName(memory.countedThrough), newest: newest ? versionName(newest) : null }, "forgetting the last pause for rejections: the adapters directory started over");
    fs.rmSync(rejectPauseFile(ctx.stateDir), { force: true });
    memory = null;
  }
  const run = rejectionRun(names, verdicts, ctx.pauseAfter, memory?.countedThrough ?? 0);
  if (!run) return null;
  const reason = rejectPauseReason(run);
  const pause = pauseTraining(ctx.dataDir, "trainer", reason);
  ctx.logger.error({ rejected: run, pausedBy: pause.by }, reason);
  // Someone else's pause that landed just now stays as it is; this run then pauses again after
  // their resume, with its own reason (it is not marked as counted).
  if (pause.by !== "trainer" || pause.reason !== reason) return pause;
  const mark: RejectPauseMemory = { countedThrough: newest, versions: run.map((r) => r.version), at: pause.since };
  writeFileAtomic(rejectPauseFile(ctx.stateDir), JSON.stringify(mark) + "\n");
  return pause;
}
