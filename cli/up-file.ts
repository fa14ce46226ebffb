// Where the running loops listen: `<data>/loops/up.json`, written by `clawloop up` and read by the
// commands that talk to its sidecar (status, adapters, dashboard). Kept apart from up.ts so that
// those commands do not load the engine and the judges to find an address.
import fs from "node:fs";
import path from "node:path";
import { dataPaths, processAlive, type Config } from "../core/index.js";

/** `<data>/loops/up.json`: what `clawloop up` started, for the other commands. */
export interface UpFile {
  pid: number;
  sidecar: string;
  engine: string | null;
  upstream: string;
  model: string | null;
  trainerPid: number | null;
  startedAt: string;
}

export function upFile(dataDir: string): string {
  return path.join(dataPaths(dataDir).loops, "up.json");
}

/** The running `clawloop up` of this data directory, if any. */
export function readUpFile(dataDir: string): UpFile | null {
  try {
    const up = JSON.parse(fs.readFileSync(upFile(dataDir), "utf8")) as UpFile;
    return typeof up.pid === "number" && processAlive(up.pid) ? up : null;
  } catch {
    return null;
  }
}

/** A sidecar's address as a client on this machine reaches it: "everywhere" becomes loopback. */
export function localUrl(host: string, port: number): string {
  const h = host === "0.0.0.0" || host === "" ? "127.0.0.1" : host === "::" ? "::1" : host;
  return `http://${h.includes(":") ? `[${h}]` : h}:${port}`;
}

/** The sidecar's base URL: the one given, else the running `up`'s, else the configured address. */
export function sidecarUrl(config: Config, explicit?: string): string {
  if (explicit) return explicit.replace(/\/+$/, "");
  return readUpFile(config.dataDir)?.sidecar ?? localUrl(config.sidecar.host, config.sidecar.port);
}
