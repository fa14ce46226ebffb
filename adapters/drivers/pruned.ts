// Versions deleted by the trainer's retention (adapters.keepVersions): `<adapters>/PRUNED.jsonl`,
// one line per pruned version, appended (and synced) BEFORE its directory goes. The directory is
// then renamed to `.trash-<name>-…` — from that instant it is no version to anyone (the watcher,
// the switchboard, `adapters list`) — and removed; a crash leaves at most a `.trash-` directory,
// removed on the next pass. The record keeps what outlives the files: the samples the version was
// trained on (so a restarted trainer trains none of them again), its parent (lineage after a
// rollback) and its number (never reused).
import fs from "node:fs";
import path from "node:path";
import type { AdapterManifest } from "../../core/index.js";

export const PRUNED_FILE = "PRUNED.jsonl";
export const TRASH_PREFIX = ".trash-";

export interface PrunedVersion {
  name: string;
  version: number;
  parent: string | null;
  step: number;
  baseModelHash: string;
  sampleIds: string[];
  createdAt: string;
  prunedAt: string;
}

export function prunedRecord(manifest: AdapterManifest, prunedAt = new Date().toISOString()): PrunedVersion {
  return {
    name: manifest.name,
    version: manifest.version,
    parent: manifest.parent,
    step: manifest.step,
    baseModelHash: manifest.baseModelHash,
    sampleIds: manifest.sampleIds,
    createdAt: manifest.createdAt,
    prunedAt,
  };
}

/** Pruned versions by name (the last record of a name wins; a torn last line is ignored). */
export function readPruned(adaptersDir: string): Map<string, PrunedVersion> {
  const out = new Map<string, PrunedVersion>();
  let text: string;
  try {
    text = fs.readFileSync(path.join(adaptersDir, PRUNED_FILE), "utf8");
  } catch {
    return out;
  }
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    try {
      const r = JSON.parse(line) as PrunedVersion;
      if (typeof r.name === "string" && /^v\d{6}$/.test(r.name) && Array.isArray(r.sampleIds)) out.set(r.name, r);
    } catch {
      // A line torn by a crash mid-append: its version was not renamed away yet, so nothing is lost.
    }
  }
  return out;
}

/** Appends records and syncs them to disk before returning. */
export function appendPruned(adaptersDir: string, records: PrunedVersion[]): void {
  if (!records.length) return;
  const file = path.join(adaptersDir, PRUNED_FILE);
  const fd = fs.openSync(file, "a+");
  try {
    // After a torn line, start on a fresh one so this record stays readable.
    const size = fs.fstatSync(fd).size;
    let lead = "";
    if (size > 0) {
      const last = Buffer.alloc(1);
      fs.readSync(fd, last, 0, 1, size - 1);
      if (last[0] !== 0x0a) lead = "\n";
    }
    fs.writeSync(fd, lead + records.map((r) => JSON.stringify(r)).join("\n") + "\n");
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
