// The `adapters` table as the sidecar's switchboard writes it (sidecar/hotload/switchboard.ts
// putRow), for tests of what the trainer reads from it.
import path from "node:path";
import { Store, type AdapterVersion } from "../../core/index.js";
import { readManifest } from "../../trainer/versions.js";

/**
 * One row per version, made from its manifest on first write and patched after that; each write is
 * flushed, so what a reader sees is LanceDB, as it is with the sidecar's store host.
 */
export async function switchboardTable(dataDir: string, adaptersDir: string): Promise<{ put: (name: string, patch: Partial<AdapterVersion>) => Promise<void>; close: () => Promise<void> }> {
  const store = await Store.open({ dataDir, writes: ["adapters"], flushIntervalMs: 50 });
  const rows = new Map<string, AdapterVersion>();
  const put = async (name: string, patch: Partial<AdapterVersion>) => {
    const dir = path.join(adaptersDir, name);
    const row: AdapterVersion = rows.get(name) ?? {
      id: name, version: Number(name.slice(1)), dir, manifest: readManifest(dir)!, status: "candidate", statusReason: null,
      pinned: false, loadedAt: null, liveAt: null, retiredAt: null,
    };
    rows.set(name, { ...row, ...patch });
    store.put("adapters", rows.get(name)!);
    await store.flush();
  };
  return { put, close: () => store.close() };
}
