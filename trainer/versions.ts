// Adapter versions on disk: `<adapters>/v<NNNNNN>/`, each written under a temporary name and
// renamed into place, never changed afterwards. The manifests (and, for versions deleted by
// retention, their records in PRUNED.jsonl) are the single source of truth for which samples have
// been trained on, so a restart reuses none and skips none.
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { readPruned, type PrunedVersion } from "../adapters/index.js";
import type { AdapterManifest } from "../core/index.js";

const VERSION_DIR = /^v(\d{6})$/;
const TMP_PREFIX = ".tmp-";

export function versionName(version: number): string {
  if (!Number.isInteger(version) || version < 1 || version > 999_999) throw new Error(`bad adapter version ${version}`);
  return `v${String(version).padStart(6, "0")}`;
}

export interface VersionEntry {
  version: number;
  name: string;
  dir: string;
  manifest: AdapterManifest;
}

/** Complete versions in `root`, oldest first. A directory without a readable manifest is not a version. */
export function listVersions(root: string): VersionEntry[] {
  let names: string[];
  try {
    names = fs.readdirSync(root);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
  const out: VersionEntry[] = [];
  for (const name of names) {
    const m = VERSION_DIR.exec(name);
    if (!m) continue;
    const dir = path.join(root, name);
    const manifest = readManifest(dir);
    if (manifest) out.push({ version: Number(m[1]), name, dir, manifest });
  }
  return out.sort((a, b) => a.version - b.version);
}

/**
 * The adapters directory as read for one due training step: its versions, listed once, and its
 * record of versions deleted by retention (PRUNED.jsonl), read once on first use (many steps need
 * it not at all). The verdicts, the lineage and the reject-pause check all take it from here.
 */
export interface AdaptersListing {
  readonly versions: VersionEntry[];
  pruned(): ReadonlyMap<string, PrunedVersion>;
}

/** How a listing reads the directory: the defaults, or a test's seam (to count reads). */
export interface ListingReaders {
  listVersions?: (adaptersDir: string) => VersionEntry[];
  readPruned?: (adaptersDir: string) => Map<string, PrunedVersion>;
}

export function listAdapters(adaptersDir: string, readers: ListingReaders = {}): AdaptersListing {
  const versions = (readers.listVersions ?? listVersions)(adaptersDir);
  let pruned: Map<string, PrunedVersion> | undefined;
  return { versions, pruned: () => (pruned ??= (readers.readPruned ?? readPruned)(adaptersDir)) };
}

export function readManifest(dir: string): AdapterManifest | null {
  try {
    return JSON.parse(fs.readFileSync(path.join(dir, "manifest.json"), "utf8")) as AdapterManifest;
  } catch {
    return null;
  }
}

/** How many times each sample id appears in these manifests (of versions, and of pruned versions' records). */
export function trainedCounts(manifests: Iterable<{ sampleIds: readonly string[] }>): Map<string, number> {
  const counts = new Map<string, number>();
  for (const m of manifests) for (const id of m.sampleIds) counts.set(id, (counts.get(id) ?? 0) + 1);
  return counts;
}

/** Leftovers of writes that were interrupted (never visible as versions). */
export function removeTemporaries(root: string): string[] {
  return removeEntriesStartingWith(root, TMP_PREFIX);
}

/** Removes the entries of `root` whose names start with `prefix`; returns their names. */
export function removeEntriesStartingWith(root: string, prefix: string): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(root);
  } catch {
    return [];
  }
  const removed = names.filter((n) => n.startsWith(prefix));
  for (const n of removed) fs.rmSync(path.join(root, n), { recursive: true, force: true });
  return removed;
}

export function sha256File(file: string): string {
  return crypto.createHash("sha256").update(fs.readFileSync(file)).digest("hex");
}

function fsyncPath(p: string): void {
  let fd: number | null = null;
  try {
    fd = fs.openSync(p, "r");
    fs.fsyncSync(fd);
  } catch {
    // Some filesystems refuse fsync on directories; the rename is still atomic.
  } finally {
    if (fd !== null) fs.closeSync(fd);
  }
}

