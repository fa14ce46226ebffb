// Which version the trainer continues from: `<adapters>/HEAD.json`, written by the sidecar when a
// user rolls back. The trainer normally continues from its newest version; after a rollback to V
// it must continue from V instead (the newer versions were abandoned), so it reads HEAD before
// every step. A new version then gets the next free number and names V as its parent:
//   v000005 (abandoned) … rollback to v000003 → HEAD {version: v000003, seq: 1} → next step writes
//   v000006 with parent v000003.
// `seq` increases with every rollback, so a trainer can tell a new rollback from one it has obeyed.
import fs from "node:fs";
import path from "node:path";

export const HEAD_FILE = "HEAD.json";

export interface Head {
  /** The version to continue training from. */
  version: string;
  /** Bumped by every rollback. */
  seq: number;
  reason: string;
  at: string;
}

export function readHead(adaptersDir: string): Head | null {
  try {
    const h = JSON.parse(fs.readFileSync(path.join(adaptersDir, HEAD_FILE), "utf8")) as Partial<Head>;
    if (typeof h.version !== "string" || !/^v\d{6}$/.test(h.version) || typeof h.seq !== "number") return null;
    return { version: h.version, seq: h.seq, reason: String(h.reason ?? ""), at: String(h.at ?? "") };
  } catch {
    return null;
  }
}

/** Replaces HEAD atomically (temporary file + rename); returns what was written. */
export function writeHead(adaptersDir: string, version: string, reason: string): Head {
  const head: Head = { version, seq: (readHead(adaptersDir)?.seq ?? 0) + 1, reason, at: new Date().toISOString() };
  fs.mkdirSync(adaptersDir, { recursive: true });
  const file = path.join(adaptersDir, HEAD_FILE);
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(head, null, 2) + "\n");
  fs.renameSync(tmp, file);
  return head;
}
