// The append-only log in front of each table. A record is acknowledged once its line is written
// (and, with `fsync`, synced), so a `kill -9` loses nothing that was answered. A checkpoint file
// holds the byte offset up to which everything has reached LanceDB; recovery replays the rest.
import fs from "node:fs";
import path from "node:path";

/** The file operations the log needs; injectable so tests can make the disk fail. */
export interface LogIO {
  openSync(p: string, flags: string): number;
  writeSync(fd: number, buf: Buffer): number;
  fsyncSync(fd: number): void;
  closeSync(fd: number): void;
  readFileSync(p: string): Buffer;
  writeFileSync(p: string, data: string): void;
  renameSync(from: string, to: string): void;
  ftruncateSync(fd: number, len: number): void;
  fstatSync(fd: number): { size: number };
  existsSync(p: string): boolean;
}

export const nodeIO: LogIO = {
  openSync: (p, f) => fs.openSync(p, f),
  writeSync: (fd, b) => fs.writeSync(fd, b),
  fsyncSync: (fd) => fs.fsyncSync(fd),
  closeSync: (fd) => fs.closeSync(fd),
  readFileSync: (p) => fs.readFileSync(p),
  writeFileSync: (p, d) => fs.writeFileSync(p, d),
  renameSync: (a, b) => fs.renameSync(a, b),
  ftruncateSync: (fd, n) => fs.ftruncateSync(fd, n),
  fstatSync: (fd) => fs.fstatSync(fd),
  existsSync: (p) => fs.existsSync(p),
};

export interface LogRecord {
  /** `put` inserts or replaces the row with the same id. */
  op: "put";
  row: Record<string, unknown>;
}

/** Once everything is checkpointed and the log is larger than this, it starts over. */
const RESET_BYTES = 8 * 1024 * 1024;

export class TableLog {
  readonly file: string;
  private readonly ckptFile: string;
  private fd: number;
  private size: number;

  constructor(
    dir: string,
    readonly table: string,
    private readonly opts: { fsync: boolean; io: LogIO },
  ) {
    this.file = path.join(dir, `${table}.log`);
    this.ckptFile = path.join(dir, `${table}.ckpt`);
    const io = opts.io;
    this.fd = io.openSync(this.file, "a+");
    this.size = io.fstatSync(this.fd).size;
  }

  /** Bytes written so far. */
  get end(): number {
    return this.size;
  }

  /** Records after the checkpoint; a torn last line (crash mid-write) is cut off, never replayed. */
  recover(): { records: LogRecord[]; skipped: number } {
    const { io } = this.opts;
    const buf = io.readFileSync(this.file);
    const lastNl = buf.lastIndexOf(0x0a);
    const complete = lastNl + 1;
    if (complete < buf.length) {
      io.ftruncateSync(this.fd, complete);
      this.size = complete;
    }
    const start = Math.min(this.checkpoint(), complete);
    const records: LogRecord[] = [];
    let skipped = 0;
    for (const line of buf.subarray(start, complete).toString("utf8").split("\n")) {
      if (!line) continue;
      try {
        const rec = JSON.parse(line) as LogRecord;
        if (rec && rec.op === "put" && rec.row && typeof rec.row === "object") records.push(rec);
        else skipped++;
      } catch {
        skipped++;
      }
    }
    return { records, skipped };
  }

  /** Appends one record; returns the log offset after it. Throws on I/O failure (nothing half-kept:
   *  a partial write is truncated away). */
  append(rec: LogRecord): number {
    const { io, fsync } = this.opts;
    const line = Buffer.from(JSON.stringify(rec) + "\n", "utf8");
    try {
      let off = 0;
      while (off < line.length) off += io.writeSync(this.fd, off === 0 ? line : line.subarray(off));
      if (fsync) io.fsyncSync(this.fd);
    } catch (err) {
      try {
        io.ftruncateSync(this.fd, this.size);
      } catch {
        // The torn tail is cut at recovery anyway.
      }
      throw err;
    }
    this.size += line.length;
    return this.size;
  }

  checkpoint(): number {
    const { io } = this.opts;
    if (!io.existsSync(this.ckptFile)) return 0;
    const n = Number(io.readFileSync(this.ckptFile).toString("utf8").trim());
    return Number.isFinite(n) && n >= 0 ? n : 0;
  }

  /** Everything up to `offset` is in LanceDB. */
  commit(offset: number): void {
    const { io } = this.opts;
    const tmp = `${this.ckptFile}.tmp`;
    io.writeFileSync(tmp, String(offset));
    io.renameSync(tmp, this.ckptFile);
    if (offset === this.size && this.size > RESET_BYTES) {
      // Checkpoint 0 first: a crash between the two steps only replays (idempotently), never loses.
      io.writeFileSync(tmp, "0");
      io.renameSync(tmp, this.ckptFile);
      io.ftruncateSync(this.fd, 0);
      this.size = 0;
    }
  }

  close(): void {
    this.opts.io.closeSync(this.fd);
  }
}
