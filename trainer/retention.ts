// Retention of adapter versions: every step writes a version directory (~30 MB for SmolLM2 at
// rank 8), so the trainer, which owns the directory, deletes old ones after each step. It keeps
// the newest `adapters.keepVersions` by number and, whatever their age, every version in use:
//   - live or pinned in the `adapters` table (the sidecar's switchboard records them there; a stale
//     "live" row of a sidecar that died counts too — when in doubt, keep),
//   - the version HEAD.json names (the last rollback target),
//   - the version the trainer continues from.
// The table is read from another process's writes, which reach LanceDB up to a second or two
// late, so a version is deleted only after it has been outside the kept set for
// `adapters.pruneGraceSec` on two looks: a pin made in between is seen before anything goes.
// If the table cannot be read at all, nothing is deleted.
//
// Deleting one version (crash-safe at every point; see adapters/drivers/pruned.ts):
//   record in PRUNED.jsonl (synced) → rename to `.trash-<name>-…` → remove the trash.
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { appendPruned, prunedRecord, readHead, TRASH_PREFIX } from "../adapters/index.js";
import type { Logger, Store } from "../core/index.js";
import type { TrainerState } from "./state.js";
import { listVersions, removeEntriesStartingWith, type VersionEntry } from "./versions.js";

export interface InUse {
  /** Live or pinned according to the adapters table. */
  table: readonly string[];
  /** HEAD.json's version (the last rollback target). */
  head: string | null;
  /** The version the trainer continues from. */
  tip: string | null;
}

/** The versions that stay: the newest `keep` of `names` by number, and every one in use. `keep` 0 keeps all. */
export function keepSet(names: readonly string[], keep: number, inUse: InUse): Set<string> {
  if (keep === 0) return new Set(names);
  const newest = [...names].sort().slice(-keep);
  const used = [...inUse.table, inUse.head, inUse.tip].filter((n): n is string => n !== null);
  return new Set([...newest, ...used.filter((n) => names.includes(n))]);
}

/** Versions that served before the live one whose optimizer state is kept (likely rollback targets). */
export const SERVED_STATES_KEPT = 2;

export interface TableView {
  /** Live or pinned. */
  inUse: string[];
  /** The versions that were live most recently before the current one, newest first. */
  served: string[];
}

/** What the adapters table says. Throws when the table cannot be read. */
export async function readTable(store: Pick<Store, "listFields">): Promise<TableView> {
  const rows = await store.listFields("adapters", ["status", "pinned", "liveAt"], { sql: "status = 'live' OR pinned = true OR live_at IS NOT NULL" });
  const inUse = rows.filter((r) => r.status === "live" || r.pinned).map((r) => r.id);
  const served = rows
    .filter((r) => r.liveAt !== null && !inUse.includes(r.id))
    .sort((a, b) => (a.liveAt! < b.liveAt! ? 1 : a.liveAt! > b.liveAt! ? -1 : 0))
    .slice(0, SERVED_STATES_KEPT)
    .map((r) => r.id);
  return { inUse, served };
}

/** Removes what interrupted deletes left behind (never visible as versions). */
export function removeTrash(adaptersDir: string): string[] {
  return removeEntriesStartingWith(adaptersDir, TRASH_PREFIX);
}

/** Fault injection for tests: called at the two points between which a crash is interesting. */
export interface PruneHooks {
  /** After the records are synced, before the version's rename. */
  beforeRename?: (name: string) => void;
  /** After the rename, before the trash is removed. */
  beforeRemove?: (name: string, trash: string) => void;
}

/** Deletes versions: records them, renames each out of sight, removes it. */
export function deleteVersions(adaptersDir: string, versions: VersionEntry[], hooks: PruneHooks = {}): void {
  if (!versions.length) return;
  const now = new Date().toISOString();
  appendPruned(adaptersDir, versions.map((v) => prunedRecord(v.manifest, now)));
  for (const v of versions) {
    hooks.beforeRename?.(v.name);
    const trash = path.join(adaptersDir, `${TRASH_PREFIX}${v.name}-${process.pid}-${crypto.randomBytes(3).toString("hex")}`);
    fs.renameSync(v.dir, trash);
    hooks.beforeRemove?.(v.name, trash);
    fs.rmSync(trash, { recursive: true, force: true });
  }
}

