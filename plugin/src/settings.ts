// The plugin's settings: `plugins.entries.clawloop.config` (validated by OpenClaw against the
// manifest's configSchema), with defaults. `clawloop openclaw install` writes sidecarUrl and dataDir.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

export interface Settings {
  /** Base URL of the sidecar, without `/v1` (its control API lives under `/clawloop/`). */
  sidecarUrl: string;
  /** clawloop's data directory; the control token is read from `<dataDir>/token`. */
  dataDir: string | null;
  /** The control token itself, when it is not read from the data directory. */
  token: string | null;
  /** The plugin's own files: `spool/` (events not delivered yet) and `sessions/` (each session's last turn). */
  workDir: string;
  /** Also put the ids into the request body as `metadata` (some servers reject unknown fields). */
  bodyMetadata: boolean;
  /** Keep `/good` and `/bad` messages out of the transcript the model sees. */
  hideFeedbackCommands: boolean;
  /** Count emoji reactions (delivered by channels as system events) as feedback. */
  reactions: boolean;
  retryMaxMs: number;
}

export const DEFAULT_SIDECAR_URL = "http://127.0.0.1:11435";

function str(v: unknown): string | null {
  return typeof v === "string" && v.trim() ? v.trim() : null;
}

/** OpenClaw's state directory, as OpenClaw resolves it (OPENCLAW_STATE_DIR, else ~/.openclaw). */
export function openclawStateDir(env: NodeJS.ProcessEnv = process.env): string {
  return str(env.OPENCLAW_STATE_DIR) ?? path.join(os.homedir(), ".openclaw");
}

export function resolveSettings(raw: Record<string, unknown> | undefined, stateDir: string): Settings {
  const cfg = raw ?? {};
  const dataDir = str(cfg.dataDir);
  return {
    sidecarUrl: (str(cfg.sidecarUrl) ?? DEFAULT_SIDECAR_URL).replace(/\/+$/, "").replace(/\/v1$/, ""),
    dataDir: dataDir ? path.resolve(dataDir) : null,
    token: str(cfg.token),
    workDir: path.resolve(str(cfg.workDir) ?? path.join(stateDir, "clawloop")),
    bodyMetadata: cfg.bodyMetadata === true,
    hideFeedbackCommands: cfg.hideFeedbackCommands !== false,
    reactions: cfg.reactions !== false,
    retryMaxMs: typeof cfg.retryMaxMs === "number" && cfg.retryMaxMs > 0 ? cfg.retryMaxMs : 15_000,
  };
}

/** Reads the control token: from the settings, else `<dataDir>/token`; null while there is none. */
export function readToken(settings: Settings): string | null {
  if (settings.token) return settings.token;
  if (!settings.dataDir) return null;
  try {
    return fs.readFileSync(path.join(settings.dataDir, "token"), "utf8").trim() || null;
  } catch {
    return null;
  }
}
