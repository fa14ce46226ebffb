// Pausing training: `<data>/train.paused` exists while training is paused. The CLI
// (`clawloop train pause|resume`) and the sidecar's control API (`POST /clawloop/v1/train/pause`,
// `/resume`) write it; the train loop looks before every step and starts none while it exists (the
// step in progress finishes). A file, not a message to a process: it works whether or not the
// trainer or the sidecar runs, and a pause survives their restarts.
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { dataPaths } from "./paths.js";

export interface TrainPause {
  /** When training was paused. */
  since: string;
  /** Who paused it: "cli", "api", … */
  by: string;
  reason: string | null;
}

/** The pause, or null when training is not paused. A flag file that cannot be read still means paused. */
export function readTrainPause(dataDir: string): TrainPause | null {
  const file = dataPaths(dataDir).trainPaused;
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    return { since: "", by: "unknown", reason: `${file} is unreadable: ${(err as Error).message}` };
  }
  try {
    const p = JSON.parse(text) as Partial<TrainPause>;
    return { since: String(p.since ?? ""), by: String(p.by ?? "unknown"), reason: typeof p.reason === "string" ? p.reason : null };
  } catch {
    return { since: "", by: "unknown", reason: null };
  }
}

/** Pauses training (atomically: a temporary file renamed into place). Pausing again keeps the first pause. */
export function pauseTraining(dataDir: string, by: string, reason: string | null = null): TrainPause {
  const existing = readTrainPause(dataDir);
  if (existing) return existing;
  const file = dataPaths(dataDir).trainPaused;
  const pause: TrainPause = { since: new Date().toISOString(), by, reason };
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.${crypto.randomBytes(4).toString("hex")}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(pause) + "\n");
  fs.renameSync(tmp, file);
  return pause;
}

/** Lets training go on; returns the pause it ended (null: it was not paused). */
export function resumeTraining(dataDir: string): TrainPause | null {
  const existing = readTrainPause(dataDir);
  fs.rmSync(dataPaths(dataDir).trainPaused, { force: true });
  return existing;
}