export interface RetentionOptions {
  adaptersDir: string;
  /** Newest versions kept; 0 keeps all. */
  keep: number;
  /** How long a version must have been prunable before it is deleted. */
  graceMs: number;
  logger?: Logger;
  hooks?: PruneHooks;
}

export interface PassResult {
  /** Deleted by this pass. */
  pruned: string[];
  /** Outside the kept set, deleted once their grace is over. */
  waiting: string[];
  /** Leftovers of interrupted deletes removed. */
  trash: string[];
}

export class Retention {
  /** Versions seen outside the kept set, and since when. */
  private readonly marked = new Map<string, number>();

  constructor(private readonly opts: RetentionOptions) {}

  /** Whether a pass would delete something now. No I/O: for the idle loop. */
  due(now = Date.now()): boolean {
    for (const at of this.marked.values()) if (now - at >= this.opts.graceMs) return true;
    return false;
  }

  /** One look at the directory with what is in use now: deletes what has been prunable long enough, marks the rest. */
  pass(inUse: InUse, now = Date.now()): PassResult {
    const { adaptersDir, keep, graceMs } = this.opts;
    const trash = removeTrash(adaptersDir);
    if (trash.length) this.opts.logger?.info({ trash }, "removed leftovers of interrupted version deletes");
    const versions = listVersions(adaptersDir);
    const kept = keepSet(versions.map((v) => v.name), keep, inUse);
    const victims = versions.filter((v) => !kept.has(v.name));
    const names = new Set(victims.map((v) => v.name));
    // Back in use (a pin, a rollback) or gone: forget the mark.
    for (const name of [...this.marked.keys()]) if (!names.has(name)) this.marked.delete(name);
    const ripe = victims.filter((v) => {
      const since = this.marked.get(v.name);
      if (since === undefined && graceMs > 0) this.marked.set(v.name, now);
      return graceMs === 0 || (since !== undefined && now - since >= graceMs);
    });
    deleteVersions(adaptersDir, ripe, this.opts.hooks);
    for (const v of ripe) this.marked.delete(v.name);
    if (ripe.length) this.opts.logger?.info({ pruned: ripe.map((v) => v.name), keep }, "pruned old adapter versions");
    return { pruned: ripe.map((v) => v.name), waiting: [...this.marked.keys()].sort(), trash };
  }
}

export interface RetainDeps {
  store: Pick<Store, "listFields">;
  adaptersDir: string;
  state: TrainerState;
  retention: Retention;
  /** The version the trainer continues from. */
  latest: VersionEntry | null;
  logger: Logger;
}

/**
 * What the trainer runs after each step: deletes old versions and optimizer states, keeping what
 * is in use. Optimizer states go sooner than versions: kept are the two newest, and those of the
 * versions a rollback most likely names (live, pinned, HEAD.json's, the ones that served last), so
 * training continues from such a rollback target with its own moments. Never throws: when the
 * adapters table cannot be read, nothing is deleted this time (null).
 */
export async function retainVersions(d: RetainDeps, now = Date.now()): Promise<PassResult | null> {
  try {
    const table = await readTable(d.store);
    const head = readHead(d.adaptersDir)?.version ?? null;
    d.state.prune(d.latest?.version ?? 0, 2, new Set([...table.inUse, ...table.served, ...(head ? [head] : [])]));
    return d.retention.pass({ table: table.inUse, head, tip: d.latest?.name ?? null }, now);
  } catch (err) {
    d.logger.warn({ err: (err as Error).message }, "adapter retention skipped this time (nothing deleted)");
    return null;
  }
}
