// Whether two records describe the same written adapter version. The name alone does not say so: a
// lineage started over (the adapters directory moved away, the data kept) numbers its versions from
// v000001 again, while the store's `adapters` table still holds the old rows under those names.
import type { AdapterManifest } from "../../core/index.js";

/** What every version writer sets; `files` is absent in a record of a pruned version (PRUNED.jsonl). */
export type VersionIdentity = Pick<AdapterManifest, "name" | "createdAt" | "baseModelHash"> & { files?: Record<string, string> };

/** Same name, same write time, same base, and (when both records have them) the same file hashes. */
export function sameVersion(a: VersionIdentity, b: VersionIdentity): boolean {
  if (a.name !== b.name || a.createdAt !== b.createdAt || a.baseModelHash !== b.baseModelHash) return false;
  if (!a.files || !b.files) return true;
  const names = Object.keys(a.files);
  return names.length === Object.keys(b.files).length && names.every((f) => a.files![f] === b.files![f]);
}
