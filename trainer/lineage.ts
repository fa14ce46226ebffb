// Which version the trainer continues from. Normally the newest; after a rollback the sidecar
// writes `<adapters>/HEAD.json` naming version V (adapters/drivers/lineage.ts), and the trainer
// continues from V instead: versions newer than V at that moment are abandoned, and new ones get
// the next free number with V (then each other) as parent.
//
// The trainer remembers the rollback it obeyed in `<data>/trainer/head.json` ({seq, version,
// above}: `above` is the newest version number that existed when it obeyed), so after a restart
// it continues from the newest version it wrote on top of V, not from V again, without
// comparing clocks between processes.
import fs from "node:fs";
import path from "node:path";
import { readHead, type Head } from "../adapters/index.js";
import type { VersionEntry } from "./versions.js";
import { writeFileAtomic } from "./versions.js";

export interface ObeyedHead {
  seq: number;
  version: string;
  above: number;
}

export interface Tip {
  /** The version to continue from (null: none yet, start a fresh adapter). */
  tip: VersionEntry | null;
  /** Set when a new rollback was obeyed by this call. */
  rolledBackTo: string | null;
  /** Set when HEAD names a version that does not exist (it is then ignored). */
  problem: string | null;
}

export function obeyedHeadFile(stateDir: string): string {
  return path.join(stateDir, "head.json");
}

function readObeyed(stateDir: string): ObeyedHead | null {
  try {
    return JSON.parse(fs.readFileSync(obeyedHeadFile(stateDir), "utf8")) as ObeyedHead;
  } catch {
    return null;
  }
}

export function sameHead(a: Head | null, b: ObeyedHead | null): boolean {
  return a === null ? b === null : b !== null && a.seq === b.seq && a.version === b.version;
}

/** The head the sidecar wrote, if it differs from the one obeyed last (null: nothing new). */
export function newHead(adaptersDir: string, stateDir: string): Head | null {
  const head = readHead(adaptersDir);
  return head && !sameHead(head, readObeyed(stateDir)) ? head : null;
}

/** What the lineage walk needs of a version deleted by retention (adapters/drivers/pruned.ts). */
export interface PrunedLink {
  version: number;
  parent: string | null;
}

/**
 * `pruned`: versions deleted by retention, by name. The walk from a version back to the rollback
 * target goes through them too, so deleting a version in the middle of a lineage does not cut it.
 */
export function resolveTip(versions: VersionEntry[], adaptersDir: string, stateDir: string, pruned: ReadonlyMap<string, PrunedLink> = new Map()): Tip {
  const newest = versions.at(-1) ?? null;
  const head = readHead(adaptersDir);
  if (!head) return { tip: newest, rolledBackTo: null, problem: null };
  const byName = new Map(versions.map((v) => [v.name, v]));
  let obeyed = readObeyed(stateDir);
  let rolledBackTo: string | null = null;
  if (!sameHead(head, obeyed)) {
    if (!byName.has(head.version)) {
      return { tip: newest, rolledBackTo: null, problem: `HEAD.json names ${head.version}, which is not a version in ${adaptersDir}; continuing from the newest` };
    }
    obeyed = { seq: head.seq, version: head.version, above: newest?.version ?? 0 };
    writeFileAtomic(obeyedHeadFile(stateDir), JSON.stringify(obeyed) + "\n");
    rolledBackTo = head.version;
  }
  const root = byName.get(obeyed!.version);
  const link = (name: string): PrunedLink | undefined => {
    const v = byName.get(name);
    return v ? { version: v.version, parent: v.manifest.parent } : pruned.get(name);
  };
  // Versions written after the rollback descend from its target through versions also written after it.
  const descends = (v: VersionEntry): boolean => {
    let name: string | null = v.name;
    for (let cur = link(name); cur && cur.version > obeyed!.above; cur = name ? link(name) : undefined) name = cur.parent;
    return name === obeyed!.version;
  };
  const after = versions.filter((v) => v.version > obeyed!.above && descends(v));
  const tip = after.at(-1) ?? root;
  if (!tip) return { tip: newest, rolledBackTo: null, problem: `the rollback target ${obeyed!.version} no longer exists; continuing from the newest` };
  return { tip, rolledBackTo, problem: null };
}
