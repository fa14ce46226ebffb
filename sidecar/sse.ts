// Server-sent events, byte-exact: splits an upstream byte stream into whole events (each with its
// blank-line terminator) without copying or re-encoding them, so a proxy can forward every event
// exactly as it arrived, and reads the fields of one event when it needs to look inside.

const LF = 0x0a;
const CR = 0x0d;

/** Incremental splitter: push chunks in, get complete raw events (terminator included) out. */
export class SseSplitter {
  private pending: Buffer | null = null;
  /** Where to resume looking for a terminator in `pending`. */
  private scanFrom = 0;

  push(chunk: Buffer): Buffer[] {
    let buf: Buffer;
    if (this.pending) {
      buf = Buffer.concat([this.pending, chunk]);
    } else {
      buf = chunk;
      this.scanFrom = 0;
    }
    const events: Buffer[] = [];
    let start = 0;
    let i = Math.max(this.scanFrom, 0);
    for (;;) {
      const nl = buf.indexOf(LF, i);
      if (nl < 0) break;
      // A blank line ends the event: "\n\n" or "\n\r\n".
      let end = -1;
      if (buf[nl + 1] === LF) end = nl + 2;
      else if (buf[nl + 1] === CR && buf[nl + 2] === LF) end = nl + 3;
      else if (nl + 1 >= buf.length || (buf[nl + 1] === CR && nl + 2 >= buf.length)) {
        // Cannot tell yet: wait for more bytes.
        i = nl;
        break;
      }
      if (end < 0) {
        i = nl + 1;
        continue;
      }
      events.push(buf.subarray(start, end));
      start = end;
      i = end;
    }
    if (start < buf.length) {
      this.pending = buf.subarray(start);
      this.scanFrom = Math.max(0, i - start);
    } else {
      this.pending = null;
      this.scanFrom = 0;
    }
    return events;
  }

  /** Bytes of an unfinished event (a stream that ended without a final blank line). */
  rest(): Buffer | null {
    const p = this.pending;
    this.pending = null;
    this.scanFrom = 0;
    return p && p.length ? p : null;
  }
}

export interface SseEvent {
  /** The `data` field (several data lines joined by "\n"), null when the event has none. */
  data: string | null;
  dataLines: number;
  event: string | null;
}

/** Byte length of "data: " and of a one-line event's terminator, when `raw` is exactly `data: …\n\n`. */
export function singleDataLine(raw: Buffer): number {
  // "data: " = 64 61 74 61 3a 20
  if (raw.length < 8 || raw[0] !== 0x64 || raw[1] !== 0x61 || raw[2] !== 0x74 || raw[3] !== 0x61 || raw[4] !== 0x3a || raw[5] !== 0x20) return 0;
  const nl = raw.indexOf(LF, 6);
  if (nl === raw.length - 2 && raw[nl + 1] === LF) return 2;
  return 0;
}

export function parseEvent(raw: Buffer): SseEvent {
  // The common case, taken without splitting lines.
  const tail = singleDataLine(raw);
  if (tail) return { data: raw.toString("utf8", 6, raw.length - tail), dataLines: 1, event: null };
  const text = raw.toString("utf8");
  let data: string | null = null;
  let dataLines = 0;
  let event: string | null = null;
  for (const line of text.split(/\r?\n/)) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") {
      data = data === null ? value : `${data}\n${value}`;
      dataLines++;
    } else if (field === "event") {
      event = value;
    }
  }
  return { data, dataLines, event };
}

/** The event with its single data line replaced; every other line and the line endings kept. */
export function replaceData(raw: Buffer, data: string): Buffer {
  if (singleDataLine(raw)) return Buffer.from(`data: ${data}\n\n`, "utf8");
  const text = raw.toString("utf8");
  const eol = text.includes("\r\n") ? "\r\n" : "\n";
  const lines = text.split(/\r?\n/);
  const out = lines.map((line) => (line.startsWith("data:") ? `data: ${data}` : line));
  return Buffer.from(out.join(eol), "utf8");
}

export const DONE = "[DONE]";

const DONE_BYTES = Buffer.from(DONE);

/** Whether the event is the stream's `[DONE]`, read from its bytes (no decoding in the common case). */
export function isDone(raw: Buffer): boolean {
  const tail = singleDataLine(raw);
  if (tail) {
    if (raw.length - tail - 6 === DONE_BYTES.length && raw.compare(DONE_BYTES, 0, DONE_BYTES.length, 6, 6 + DONE_BYTES.length) === 0) return true;
    // A JSON chunk, the usual case.
    if (raw[6] === 0x7b) return false;
  }
  // Anything else is read properly (`data:[DONE]`, CRLF, extra fields, spaces).
  return parseEvent(raw).data?.trim() === DONE;
}
