// `applyStrip` on a streamed event's bytes: the capture fields the client did not ask for are set
// back to null or removed in the event's JSON text, without parsing it into objects and writing it
// out again. Every other byte reaches the client as the upstream sent it, and the proxy no longer
// parses, rewrites and re-serializes each event (for an agent's first chunk, ~10k prompt token ids)
// before the client gets it; the recorder reads the original event after it is written.
//
// The scan is structural (it follows strings, objects and arrays), so a key only matches where
// `applyStrip` would see it: top-level fields, and fields of the objects in `choices`. Anything it
// is not sure of — a chunk that might have to be dropped (an empty delta or text), a key spelled
// with escapes, text that is not one JSON object — returns null, and the caller takes the parsing
// path, which decides exactly.
import type { StripSpec } from "./capture.js";
import { DONE, parseEvent, singleDataLine } from "./sse.js";

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const LBRACE = 0x7b;
const RBRACE = 0x7d;
const LBRACKET = 0x5b;
const RBRACKET = 0x5d;
const COLON = 0x3a;
const COMMA = 0x2c;

/** Thrown inside the scan when the text is not what it expects; caught at the top. */
class NotSure extends Error {}
const NOT_SURE = new NotSure();

interface Edit {
  start: number;
  end: number;
  text: Buffer | null;
}

const NULL = Buffer.from("null");

function isWs(c: number | undefined): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;
}

/** Key names as bytes, so a key is compared where it lies without making a string of it. */
type Keys = Uint8Array[];

function keysOf(names: readonly string[]): Keys {
  return names.map((n) => Buffer.from(n, "latin1"));
}

/** The keys a scan looks for, per `StripSpec` (a stream's events all share one). */
interface SpecKeys {
  topNull: Keys;
  topDelete: Keys;
  choiceNull: Keys;
  choiceDelete: Keys;
}

const specKeys = new WeakMap<StripSpec, SpecKeys>();

function keysFor(spec: StripSpec): SpecKeys {
  let k = specKeys.get(spec);
  if (!k) {
    k = { topNull: keysOf(spec.topNull), topDelete: keysOf(spec.topDelete), choiceNull: keysOf(spec.choiceNull), choiceDelete: keysOf(spec.choiceDelete) };
    specKeys.set(spec, k);
  }
  return k;
}

const CHOICES = Buffer.from("choices");
const DELTA = Buffer.from("delta");
const TEXT = Buffer.from("text");

type Inner = (key: number, keyEnd: number, at: number) => number | null;

class Scan {
  readonly edits: Edit[] = [];
  private readonly keys: SpecKeys;
  private readonly inChoice: Inner;
  private readonly inTop: Inner;

  constructor(
    readonly b: Buffer,
    readonly end: number,
    spec: StripSpec,
  ) {
    this.keys = keysFor(spec);
    this.inChoice = (key, keyEnd, at) => {
      // A chunk that may exist only because of the capture fields is for the parser to judge.
      if (spec.dropEmptyChunks && this.is(key, keyEnd, DELTA) && b[at] === LBRACE && b[this.ws(at + 1)] === RBRACE) throw NOT_SURE;
      if (spec.dropEmptyText && this.is(key, keyEnd, TEXT) && b[at] === QUOTE && b[at + 1] === QUOTE) throw NOT_SURE;
      return null;
    };
    this.inTop = (key, keyEnd, at) => (this.is(key, keyEnd, CHOICES) ? this.choices(at) : null);
  }

  /** Whether the key text at [start, end) is `name`. */
  private is(start: number, end: number, name: Uint8Array): boolean {
    if (end - start !== name.length) return false;
    const b = this.b;
    for (let i = 0; i < name.length; i++) if (b[start + i] !== name[i]) return false;
    return true;
  }

  private any(start: number, end: number, names: Keys): boolean {
    for (const n of names) if (this.is(start, end, n)) return true;
    return false;
  }

