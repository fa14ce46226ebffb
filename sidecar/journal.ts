// The proxy's journal of finished calls, so that an answer never waits for the store host.
//
// A call's turn must be on disk before the client sees the end of its answer (a `kill -9` right
// after loses nothing). The store host gets there by building the row (parsing, masking) and
// appending it to its table log, but its event loop also encodes LanceDB batches and collects
// garbage: at 64 concurrent OpenClaw-sized streams the last `[DONE]` of a burst waited up to
// ~190 ms for it (bench:proxy). So the proxy appends the call, serialized as it is sent to the store
// host anyway, to a file of its own (one write syscall), answers, and lets the store host catch up.
// An entry is finished once the store host has the turn in its own log; a segment whose entries are
// all finished is deleted. At start-up, entries left by a sidecar that died are sent to the store
// host again (it replaces rows by id, so a turn that had made it is not recorded twice).
//
// The journal holds what the client sent, before masking (masking happens in the store host): it is
// mode 0600 in the data directory, like the token, and an entry lives only until the store host has
// the masked row (milliseconds, or until the next start after a crash).
//
// Entry: [u32 LE payload length][u32 LE crc32 of payload][payload]. A torn or corrupt entry (a crash
// mid-write, a power cut) ends a segment's replay: nothing after it in that segment was acknowledged
// to a client, because writes that fail move to a new segment.
import fs from "node:fs";
import path from "node:path";
import zlib from "node:zlib";
import type { Logger } from "../core/index.js";

const HEADER = 8;
/** A segment grows to this size before the next one starts (it is deleted when all its entries are finished). */
const SEGMENT_BYTES = 4 * 1024 * 1024;
/** A segment whose entries are all finished starts over once it is this large. */
const RECYCLE_BYTES = 1024 * 1024;
const NAME = /^journal-(\d{8})\.bin$/;

export interface JournalEntry {
  segment: number;
  payload: Buffer;
}

/** The file operations the journal uses; injectable so tests can make the disk fail. */
export interface JournalIO {
  writevSync(fd: number, bufs: Buffer[]): number;
  fsyncSync(fd: number): void;
}

const nodeIO: JournalIO = {
  writevSync: (fd, bufs) => fs.writevSync(fd, bufs),
  fsyncSync: (fd) => fs.fsyncSync(fd),
};

export interface JournalOptions {
  dir: string;
  logger: Logger;
  /** fsync each entry (as the store's `fsync` option does for its log). */
  fsync?: boolean;
  io?: JournalIO;
}

export class CallJournal {
  private readonly io: JournalIO;
  private fd: number | null = null;
  private segment: number;
  private size = 0;
  /** Unfinished entries per segment (the current one included). */
  private readonly open = new Map<number, number>();
  private failing = false;

  private constructor(
    private readonly opts: JournalOptions,
    /** Segments left from before this start, oldest first. */
    readonly leftover: number[],
  ) {
    this.io = opts.io ?? nodeIO;
    // New segments are numbered after the leftover ones (startSegment counts up first).
    this.segment = leftover.at(-1) ?? 0;
  }

  static open(opts: JournalOptions): CallJournal {
    fs.mkdirSync(opts.dir, { recursive: true, mode: 0o700 });
    const leftover = fs
      .readdirSync(opts.dir)
      .map((f) => NAME.exec(f)?.[1])
      .filter((n): n is string => n !== undefined)
      .map(Number)
      .sort((a, b) => a - b);
    return new CallJournal(opts, leftover);
  }

  private file(segment: number): string {
    return path.join(this.opts.dir, `journal-${String(segment).padStart(8, "0")}.bin`);
  }

  /** The entries of a segment left from before, up to the first torn or corrupt one. */
  readLeftover(segment: number): { entries: Buffer[]; torn: boolean } {
    const buf = fs.readFileSync(this.file(segment));
    const entries: Buffer[] = [];
    let at = 0;
    while (at + HEADER <= buf.length) {
      const len = buf.readUInt32LE(at);
      const crc = buf.readUInt32LE(at + 4);
      const end = at + HEADER + len;
      if (end > buf.length) break;
      const payload = buf.subarray(at + HEADER, end);
      if (zlib.crc32(payload) !== crc) break;
      entries.push(payload);
      at = end;
    }
    return { entries, torn: at !== buf.length };
  }

  /** Deletes a segment left from before (its entries have all been handed on). */
  dropLeftover(segment: number): void {
    fs.rmSync(this.file(segment), { force: true });
  }

  /**
   * Appends one entry; returns its segment, or null when it could not be written (a full disk):
   * the caller then waits for the store host as it would without a journal.
   */
  append(payload: Uint8Array): number | null {
    try {
      if (this.fd === null || this.size >= SEGMENT_BYTES) this.startSegment();
      const body = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
      const head = Buffer.allocUnsafe(HEADER);
      head.writeUInt32LE(body.length, 0);
      head.writeUInt32LE(zlib.crc32(body), 4);
      const wrote = this.io.writevSync(this.fd!, [head, body]);
      if (wrote !== HEADER + body.length) throw new Error(`short write (${wrote} of ${HEADER + body.length} bytes)`);
      if (this.opts.fsync) this.io.fsyncSync(this.fd!);
      this.size += wrote;
      this.open.set(this.segment, (this.open.get(this.segment) ?? 0) + 1);
      if (this.failing) {
        this.failing = false;
        this.opts.logger.info("the call journal can be written again");
      }
      return this.segment;
    } catch (err) {
      if (!this.failing) {
        this.failing = true;
        this.opts.logger.warn({ err: String(err) }, "cannot write the call journal: answers wait for the store host until it can");
      }
      // Whatever part of the entry reached the file ends that segment's replay: go on in a new one.
      this.closeSegment();
      return null;
    }
  }

  /** One entry of `segment` is in the store host's log. */
  finished(segment: number): void {
    const left = (this.open.get(segment) ?? 1) - 1;
    if (left > 0) {
      this.open.set(segment, left);
      return;
    }
    this.open.delete(segment);
    // The segment being written is closed (and so deleted) once it is large; any other is deleted now.
    const writing = segment === this.segment && this.fd !== null;
    if (!writing) fs.rmSync(this.file(segment), { force: true });
    else if (this.size >= RECYCLE_BYTES) this.closeSegment();
  }

  /** Entries not yet finished. */
  get unfinished(): number {
    let n = 0;
    for (const v of this.open.values()) n += v;
    return n;
  }

  /** Closes the file; unfinished entries stay for the next start. */
  close(): void {
    this.closeSegment();
  }

  private startSegment(): void {
    this.closeSegment();
    this.segment++;
    this.fd = fs.openSync(this.file(this.segment), "a", 0o600);
    this.size = 0;
  }

  private closeSegment(): void {
    if (this.fd === null) return;
    const fd = this.fd;
    this.fd = null;
    const seg = this.segment;
    try {
      fs.closeSync(fd);
    } catch {
      // Already gone: nothing to keep open.
    }
    // A segment with nothing unfinished is not needed by anyone.
    if (!this.open.has(seg)) fs.rmSync(this.file(seg), { force: true });
  }
}