/**
 * Writes `bytes` to `file` through a temporary name, so readers see the old or the new file only.
 * `fsync` (default) also makes it survive a power loss, not just the death of the process.
 */
export function writeFileAtomic(file: string, bytes: string | Uint8Array, opts: { fsync?: boolean } = {}): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  const fd = fs.openSync(tmp, "w");
  try {
    fs.writeSync(fd, typeof bytes === "string" ? Buffer.from(bytes) : bytes);
    if (opts.fsync ?? true) fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
}

export type ManifestFields = Omit<AdapterManifest, "files" | "createdAt" | "name" | "version">;

/**
 * Writes a complete adapter directory at `target` atomically: `writeFiles` fills a temporary
 * sibling directory, every file is hashed into `manifest.json`, everything is synced, and the
 * directory is renamed into place. `target` must not exist.
 */
export async function writeAdapterDir(
  target: string,
  identity: { version: number; name: string },
  fields: ManifestFields,
  writeFiles: (dir: string) => Promise<void> | void,
  beforeRename?: () => void,
): Promise<AdapterManifest> {
  const tmp = openAdapterDir(target);
  try {
    await writeFiles(tmp);
    return sealAdapterDir(tmp, target, identity, fields, beforeRename);
  } catch (err) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
}

/** writeAdapterDir for files written synchronously (test support writes versions this way): the same steps and format. */
export function writeAdapterDirSync(
  target: string,
  identity: { version: number; name: string },
  fields: ManifestFields,
  writeFiles: (dir: string) => void,
  beforeRename?: () => void,
): AdapterManifest {
  const tmp = openAdapterDir(target);
  try {
    writeFiles(tmp);
    return sealAdapterDir(tmp, target, identity, fields, beforeRename);
  } catch (err) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
}

/** The temporary sibling directory a version is written into. */
function openAdapterDir(target: string): string {
  const parent = path.dirname(target);
  fs.mkdirSync(parent, { recursive: true });
  if (fs.existsSync(target)) throw new Error(`${target} already exists; adapter directories are never overwritten`);
  const tmp = path.join(parent, `${TMP_PREFIX}${path.basename(target)}-${process.pid}-${crypto.randomBytes(4).toString("hex")}`);
  fs.mkdirSync(tmp);
  return tmp;
}

/** Hashes the files of `tmp` into its manifest, syncs everything and renames it to `target`. */
function sealAdapterDir(
  tmp: string,
  target: string,
  identity: { version: number; name: string },
  fields: ManifestFields,
  beforeRename?: () => void,
): AdapterManifest {
  const files: Record<string, string> = {};
  for (const name of fs.readdirSync(tmp).sort()) {
    if (name === "manifest.json") continue;
    const file = path.join(tmp, name);
    fsyncPath(file);
    files[name] = sha256File(file);
  }
  const manifest: AdapterManifest = {
    version: identity.version,
    name: identity.name,
    ...fields,
    createdAt: new Date().toISOString(),
    files,
  };
  writeFileAtomic(path.join(tmp, "manifest.json"), JSON.stringify(manifest, null, 2) + "\n");
  fsyncPath(tmp);
  beforeRename?.();
  fs.renameSync(tmp, target);
  fsyncPath(path.dirname(target));
  return manifest;
}

/** Recomputes every file hash of an adapter directory against its manifest; returns the mismatches. */
export function verifyAdapterDir(dir: string): string[] {
  const manifest = readManifest(dir);
  if (!manifest) return ["manifest.json is missing or unreadable"];
  const problems: string[] = [];
  for (const [name, hash] of Object.entries(manifest.files)) {
    const file = path.join(dir, name);
    if (!fs.existsSync(file)) problems.push(`${name} is missing`);
    else if (sha256File(file) !== hash) problems.push(`${name} does not match its hash`);
  }
  return problems;
}
