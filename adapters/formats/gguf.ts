// GGUF (v2/v3) reader and writer. The reader parses the header, every metadata key-value and the
// tensor infos, and leaves tensor data on disk: tensors are read (and dequantized) on demand at
// their offsets, in bounded chunks, so a multi-GB file never sits in memory whole.
import fs from "node:fs";
import path from "node:path";
import { dequantizeInto } from "./gguf-dequant.js";
import { GGML_BLOCK, GgmlType, GgufValueType, ggmlByteSize, ggmlTypeName } from "./gguf-types.js";

export * from "./gguf-types.js";

const MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
const DEFAULT_ALIGNMENT = 32;

export type GgufScalar = number | bigint | boolean | string;
export type GgufArray =
  | Uint8Array | Int8Array | Uint16Array | Int16Array | Uint32Array | Int32Array | Float32Array | Float64Array
  | BigUint64Array | BigInt64Array | boolean[] | string[] | GgufArray[];
export type GgufValue = GgufScalar | GgufArray;

export interface GgufTensorInfo {
  name: string;
  /** ggml order: `dims[0]` is the fastest-varying (row length); reverse of PyTorch's shape. */
  dims: number[];
  type: number;
  /** Absolute byte offset of the data in the file. */
  offset: number;
  byteLength: number;
  elements: number;
}

export interface GgufFile {
  path: string;
  version: number;
  alignment: number;
  /** Absolute offset of the tensor data section. */
  dataStart: number;
  metadata: Map<string, GgufValue>;
  /** The stored type of each metadata value (and of array items). */
  metadataTypes: Map<string, { type: GgufValueType; itemType?: GgufValueType }>;
  tensors: Map<string, GgufTensorInfo>;
}

/** Sequential little-endian reads from a file descriptor through a refilling buffer. */
class FileCursor {
  private buf: Buffer;
  private start = 0; // file offset of buf[0]
  private end = 0; // valid bytes in buf
  pos = 0; // absolute file offset

  constructor(
    private readonly fd: number,
    private readonly size: number,
    private readonly file: string,
  ) {
    this.buf = Buffer.alloc(1 << 20);
  }

  private need(n: number): number {
    if (this.pos + n > this.size) throw new Error(`${this.file}: truncated GGUF header (needs ${n} bytes at offset ${this.pos}, file is ${this.size})`);
    const rel = this.pos - this.start;
    if (rel + n <= this.end) return rel;
    if (n > this.buf.length) this.buf = Buffer.alloc(Math.max(n, this.buf.length * 2));
    this.start = this.pos;
    this.end = fs.readSync(this.fd, this.buf, 0, Math.min(this.buf.length, this.size - this.pos), this.pos);
    return 0;
  }

  u8(): number { const r = this.need(1); this.pos += 1; return this.buf[r]!; }
  i8(): number { const r = this.need(1); this.pos += 1; return this.buf.readInt8(r); }
  u16(): number { const r = this.need(2); this.pos += 2; return this.buf.readUInt16LE(r); }
  i16(): number { const r = this.need(2); this.pos += 2; return this.buf.readInt16LE(r); }
  u32(): number { const r = this.need(4); this.pos += 4; return this.buf.readUInt32LE(r); }
  i32(): number { const r = this.need(4); this.pos += 4; return this.buf.readInt32LE(r); }
  f32(): number { const r = this.need(4); this.pos += 4; return this.buf.readFloatLE(r); }
  f64(): number { const r = this.need(8); this.pos += 8; return this.buf.readDoubleLE(r); }
  u64(): bigint { const r = this.need(8); this.pos += 8; return this.buf.readBigUInt64LE(r); }
  i64(): bigint { const r = this.need(8); this.pos += 8; return this.buf.readBigInt64LE(r); }
  /** A u64 that must fit a JS number (counts, lengths, offsets). */
  size64(what: string): number {
    const v = this.u64();
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`${this.file}: ${what} ${v} is out of range`);
    return Number(v);
  }
  string(): string {
    const len = this.size64("string length");
    const r = this.need(len);
    this.pos += len;
    return this.buf.toString("utf8", r, r + len);
  }
  /** `count` raw bytes copied out (for numeric arrays). */
  bytes(count: number): Uint8Array {
    const r = this.need(count);
    this.pos += count;
    return new Uint8Array(this.buf.subarray(r, r + count)); // copy: buf is reused
  }
}

