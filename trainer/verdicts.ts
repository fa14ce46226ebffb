// The switchboard's verdicts on adapter versions, as the trainer reads them: the sidecar records in
// the store's `adapters` table which versions it rejected (hashes, load, probe or log-prob check
// failed) and which passed the check and went live (`liveAt` set). The trainer must not build on
// a rejected version: that carries its damage forward, and the served model would never get the
// versions built on it either.
//
// A version is untrusted when it is rejected, or when it was never accepted and is linked, through
// parent links between versions that were never accepted, to a rejected one. So untrusted are:
//   - the rejected version,
//   - every version built on it (their weights contain its step), unless one of them passed the
//     check itself (then it and what grows from it are fine),
//   - the unchecked versions between the last accepted version and the rejected one (superseded
//     before they were loaded, or still waiting): the check measured the rejected version's whole
//     adapter, so the damage may have come in with any step since the last version that passed,
//     and continuing from an unchecked one could end in rejection after rejection.
// A version with no verdict (yet) is trusted: see trainer/loop.ts for why the trainer does not wait.
//
// A row is a verdict on the version of that name in this adapters directory only if it describes the
// same version (adapters/drivers/identity.ts): a lineage started over (the directory moved away after
// a base-model change, the data kept) numbers from v000001 again, and the old rows under those names
// say nothing about the new versions. Rows naming a version the directory does not know (neither on
// disk nor pruned) are kept: nothing says they are stale, and only the directory's versions are looked up.
import { sameVersion, type VersionIdentity } from "../adapters/index.js";
import type { Logger, Store } from "../core/index.js";
import { listAdapters, type AdaptersListing } from "./versions.js";

export interface Verdicts {
  /** Rejected versions and the switchboard's reason. */
  rejected: ReadonlyMap<string, string>;
  /** Versions that passed the check (went live at some point) and were not rejected since. */
  accepted: ReadonlySet<string>;
}

export const NO_VERDICTS: Verdicts = { rejected: new Map(), accepted: new Set() };

/** What the lineage needs of a version, present or deleted by retention. */
export interface LineageLink {
  version: number;
  parent: string | null;
}

/**
 * The verdicts in the `adapters` table on the versions in `adaptersDir` (none when the table does
 * not exist yet). Throws when it cannot be read. `listing`: the directory as read for this step
 * (listAdapters), so that one due step lists it and reads PRUNED.jsonl once; read here when not given.
 */
export async function readVerdicts(store: Pick<Store, "listFields">, adaptersDir: string, listing?: AdaptersListing): Promise<Verdicts> {
  const rows = await store.listFields("adapters", ["status", "statusReason", "liveAt", "manifest"], { sql: "status = 'rejected' OR live_at IS NOT NULL" });
  const rejected = new Map<string, string>();
  const accepted = new Set<string>();
  const written = rows.length ? writtenVersions(listing ?? listAdapters(adaptersDir)) : new Map<string, VersionIdentity>();
  for (const r of rows) {
    const here = written.get(r.id);
    if (here && r.manifest && !sameVersion(r.manifest, here)) continue; // a stale row: another version under this name
    if (r.status === "rejected") rejected.set(r.id, r.statusReason ?? "no reason recorded");
    else if (r.liveAt !== null) accepted.add(r.id);
  }
  return { rejected, accepted };
}

/** The versions this adapters directory has written, on disk or deleted by retention, by name. */
function writtenVersions(listing: AdaptersListing): Map<string, VersionIdentity> {
  const out = new Map<string, VersionIdentity>(listing.pruned());
  for (const v of listing.versions) out.set(v.name, v.manifest);
  return out;
}

/**
 * The verdicts, or `previous` when the table cannot be read now (the trainer then goes on with
 * what it knew: a rejection it has not seen yet is followed at a later step).
 */
export async function readVerdictsOr(
  store: Pick<Store, "listFields">,
  adaptersDir: string,
  previous: Verdicts,
  logger: Logger,
  listing?: AdaptersListing,
): Promise<Verdicts> {
  try {
    return await readVerdicts(store, adaptersDir, listing);
  } catch (err) {
    logger.warn({ err: (err as Error).message }, "could not read the switchboard's verdicts (adapters table); going on with the last ones read");
    return previous;
  }
}

/** Untrusted versions (see the top of this file), each with the rejected versions that make it so. */
export function untrustedVersions(links: ReadonlyMap<string, LineageLink>, verdicts: Verdicts): Map<string, string[]> {
  const out = new Map<string, string[]>();
  if (!verdicts.rejected.size) return out;
  const children = new Map<string, string[]>();
  for (const [name, link] of links) {
    if (link.parent === null) continue;
    const list = children.get(link.parent) ?? [];
    list.push(name);
    children.set(link.parent, list);
  }
  const open = (name: string) => verdicts.rejected.has(name) || !verdicts.accepted.has(name);
  for (const rejected of [...verdicts.rejected.keys()].sort()) {
    // Everything reachable from the rejected version without passing through an accepted one.
    const seen = new Set([rejected]);
    const stack = [rejected];
    while (stack.length) {
      const name = stack.pop()!;
      const causes = out.get(name) ?? [];
      causes.push(rejected);
      out.set(name, causes);
      const parent = links.get(name)?.parent ?? null;
      for (const next of [...(parent ? [parent] : []), ...(children.get(name) ?? [])]) {
        if (seen.has(next) || !open(next)) continue;
        seen.add(next);
        stack.push(next);
      }
    }
  }
  return out;
}
