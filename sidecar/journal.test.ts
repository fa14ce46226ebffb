import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { createLogger } from "../core/index.js";
import { CallJournal, type JournalIO } from "./journal.js";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

function journalDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "clawloop-journal-"));
  dirs.push(d);
  return path.join(d, "journal");
}

const logger = createLogger("test", "silent");
const entry = (i: number, size = 100) => Buffer.from(`entry ${i} `.padEnd(size, "x"));
const files = (dir: string) => fs.readdirSync(dir).sort();

describe("CallJournal", () => {
  it("keeps unfinished entries for the next start, in order, and deletes what is finished", () => {
    const dir = journalDir();
    const j = CallJournal.open({ dir, logger });
    const segs = [1, 2, 3, 4].map((i) => j.append(entry(i)));
    expect(new Set(segs).size).toBe(1);
    j.finished(segs[0]!);
    expect(j.unfinished).toBe(3);
    j.close();

    const again = CallJournal.open({ dir, logger });
    expect(again.leftover).toEqual([segs[0]]);
    // Every entry is still there: which ones reached the store is the store's to tell (by id).
    const { entries, torn } = again.readLeftover(segs[0]!);
    expect(entries.map((e) => e.toString())).toEqual([1, 2, 3, 4].map((i) => entry(i).toString()));
    expect(torn).toBe(false);
    // New entries go to a new segment, never into a leftover one.
    expect(again.append(entry(5))).toBeGreaterThan(segs[0]!);
    again.dropLeftover(segs[0]!);
    expect(files(dir)).toHaveLength(1);
  });

  it("leaves nothing behind once every entry is finished", () => {
    const dir = journalDir();
    const j = CallJournal.open({ dir, logger });
    const s = [1, 2].map((i) => j.append(entry(i))!);
    expect(fs.statSync(path.join(dir, files(dir)[0]!)).mode & 0o777).toBe(0o600);
    for (const x of s) j.finished(x);
    j.close();
    expect(files(dir)).toEqual([]);
    expect(CallJournal.open({ dir, logger }).leftover).toEqual([]);
  });

  it("starts a new segment when the current one is large and all finished, and deletes the old one", () => {
    const dir = journalDir();
    const j = CallJournal.open({ dir, logger });
    const big = [1, 2, 3].map((i) => j.append(entry(i, 400 * 1024))!);
    for (const x of big) j.finished(x);
    expect(files(dir)).toEqual([]);
    const next = j.append(entry(4))!;
    expect(next).toBeGreaterThan(big[0]!);
    expect(files(dir)).toHaveLength(1);
  });

  it("stops a segment's replay at a torn or corrupt entry", () => {
    const dir = journalDir();
    const j = CallJournal.open({ dir, logger });
    const seg = j.append(entry(1))!;
    j.append(entry(2));
    j.close();
    const file = path.join(dir, files(dir)[0]!);
    // A crash mid-write: the header and half of the third entry.
    const head = Buffer.alloc(8);
    head.writeUInt32LE(100, 0);
    fs.appendFileSync(file, Buffer.concat([head, Buffer.alloc(50, 1)]));
    let r = CallJournal.open({ dir, logger }).readLeftover(seg);
    expect(r.entries).toHaveLength(2);
    expect(r.torn).toBe(true);
    // A flipped byte in the second entry: its checksum no longer matches.
    const buf = fs.readFileSync(file);
    const flipped = 8 + 100 + 8 + 3;
    buf.writeUInt8(buf.readUInt8(flipped) ^ 0xff, flipped);
    fs.writeFileSync(file, buf);
    r = CallJournal.open({ dir, logger }).readLeftover(seg);
    expect(r.entries.map((e) => e.toString())).toEqual([entry(1).toString()]);
  });

  it("returns null when the disk is full, and goes on in a new segment once it is not", () => {
    const dir = journalDir();
    let full = false;
    let short = false;
    const io: JournalIO = {
      writevSync: (fd, bufs) => {
        if (full) throw Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" });
        // A short write: the header and part of the payload reach the file.
        if (short) return fs.writeSync(fd, Buffer.concat(bufs).subarray(0, 20));
        return fs.writevSync(fd, bufs);
      },
      fsyncSync: () => undefined,
    };
    const j = CallJournal.open({ dir, logger, io });
    const first = j.append(entry(1))!;
    full = true;
    expect(j.append(entry(2))).toBeNull();
    full = false;
    short = true;
    expect(j.append(entry(3))).toBeNull();
    short = false;
    const later = j.append(entry(4))!;
    expect(later).toBeGreaterThan(first);
    j.close();
    const again = CallJournal.open({ dir, logger });
    const all = again.leftover.flatMap((s) => again.readLeftover(s).entries.map((e) => e.toString()));
    // What could not be written was never acknowledged as journaled; everything else is there.
    expect(all).toEqual([entry(1).toString(), entry(4).toString()]);
  });
});