const smallInt = (v: bigint): number | bigint => (v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v);

function readScalar(c: FileCursor, type: number, file: string): GgufScalar {
  switch (type) {
    case GgufValueType.UINT8: return c.u8();
    case GgufValueType.INT8: return c.i8();
    case GgufValueType.UINT16: return c.u16();
    case GgufValueType.INT16: return c.i16();
    case GgufValueType.UINT32: return c.u32();
    case GgufValueType.INT32: return c.i32();
    case GgufValueType.FLOAT32: return c.f32();
    case GgufValueType.BOOL: return c.u8() !== 0;
    case GgufValueType.STRING: return c.string();
    case GgufValueType.UINT64: return smallInt(c.u64());
    case GgufValueType.INT64: return smallInt(c.i64());
    case GgufValueType.FLOAT64: return c.f64();
    default: throw new Error(`${file}: unknown GGUF metadata value type ${type} at offset ${c.pos}`);
  }
}

const NUMERIC_ARRAYS: Record<number, { bytes: number; make: (b: ArrayBuffer) => GgufArray }> = {
  [GgufValueType.UINT8]: { bytes: 1, make: (b) => new Uint8Array(b) },
  [GgufValueType.INT8]: { bytes: 1, make: (b) => new Int8Array(b) },
  [GgufValueType.UINT16]: { bytes: 2, make: (b) => new Uint16Array(b) },
  [GgufValueType.INT16]: { bytes: 2, make: (b) => new Int16Array(b) },
  [GgufValueType.UINT32]: { bytes: 4, make: (b) => new Uint32Array(b) },
  [GgufValueType.INT32]: { bytes: 4, make: (b) => new Int32Array(b) },
  [GgufValueType.FLOAT32]: { bytes: 4, make: (b) => new Float32Array(b) },
  [GgufValueType.FLOAT64]: { bytes: 8, make: (b) => new Float64Array(b) },
  [GgufValueType.UINT64]: { bytes: 8, make: (b) => new BigUint64Array(b) },
  [GgufValueType.INT64]: { bytes: 8, make: (b) => new BigInt64Array(b) },
};

function readArray(c: FileCursor, file: string): { value: GgufArray; itemType: GgufValueType } {
  const itemType = c.u32() as GgufValueType;
  const count = c.size64("array length");
  const numeric = NUMERIC_ARRAYS[itemType];
  if (numeric) {
    const bytes = c.bytes(count * numeric.bytes);
    return { value: numeric.make(bytes.buffer as ArrayBuffer), itemType };
  }
  if (itemType === GgufValueType.STRING) {
    const out = new Array<string>(count);
    for (let i = 0; i < count; i++) out[i] = c.string();
    return { value: out, itemType };
  }
  if (itemType === GgufValueType.BOOL) {
    const out = new Array<boolean>(count);
    for (let i = 0; i < count; i++) out[i] = c.u8() !== 0;
    return { value: out, itemType };
  }
  if (itemType === GgufValueType.ARRAY) {
    const out: GgufArray[] = [];
    for (let i = 0; i < count; i++) out.push(readArray(c, file).value);
    return { value: out, itemType };
  }
  throw new Error(`${file}: unknown GGUF array item type ${itemType}`);
}