  ws(i: number): number {
    while (i < this.end && isWs(this.b[i])) i++;
    return i;
  }

  /** `i` at an opening quote; returns the index after the closing one. */
  string(i: number): number {
    const b = this.b;
    let j = i + 1;
    for (;;) {
      const q = b.indexOf(QUOTE, j);
      if (q < 0 || q >= this.end) throw NOT_SURE;
      let slashes = 0;
      for (let k = q - 1; b[k] === BACKSLASH; k--) slashes++;
      if (slashes % 2 === 0) return q + 1;
      j = q + 1;
    }
  }

  /** `i` at the start of any value; returns the index after it. */
  value(i: number): number {
    const b = this.b;
    const c = b[i];
    if (c === QUOTE) return this.string(i);
    if (c === LBRACKET || c === LBRACE) {
      // A flat array of numbers (token ids: thousands of them in an agent's first chunk) ends at the
      // first `]` when nothing that could nest or quote comes before it.
      if (c === LBRACKET) {
        const close = b.indexOf(RBRACKET, i + 1);
        if (close > 0 && close < this.end) {
          const inner = b.subarray(i + 1, close);
          if (inner.indexOf(LBRACKET) < 0 && inner.indexOf(LBRACE) < 0 && inner.indexOf(QUOTE) < 0) return close + 1;
        }
      }
      let depth = 0;
      for (let j = i; j < this.end; j++) {
        const d = b[j];
        if (d === QUOTE) j = this.string(j) - 1;
        else if (d === LBRACE || d === LBRACKET) depth++;
        else if (d === RBRACE || d === RBRACKET) {
          if (--depth === 0) return j + 1;
        }
      }
      throw NOT_SURE;
    }
    // A number or a literal: up to the next delimiter.
    let j = i;
    while (j < this.end) {
      const d = b[j];
      if (d === COMMA || d === RBRACE || d === RBRACKET || isWs(d)) break;
      j++;
    }
    if (j === i) throw NOT_SURE;
    return j;
  }

  private isNull(start: number, end: number): boolean {
    return end - start === 4 && this.b[start] === 0x6e && this.b[start + 1] === 0x75 && this.b[start + 2] === 0x6c && this.b[start + 3] === 0x6c;
  }

  /**
   * `i` at `{`. Reads the object's members; `nullKeys` are set to null, `deleteKeys` removed, and
   * `inner` may look into a member's value (returning where it ends). Returns the index after `}`.
   */
  object(i: number, nullKeys: Keys, deleteKeys: Keys, inner: Inner | null): number {
    const b = this.b;
    // Kept only when something may be removed (clawloop's engine), to find the commas to remove.
    const members: { keyStart: number; valueEnd: number; drop: boolean }[] | null = deleteKeys.length ? [] : null;
    let j = this.ws(i + 1);
    if (b[j] === RBRACE) return j + 1;
    for (;;) {
      if (b[j] !== QUOTE) throw NOT_SURE;
      const keyStart = j;
      const keyEnd = this.string(j);
      // Keys spelled with escapes are left to the parser.
      for (let k = keyStart + 1; k < keyEnd - 1; k++) if (b[k] === BACKSLASH) throw NOT_SURE;
      j = this.ws(keyEnd);
      if (b[j] !== COLON) throw NOT_SURE;
      const valueStart = this.ws(j + 1);
      const looked = inner ? inner(keyStart + 1, keyEnd - 1, valueStart) : null;
      const valueEnd = looked ?? this.value(valueStart);
      const drop = members !== null && this.any(keyStart + 1, keyEnd - 1, deleteKeys);
      if (!drop && this.any(keyStart + 1, keyEnd - 1, nullKeys) && !this.isNull(valueStart, valueEnd)) this.edits.push({ start: valueStart, end: valueEnd, text: NULL });
      members?.push({ keyStart, valueEnd, drop });
      j = this.ws(valueEnd);
      if (b[j] === COMMA) {
        j = this.ws(j + 1);
        continue;
      }
      if (b[j] !== RBRACE) throw NOT_SURE;
      break;
    }
    if (!members) return j + 1;
    // Each run of removed members goes with the comma after it, or, at the end, the one before it.
    for (let a = 0; a < members.length; a++) {
      if (!members[a]!.drop) continue;
      let z = a;
      while (z + 1 < members.length && members[z + 1]!.drop) z++;
      if (z + 1 < members.length) this.edits.push({ start: members[a]!.keyStart, end: members[z + 1]!.keyStart, text: null });
      else if (a > 0) this.edits.push({ start: members[a - 1]!.valueEnd, end: members[z]!.valueEnd, text: null });
      else this.edits.push({ start: members[a]!.keyStart, end: members[z]!.valueEnd, text: null });
      a = z;
    }
    return j + 1;
  }

