// The judge loop's status file, `<data>/loops/judge.json`, read by `clawloop status`.
import fs from "node:fs";
import path from "node:path";
import { dataPaths } from "../core/index.js";

export interface JudgeStatus {
  loop: "judge";
  state: "running" | "stopped";
  pid: number;
  startedAt: string;
  updatedAt: string;
  /** e.g. "rules+prm", "logprob", "rules". */
  judge: string;
  endpoint: string | null;
  /** Turns with a next state and no judgment yet: ready + settling + retrying + in flight. */
  waiting: number;
  ready: number;
  /** Waiting for more next states (tool results still arriving). */
  settling: number;
  /** Failed before; waiting for their next attempt. */
  retrying: number;
  inFlight: number;
  /** Judgments in the store. */
  judged: number;
  judgedThisRun: number;
  /** Judgments rewritten because explicit feedback came after them. */
  overriddenThisRun: number;
  failuresThisRun: number;
  /** Main turns whose session ended with no next state, left unscored (`judge.sessionEnd: "skip"`). */
  unscoredSessionEnd: number;
  byScore: { "1": number; "0": number; "-1": number };
  lastJudgedAt: string | null;
  lastError: { message: string; at: string; turnId: string | null } | null;
}

export function judgeStatusFile(dataDir: string): string {
  return path.join(dataPaths(dataDir).loops, "judge.json");
}

/** Written to a temporary name and renamed, so readers never see half a file. */
export function writeJudgeStatus(dataDir: string, status: JudgeStatus): void {
  const file = judgeStatusFile(dataDir);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(status, null, 2) + "\n");
  fs.renameSync(tmp, file);
}

/** The last status the loop wrote, or null when it never ran here. */
export function readJudgeStatus(dataDir: string): JudgeStatus | null {
  try {
    return JSON.parse(fs.readFileSync(judgeStatusFile(dataDir), "utf8")) as JudgeStatus;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw err;
  }
}