/** Parses a GGUF file's header, metadata and tensor infos (no tensor data is read). */
export function readGguf(file: string): GgufFile {
  const abs = path.resolve(file);
  const fd = fs.openSync(abs, "r");
  try {
    const size = fs.fstatSync(fd).size;
    const c = new FileCursor(fd, size, abs);
    if (size < 8 || c.u32() !== MAGIC) throw new Error(`${abs}: not a GGUF file (bad magic)`);
    const version = c.u32();
    if (version === 1) throw new Error(`${abs}: GGUF version 1 is not supported (convert it with a current llama.cpp)`);
    if (version !== 2 && version !== 3) throw new Error(`${abs}: unsupported GGUF version ${version} (big-endian files are not supported)`);
    const tensorCount = c.size64("tensor count");
    const kvCount = c.size64("metadata count");
    const metadata = new Map<string, GgufValue>();
    const metadataTypes = new Map<string, { type: GgufValueType; itemType?: GgufValueType }>();
    for (let i = 0; i < kvCount; i++) {
      const key = c.string();
      const type = c.u32() as GgufValueType;
      if (type === GgufValueType.ARRAY) {
        const { value, itemType } = readArray(c, abs);
        metadata.set(key, value);
        metadataTypes.set(key, { type, itemType });
      } else {
        metadata.set(key, readScalar(c, type, abs));
        metadataTypes.set(key, { type });
      }
    }
    const alignRaw = metadata.get("general.alignment");
    const alignment = alignRaw === undefined ? DEFAULT_ALIGNMENT : Number(alignRaw);
    if (!Number.isInteger(alignment) || alignment <= 0 || alignment % 8 !== 0)
      throw new Error(`${abs}: invalid general.alignment ${String(alignRaw)}`);
    const infos: { name: string; dims: number[]; type: number; rel: number }[] = [];
    for (let i = 0; i < tensorCount; i++) {
      const name = c.string();
      const nDims = c.u32();
      if (nDims > 8) throw new Error(`${abs}: tensor "${name}" has ${nDims} dimensions`);
      const dims: number[] = [];
      for (let d = 0; d < nDims; d++) dims.push(c.size64(`dimension of "${name}"`));
      const type = c.u32();
      const rel = c.size64(`offset of "${name}"`);
      infos.push({ name, dims, type, rel });
    }
    const dataStart = Math.ceil(c.pos / alignment) * alignment;
    const tensors = new Map<string, GgufTensorInfo>();
    for (const t of infos) {
      if (tensors.has(t.name)) throw new Error(`${abs}: duplicate tensor "${t.name}"`);
      if (t.rel % alignment !== 0) throw new Error(`${abs}: tensor "${t.name}" offset ${t.rel} is not aligned to ${alignment}`);
      const elements = t.dims.reduce((a, b) => a * b, 1);
      // Unknown types stay listed (their size is unknown): reading them fails with a clear error.
      const byteLength = GGML_BLOCK[t.type] ? ggmlByteSize(t.type, elements) : -1;
      const offset = dataStart + t.rel;
      if (byteLength >= 0 && offset + byteLength > size)
        throw new Error(`${abs}: tensor "${t.name}" runs past the end of the file (truncated download?)`);
      tensors.set(t.name, { name: t.name, dims: t.dims, type: t.type, offset, byteLength, elements });
    }
    return { path: abs, version, alignment, dataStart, metadata, metadataTypes, tensors };
  } finally {
    fs.closeSync(fd);
  }
}

function readAt(fd: number, buf: Uint8Array, position: number, file: string): void {
  let done = 0;
  while (done < buf.byteLength) {
    const n = fs.readSync(fd, buf, done, buf.byteLength - done, position + done);
    if (n === 0) throw new Error(`${file}: unexpected end of file at ${position + done}`);
    done += n;
  }
}

export function tensorInfo(g: GgufFile, name: string): GgufTensorInfo {
  const t = g.tensors.get(name);
  if (!t) throw new Error(`${g.path}: no tensor named "${name}"`);
  if (t.byteLength < 0) throw new Error(`${g.path}: tensor "${name}" has unsupported type ${ggmlTypeName(t.type)}`);
  return t;
}

/** The raw stored bytes of one tensor. */
export function readGgufTensorBytes(g: GgufFile, name: string): Buffer {
  const t = tensorInfo(g, name);
  const buf = Buffer.alloc(t.byteLength);
  const fd = fs.openSync(g.path, "r");
  try {
    readAt(fd, buf, t.offset, g.path);
  } finally {
    fs.closeSync(fd);
  }
  return buf;
}