  /** The chunk's `choices` array: each object in it gets the choice-level fields undone. */
  private choices(i: number): number {
    const b = this.b;
    if (b[i] !== LBRACKET) return this.value(i);
    let j = this.ws(i + 1);
    if (b[j] === RBRACKET) return j + 1;
    const keys = this.keys;
    for (;;) {
      j = b[j] === LBRACE ? this.object(j, keys.choiceNull, keys.choiceDelete, this.inChoice) : this.value(j);
      j = this.ws(j);
      if (b[j] === COMMA) {
        j = this.ws(j + 1);
        continue;
      }
      if (b[j] !== RBRACKET) throw NOT_SURE;
      return j + 1;
    }
  }

  top(start: number): void {
    const end = this.object(start, this.keys.topNull, this.keys.topDelete, this.inTop);
    if (this.ws(end) !== this.end) throw NOT_SURE;
  }
}

/**
 * The event (`data: {…}\n\n`, as `singleDataLine` accepts it) with the capture fields undone: the
 * same buffer when nothing had to change, a new one when something did, null when only the parsing
 * path can tell (see above).
 */
export function stripEventText(raw: Buffer, spec: StripSpec, dataStart: number, dataEnd: number): Buffer | null {
  const scan = new Scan(raw, dataEnd, spec);
  const start = scan.ws(dataStart);
  // Not an object (a string, an array, `[DONE]`): `applyStrip` is not applied to those either.
  if (raw[start] !== LBRACE) return raw;
  try {
    scan.top(start);
  } catch (err) {
    if (err instanceof NotSure) return null;
    throw err;
  }
  if (scan.edits.length === 0) return raw;
  const edits = scan.edits.sort((x, y) => x.start - y.start);
  const parts: Buffer[] = [];
  let at = 0;
  for (const e of edits) {
    parts.push(raw.subarray(at, e.start));
    if (e.text) parts.push(e.text);
    at = e.end;
  }
  parts.push(raw.subarray(at));
  return Buffer.concat(parts);
}

/**
 * Whole events of a stream (from `SseSplitter`) as the client should get them, or null when one of
 * them needs the parsing path. Events the parsing path would pass on untouched (comments, other
 * fields, several data lines, `[DONE]`) pass on untouched here too.
 */
export function stripEvents(events: Buffer[], spec: StripSpec): Buffer | null {
  const out: Buffer[] = [];
  for (const ev of events) {
    const tail = singleDataLine(ev);
    if (!tail) {
      const parsed = parseEvent(ev);
      // One data line in another spelling (`data:{…}`, CRLF): the parser rewrites those.
      if (parsed.data !== null && parsed.dataLines === 1 && parsed.data.trim() !== DONE) return null;
      out.push(ev);
      continue;
    }
    const s = stripEventText(ev, spec, 6, ev.length - tail);
    if (s === null) return null;
    out.push(s);
  }
  return out.length === 1 ? out[0]! : Buffer.concat(out);
}
