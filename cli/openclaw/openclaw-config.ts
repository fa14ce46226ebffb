// OpenClaw's config file: where it is, how to read it (JSON5) and how to write it back.
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import JSON5 from "json5";

export type JsonObject = Record<string, unknown>;

export interface OpenClawPaths {
  stateDir: string;
  configPath: string;
}

/** As OpenClaw resolves them: `OPENCLAW_CONFIG_PATH`, else `<OPENCLAW_STATE_DIR or ~/.openclaw>/openclaw.json`. */
export function openclawPaths(env: NodeJS.ProcessEnv = process.env): OpenClawPaths {
  const stateDir = path.resolve(env.OPENCLAW_STATE_DIR?.trim() || path.join(os.homedir(), ".openclaw"));
  const configPath = path.resolve(env.OPENCLAW_CONFIG_PATH?.trim() || path.join(stateDir, "openclaw.json"));
  return { stateDir, configPath };
}

export class OpenClawConfigError extends Error {}

export interface ConfigFile {
  path: string;
  bytes: Buffer;
  sha256: string;
  mode: number;
  config: JsonObject;
}

export function sha256(bytes: Buffer | string): string {
  return crypto.createHash("sha256").update(bytes).digest("hex");
}

export function readConfigFile(file: string): ConfigFile {
  let bytes: Buffer;
  let mode: number;
  try {
    bytes = fs.readFileSync(file);
    mode = fs.statSync(file).mode & 0o777;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") {
      throw new OpenClawConfigError(
        `no OpenClaw config at ${file}. Set up OpenClaw first (\`openclaw onboard\` or \`openclaw configure\`), ` +
          `or point OPENCLAW_CONFIG_PATH / OPENCLAW_STATE_DIR at your config.`,
      );
    }
    throw err;
  }
  let config: unknown;
  try {
    config = JSON5.parse(bytes.toString("utf8"));
  } catch (err) {
    throw new OpenClawConfigError(`${file} is not valid JSON5: ${(err as Error).message}. Fix it (\`openclaw config validate\`) and try again.`);
  }
  if (!isObject(config)) throw new OpenClawConfigError(`${file} does not hold a JSON object`);
  return { path: file, bytes, sha256: sha256(bytes), mode, config };
}

/** Writes atomically (temp file + rename), keeping the file's permissions. */
export function writeFileAtomic(file: string, data: Buffer | string, mode: number): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.clawloop-${process.pid}.tmp`;
  fs.writeFileSync(tmp, data, { mode });
  fs.chmodSync(tmp, mode);
  fs.renameSync(tmp, file);
}

/** The config as OpenClaw itself writes it: two-space JSON with a trailing newline. */
export function formatConfig(config: JsonObject): string {
  return JSON.stringify(config, null, 2) + "\n";
}

export function isObject(v: unknown): v is JsonObject {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Finds `$include` anywhere: the installer edits one file and cannot follow includes. */
export function usesIncludes(v: unknown): boolean {
  if (Array.isArray(v)) return v.some(usesIncludes);
  if (!isObject(v)) return false;
  return Object.entries(v).some(([k, x]) => k === "$include" || usesIncludes(x));
}