/** Chunk size for streaming dequantization: bounded memory, few syscalls. */
const CHUNK_BYTES = 8 << 20;

/**
 * One tensor as fp32 (dequantized when quantized), read in chunks of whole blocks straight into a
 * preallocated Float32Array. Pass `fd` to reuse an open descriptor across many tensors.
 */
export function readGgufTensorFloat32(g: GgufFile, name: string, fd?: number): Float32Array {
  const t = tensorInfo(g, name);
  const out = new Float32Array(t.elements);
  const own = fd === undefined;
  const handle = fd ?? fs.openSync(g.path, "r");
  try {
    if (t.type === GgmlType.F32) {
      readAt(handle, new Uint8Array(out.buffer), t.offset, g.path);
      return out;
    }
    const block = GGML_BLOCK[t.type]!;
    const chunkBlocks = Math.max(1, Math.floor(CHUNK_BYTES / block.bytes));
    const chunk = Buffer.alloc(Math.min(t.byteLength, chunkBlocks * block.bytes));
    let done = 0;
    let elem = 0;
    while (done < t.byteLength) {
      const n = Math.min(chunk.length, t.byteLength - done);
      const view = chunk.subarray(0, n);
      readAt(handle, view, t.offset + done, g.path);
      elem += dequantizeInto(t.type, view, out, elem);
      done += n;
    }
    return out;
  } finally {
    if (own) fs.closeSync(handle);
  }
}

// ---------------------------------------------------------------------------------------------
// Writer

/** A metadata value with its GGUF type made explicit (JS numbers do not say u32 vs f32). */
export type GgufMetaValue =
  | { type: "u8" | "i8" | "u16" | "i16" | "u32" | "i32" | "f32" | "f64"; value: number }
  | { type: "u64" | "i64"; value: number | bigint }
  | { type: "bool"; value: boolean }
  | { type: "string"; value: string }
  | { type: "array"; itemType: "u8" | "i8" | "u16" | "i16" | "u32" | "i32" | "f32" | "f64" | "u64" | "i64"; value: ArrayLike<number | bigint> }
  | { type: "array"; itemType: "string"; value: string[] }
  | { type: "array"; itemType: "bool"; value: boolean[] };

const TYPE_TAGS: Record<string, GgufValueType> = {
  u8: GgufValueType.UINT8, i8: GgufValueType.INT8, u16: GgufValueType.UINT16, i16: GgufValueType.INT16,
  u32: GgufValueType.UINT32, i32: GgufValueType.INT32, f32: GgufValueType.FLOAT32, f64: GgufValueType.FLOAT64,
  u64: GgufValueType.UINT64, i64: GgufValueType.INT64, bool: GgufValueType.BOOL, string: GgufValueType.STRING,
  array: GgufValueType.ARRAY,
};

export interface GgufTensorToWrite {
  name: string;
  /** ggml order (ne): `[in, out]` for a PyTorch `[out, in]` matrix. */
  dims: number[];
  type: number;
  /** Encoded bytes of `type`. */
  data: Uint8Array;
}

