// The data directory's layout, in one place.
import fs from "node:fs";
import path from "node:path";
import crypto from "node:crypto";

export interface DataPaths {
  root: string;
  store: string;
  log: string;
  /** The sidecar's journal of answered calls not yet in the store (sidecar/journal.ts). */
  journal: string;
  adapters: string;
  token: string;
  config: string;
  /** Demo runs and other reports. */
  runs: string;
  /** Status files each loop writes for `clawloop status`. */
  loops: string;
  /** Present while training is paused (core/train-pause.ts). */
  trainPaused: string;
}

export function dataPaths(dataDir: string, adaptersDir?: string | null): DataPaths {
  const root = path.resolve(dataDir);
  return {
    root,
    store: path.join(root, "store"),
    log: path.join(root, "log"),
    journal: path.join(root, "journal"),
    adapters: adaptersDir ? path.resolve(adaptersDir) : path.join(root, "adapters"),
    token: path.join(root, "token"),
    config: path.join(root, "config.json"),
    runs: path.join(root, "runs"),
    loops: path.join(root, "loops"),
    trainPaused: path.join(root, "train.paused"),
  };
}

/** The control API's bearer token; created (mode 0600) on first use. */
export function readOrCreateToken(dataDir: string): string {
  const file = dataPaths(dataDir).token;
  try {
    const existing = fs.readFileSync(file, "utf8").trim();
    if (existing) return existing;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const token = crypto.randomBytes(24).toString("base64url");
  try {
    fs.writeFileSync(file, token + "\n", { mode: 0o600, flag: "wx" });
  } catch (err) {
    // Another process won the race: use its token.
    if ((err as NodeJS.ErrnoException).code === "EEXIST") return fs.readFileSync(file, "utf8").trim();
    throw err;
  }
  return token;
}
