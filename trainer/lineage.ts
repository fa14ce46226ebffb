// Which version the trainer continues from. Normally the newest; after a rollback the sidecar
// writes `<adapters>/HEAD.json` naming version V (adapters/drivers/lineage.ts), and the trainer
// continues from V instead: versions newer than V at that moment are abandoned, and new ones get
// the next free number with V (then each other) as parent.
//
// The trainer remembers the rollback it obeyed in `<data>/trainer/head.json` ({seq, version,
// above}: `above` is the newest version number that existed when it obeyed), so after a restart
// it continues from the newest version it wrote on top of V, not from V again, without
// comparing clocks between processes. It is written (`recordObeyed`) only once the version to
// continue from has been read: a rollback whose target cannot be read (a missing or corrupt file)
// stays new, so the trainer tries it again instead of growing the abandoned version meanwhile.
//
// Either way, it never continues from a version the switchboard rejected, nor from one that
// rejection makes untrusted (trainer/verdicts.ts): it goes back along the parents to the nearest
// version still trusted (the live one, as a rule), or starts a fresh adapter when there is none.
import fs from "node:fs";
import path from "node:path";
import { readHead, type Head } from "../adapters/index.js";
import { NO_VERDICTS, untrustedVersions, type LineageLink, type Verdicts } from "./verdicts.js";
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
  /** Set when this call follows a new rollback. */
  rolledBackTo: string | null;
  /**
   * The new rollback this tip follows, to be written with `recordObeyed` once the tip's files have
   * been read (or a fresh adapter made): until then HEAD.json stays new (null: nothing new).
   */
  obey: ObeyedHead | null;
  /** Set when HEAD names a version that does not exist (it is then ignored). */
  problem: string | null;
  /** Set when the version the lineage would continue from is untrusted, and `tip` is an older one. */
  passedOver: PassedOver | null;
}

export interface PassedOver {
  /** The version the lineage would have continued from. */
  version: string;
  /** The rejected versions that make it untrusted, and the switchboard's reasons. */
  rejected: { version: string; reason: string }[];
  /** The untrusted versions walked back over, newest first (`version` first). */
  abandoned: string[];
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

/** Records a rollback as obeyed: after a restart the trainer continues from what it wrote on top of it. */
export function recordObeyed(stateDir: string, obeyed: ObeyedHead): void {
  writeFileAtomic(obeyedHeadFile(stateDir), JSON.stringify(obeyed) + "\n");
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
export type PrunedLink = LineageLink;

/** Parent links of the versions on disk and of those deleted by retention (a version on disk wins). */
export function lineageLinks(versions: readonly VersionEntry[], pruned: ReadonlyMap<string, PrunedLink>): Map<string, LineageLink> {
  const links = new Map<string, LineageLink>();
  for (const [name, p] of pruned) links.set(name, { version: p.version, parent: p.parent });
  for (const v of versions) links.set(v.name, { version: v.version, parent: v.manifest.parent });
  return links;
}

export interface TipSources {
  /** Versions deleted by retention, by name: the lineage goes through them too. */
  pruned?: ReadonlyMap<string, PrunedLink>;
  /** The switchboard's verdicts (none: every version is trusted). */
  verdicts?: Verdicts;
}

/**
 * `pruned`: the walk from a version back to the rollback target (or to a trusted ancestor) goes
 * through versions deleted by retention too, so deleting a version in the middle of a lineage does
 * not cut it.
 */
export function resolveTip(versions: VersionEntry[], adaptersDir: string, stateDir: string, sources: TipSources = {}): Tip {
  const byName = new Map(versions.map((v) => [v.name, v]));
  const links = lineageLinks(versions, sources.pruned ?? new Map());
  const link = (name: string): PrunedLink | undefined => links.get(name);
  const lineage = followHead(versions, adaptersDir, stateDir, byName, link);
  if (!lineage.tip) return { ...lineage, passedOver: null };
  const verdicts = sources.verdicts ?? NO_VERDICTS;
  const untrusted = untrustedVersions(links, verdicts);
  if (!untrusted.has(lineage.tip.name)) return { ...lineage, passedOver: null };
  // Back along the parents to the nearest trusted version whose files are still there.
  const abandoned: string[] = [];
  const walked = new Set<string>();
  let name: string | null = lineage.tip.name;
  while (name !== null && (untrusted.has(name) || !byName.has(name)) && !walked.has(name)) {
    walked.add(name);
    if (untrusted.has(name)) abandoned.push(name);
    name = link(name)?.parent ?? null;
  }
  // (A parent loop in hand-edited manifests ends the walk: start afresh rather than loop forever.)
  if (name !== null && walked.has(name)) name = null;
  const causes = untrusted.get(lineage.tip.name)!;
  return {
    ...lineage,
    tip: name === null ? null : byName.get(name)!,
    passedOver: {
      version: lineage.tip.name,
      rejected: causes.map((v) => ({ version: v, reason: verdicts.rejected.get(v)! })),
      abandoned,
    },
  };
}

/** The tip by the newest version and HEAD.json alone. */
function followHead(
  versions: VersionEntry[],
  adaptersDir: string,
  stateDir: string,
  byName: ReadonlyMap<string, VersionEntry>,
  link: (name: string) => PrunedLink | undefined,
): Omit<Tip, "passedOver"> {
  const newest = versions.at(-1) ?? null;
  const head = readHead(adaptersDir);
  if (!head) return { tip: newest, rolledBackTo: null, obey: null, problem: null };
  let obeyed = readObeyed(stateDir);
  let obey: ObeyedHead | null = null;
  if (!sameHead(head, obeyed)) {
    if (!byName.has(head.version)) {
      return { tip: newest, rolledBackTo: null, obey: null, problem: `HEAD.json names ${head.version}, which is not a version in ${adaptersDir}; continuing from the newest` };
    }
    obeyed = obey = { seq: head.seq, version: head.version, above: newest?.version ?? 0 };
  }
  const root = byName.get(obeyed!.version);
  // Versions written after the rollback descend from its target through versions also written after it.
  const descends = (v: VersionEntry): boolean => {
    let name: string | null = v.name;
    for (let cur = link(name); cur && cur.version > obeyed!.above; cur = name ? link(name) : undefined) name = cur.parent;
    return name === obeyed!.version;
  };
  const after = versions.filter((v) => v.version > obeyed!.above && descends(v));
  const tip = after.at(-1) ?? root;
  if (!tip) return { tip: newest, rolledBackTo: null, obey: null, problem: `the rollback target ${obeyed!.version} no longer exists; continuing from the newest` };
  return { tip, rolledBackTo: obey?.version ?? null, obey, problem: null };
}