class ByteWriter {
  private parts: Buffer[] = [];
  length = 0;
  push(b: Buffer): void { this.parts.push(b); this.length += b.length; }
  u32(v: number): void { const b = Buffer.alloc(4); b.writeUInt32LE(v >>> 0); this.push(b); }
  u64(v: number | bigint): void { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(v)); this.push(b); }
  string(s: string): void { const b = Buffer.from(s, "utf8"); this.u64(b.length); this.push(b); }
  scalar(type: string, v: unknown): void {
    const b = Buffer.alloc(type === "u64" || type === "i64" || type === "f64" ? 8 : type === "u32" || type === "i32" || type === "f32" ? 4 : type === "u16" || type === "i16" ? 2 : 1);
    switch (type) {
      case "u8": b.writeUInt8(v as number); break;
      case "i8": b.writeInt8(v as number); break;
      case "u16": b.writeUInt16LE(v as number); break;
      case "i16": b.writeInt16LE(v as number); break;
      case "u32": b.writeUInt32LE(v as number); break;
      case "i32": b.writeInt32LE(v as number); break;
      case "f32": b.writeFloatLE(v as number); break;
      case "f64": b.writeDoubleLE(v as number); break;
      case "u64": b.writeBigUInt64LE(BigInt(v as number)); break;
      case "i64": b.writeBigInt64LE(BigInt(v as number)); break;
      case "bool": b.writeUInt8(v ? 1 : 0); break;
      case "string": this.string(v as string); return;
      default: throw new Error(`unknown GGUF metadata type "${type}"`);
    }
    this.push(b);
  }
  concat(): Buffer { return Buffer.concat(this.parts, this.length); }
}

/** Encodes a complete GGUF v3 file in memory (adapters and test files are small). */
export function encodeGguf(opts: { metadata: Record<string, GgufMetaValue>; tensors: GgufTensorToWrite[]; alignment?: number }): Buffer {
  const alignment = opts.alignment ?? DEFAULT_ALIGNMENT;
  const metadata = { ...opts.metadata };
  if (alignment !== DEFAULT_ALIGNMENT) metadata["general.alignment"] = { type: "u32", value: alignment };
  const w = new ByteWriter();
  w.u32(MAGIC);
  w.u32(3);
  w.u64(opts.tensors.length);
  w.u64(Object.keys(metadata).length);
  for (const [key, m] of Object.entries(metadata)) {
    w.string(key);
    w.u32(TYPE_TAGS[m.type]!);
    if (m.type === "array") {
      w.u32(TYPE_TAGS[m.itemType]!);
      w.u64(m.value.length);
      for (let i = 0; i < m.value.length; i++) w.scalar(m.itemType, m.value[i]);
    } else w.scalar(m.type, m.value);
  }
  let offset = 0;
  const seen = new Set<string>();
  for (const t of opts.tensors) {
    if (seen.has(t.name)) throw new Error(`duplicate tensor name "${t.name}"`);
    seen.add(t.name);
    const expected = ggmlByteSize(t.type, t.dims.reduce((a, b) => a * b, 1));
    if (expected !== t.data.byteLength)
      throw new Error(`tensor "${t.name}": ${ggmlTypeName(t.type)} [${t.dims}] needs ${expected} bytes, got ${t.data.byteLength}`);
    w.string(t.name);
    w.u32(t.dims.length);
    for (const d of t.dims) w.u64(d);
    w.u32(t.type);
    w.u64(offset);
    offset += Math.ceil(t.data.byteLength / alignment) * alignment;
  }
  w.push(Buffer.alloc((alignment - (w.length % alignment)) % alignment));
  for (const t of opts.tensors) {
    w.push(Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength));
    w.push(Buffer.alloc((alignment - (t.data.byteLength % alignment)) % alignment));
  }
  return w.concat();
}

/** Writes a GGUF file atomically (temporary name, then rename). */
export function writeGguf(file: string, opts: Parameters<typeof encodeGguf>[0]): void {
  const buf = encodeGguf(opts);
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, buf);
  fs.renameSync(tmp, file);
}

/** Convenience: metadata value as a plain string/number, or a clear error naming the key. */
export function ggufString(g: GgufFile, key: string): string | undefined {
  const v = g.metadata.get(key);
  if (v === undefined) return undefined;
  if (typeof v !== "string") throw new Error(`${g.path}: metadata ${key} is not a string`);
  return v;
}

export function ggufNumber(g: GgufFile, key: string): number | undefined {
  const v = g.metadata.get(key);
  if (v === undefined) return undefined;
  if (typeof v === "number") return v;
  if (typeof v === "bigint") return Number(v);
  if (typeof v === "boolean") return v ? 1 : 0;
  throw new Error(`${g.path}: metadata ${key} is not a number`);
}
