// safetensors: an 8-byte little-endian header length, a JSON header, then raw little-endian
// row-major tensor bytes. Reading is lazy: we parse only the header and hand out absolute byte
// offsets, so the compute engine can point ONNX Runtime's external data straight into the file.
import fs from "node:fs";
import path from "node:path";
import { asFloat32, asUint16, decodeBf16, decodeF16, encodeBf16, encodeF16 } from "./float16.js";

export type SafetensorsDType =
  | "BOOL" | "U8" | "I8" | "F8_E5M2" | "F8_E4M3" | "I16" | "U16" | "F16" | "BF16"
  | "I32" | "U32" | "F32" | "F64" | "I64" | "U64";

const DTYPE_BYTES: Record<SafetensorsDType, number> = {
  BOOL: 1, U8: 1, I8: 1, F8_E5M2: 1, F8_E4M3: 1, I16: 2, U16: 2, F16: 2, BF16: 2,
  I32: 4, U32: 4, F32: 4, F64: 8, I64: 8, U64: 8,
};

/** The safetensors spec caps the header at 100 MB; anything larger is a corrupt or foreign file. */
const MAX_HEADER = 100 * 1024 * 1024;

export interface SafetensorsEntry {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  /** The file holding the bytes (absolute path). */
  file: string;
  /** Absolute byte offset in `file`. */
  offset: number;
  byteLength: number;
}

export interface SafetensorsHeader {
  file: string;
  /** Absolute offset of the data buffer (8 + header length). */
  dataStart: number;
  metadata: Record<string, string>;
  tensors: Map<string, SafetensorsEntry>;
}

function fail(file: string, msg: string): never {
  throw new Error(`${file}: not a valid safetensors file: ${msg}`);
}

/** Parses a safetensors header; validates dtypes, shapes and that offsets lie inside the file. */
export function readSafetensorsHeader(file: string): SafetensorsHeader {
  const abs = path.resolve(file);
  const fd = fs.openSync(abs, "r");
  try {
    const size = fs.fstatSync(fd).size;
    if (size < 8) fail(abs, `file is ${size} bytes, shorter than the 8-byte header length`);
    const lenBuf = Buffer.alloc(8);
    fs.readSync(fd, lenBuf, 0, 8, 0);
    const n = lenBuf.readBigUInt64LE(0);
    if (n > BigInt(MAX_HEADER)) fail(abs, `header length ${n} exceeds 100 MB`);
    const headerLen = Number(n);
    if (8 + headerLen > size) fail(abs, `header length ${headerLen} runs past the end of the file (${size} bytes)`);
    const headerBuf = Buffer.alloc(headerLen);
    fs.readSync(fd, headerBuf, 0, headerLen, 8);
    let json: unknown;
    try {
      json = JSON.parse(headerBuf.toString("utf8"));
    } catch (e) {
      fail(abs, `header is not JSON (${(e as Error).message})`);
    }
    if (!json || typeof json !== "object" || Array.isArray(json)) fail(abs, "header is not a JSON object");
    const dataStart = 8 + headerLen;
    const dataSize = size - dataStart;
    const tensors = new Map<string, SafetensorsEntry>();
    let metadata: Record<string, string> = {};
    for (const [name, raw] of Object.entries(json as Record<string, unknown>)) {
      if (name === "__metadata__") {
        metadata = raw as Record<string, string>;
        continue;
      }
      const t = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
      const dtype = t.dtype as SafetensorsDType;
      if (typeof dtype !== "string" || !(dtype in DTYPE_BYTES)) fail(abs, `tensor "${name}" has unknown dtype ${String(t.dtype)}`);
      if (!Array.isArray(t.shape) || !t.shape.every((d) => Number.isInteger(d) && d >= 0))
        fail(abs, `tensor "${name}" has an invalid shape`);
      const offs = t.data_offsets;
      if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => Number.isInteger(o) && o >= 0))
        fail(abs, `tensor "${name}" has invalid data_offsets`);
      const [begin, end] = offs as [number, number];
      const shape = t.shape as number[];
      const expected = shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[dtype];
      if (end - begin !== expected) fail(abs, `tensor "${name}" spans ${end - begin} bytes, its shape needs ${expected}`);
      if (end > dataSize) fail(abs, `tensor "${name}" ends at ${end}, past the data buffer (${dataSize} bytes)`);
      tensors.set(name, { name, dtype, shape, file: abs, offset: dataStart + begin, byteLength: end - begin });
    }
    return { file: abs, dataStart, metadata, tensors };
  } finally {
    fs.closeSync(fd);
  }
}

export interface SafetensorsIndex {
  /** Every tensor of every shard, by name. */
  tensors: Map<string, SafetensorsEntry>;
  files: string[];
  metadata: Record<string, string>;
}

/**
 * Reads all the weights of a Hugging Face folder: `model.safetensors.index.json` (sharded) when
 * present, else every `*.safetensors` file in it.
 */
export function readSafetensorsFolder(dir: string): SafetensorsIndex {
  const indexFile = path.join(dir, "model.safetensors.index.json");
  let files: string[];
  if (fs.existsSync(indexFile)) {
    const index = JSON.parse(fs.readFileSync(indexFile, "utf8")) as { weight_map?: Record<string, string> };
    if (!index.weight_map) throw new Error(`${indexFile}: no "weight_map"`);
    files = [...new Set(Object.values(index.weight_map))].map((f) => path.join(dir, f));
    const tensors = new Map<string, SafetensorsEntry>();
    const headers = new Map(files.map((f) => [path.resolve(f), readSafetensorsHeader(f)]));
    for (const [name, shard] of Object.entries(index.weight_map)) {
      const entry = headers.get(path.resolve(dir, shard))!.tensors.get(name);
      if (!entry) throw new Error(`${indexFile}: "${name}" is mapped to ${shard}, which does not contain it`);
      tensors.set(name, entry);
    }
    const metadata = Object.assign({}, ...[...headers.values()].map((h) => h.metadata));
    return { tensors, files: files.map((f) => path.resolve(f)), metadata };
  }
  files = fs
    .readdirSync(dir)
    .filter((f) => f.endsWith(".safetensors"))
    .sort()
    .map((f) => path.join(dir, f));
  if (files.length === 0) throw new Error(`${dir}: no *.safetensors files`);
  const tensors = new Map<string, SafetensorsEntry>();
  let metadata: Record<string, string> = {};
  for (const f of files) {
    const h = readSafetensorsHeader(f);
    metadata = { ...metadata, ...h.metadata };
    for (const [name, e] of h.tensors) {
      if (tensors.has(name)) throw new Error(`${dir}: tensor "${name}" appears in more than one file`);
      tensors.set(name, e);
    }
  }
  return { tensors, files: files.map((f) => path.resolve(f)), metadata };
}

/** The raw bytes of one tensor, read from its file at its offset. */
export function readTensorBytes(entry: SafetensorsEntry): Buffer {
  const buf = Buffer.alloc(entry.byteLength);
  const fd = fs.openSync(entry.file, "r");
  try {
    let done = 0;
    while (done < entry.byteLength) {
      const n = fs.readSync(fd, buf, done, entry.byteLength - done, entry.offset + done);
      if (n === 0) throw new Error(`${entry.file}: unexpected end of file reading "${entry.name}"`);
      done += n;
    }
  } finally {
    fs.closeSync(fd);
  }
  return buf;
}

/** Any float tensor (F32, F16, BF16, F64) as fp32. */
export function decodeFloatTensor(dtype: SafetensorsDType | "f32" | "f16" | "bf16", bytes: Uint8Array): Float32Array {
  switch (dtype) {
    case "F32":
    case "f32":
      return asFloat32(bytes).slice();
    case "F16":
    case "f16":
      return decodeF16(asUint16(bytes));
    case "BF16":
    case "bf16":
      return decodeBf16(asUint16(bytes));
    case "F64": {
      const src = bytes.byteOffset % 8 === 0 ? new Float64Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >> 3) : new Float64Array(bytes.slice().buffer);
      return Float32Array.from(src);
    }
    default:
      throw new Error(`cannot read a ${dtype} tensor as floats`);
  }
}

export function readFloat32(entry: SafetensorsEntry): Float32Array {
  return decodeFloatTensor(entry.dtype, readTensorBytes(entry));
}

export type WritableDType = "F32" | "F16" | "BF16";

export interface TensorToWrite {
  name: string;
  shape: number[];
  /** fp32 values, stored as `dtype` (converted with round-to-nearest-even). */
  data: Float32Array;
  dtype?: WritableDType;
}

/**
 * Encodes tensors as a safetensors file in memory. Tensors are laid out in the order given, the
 * header is padded with spaces to a multiple of 8 bytes (as the reference writer does) and
 * carries `__metadata__` (default `{"format":"pt"}`, which PEFT and transformers expect).
 */
export function encodeSafetensors(tensors: TensorToWrite[], metadata: Record<string, string> = { format: "pt" }): Buffer {
  const header: Record<string, unknown> = { __metadata__: metadata };
  const parts: Uint8Array[] = [];
  let offset = 0;
  const seen = new Set<string>();
  for (const t of tensors) {
    if (seen.has(t.name)) throw new Error(`duplicate tensor name "${t.name}"`);
    seen.add(t.name);
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (count !== t.data.length) throw new Error(`tensor "${t.name}": shape [${t.shape}] needs ${count} values, got ${t.data.length}`);
    const dtype = t.dtype ?? "F32";
    let bytes: Uint8Array;
    if (dtype === "F32") bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    else {
      const half = dtype === "F16" ? encodeF16(t.data) : encodeBf16(t.data);
      bytes = new Uint8Array(half.buffer, half.byteOffset, half.byteLength);
    }
    header[t.name] = { dtype, shape: t.shape, data_offsets: [offset, offset + bytes.byteLength] };
    parts.push(bytes);
    offset += bytes.byteLength;
  }
  let json = JSON.stringify(header);
  const jsonBytes = Buffer.byteLength(json, "utf8");
  json += " ".repeat((8 - (jsonBytes % 8)) % 8);
  const headerBuf = Buffer.from(json, "utf8");
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(headerBuf.length));
  return Buffer.concat([len, headerBuf, ...parts]);
}

/** Writes a safetensors file atomically (temporary name, then rename), so a crash leaves no torn file. */
export function writeSafetensors(file: string, tensors: TensorToWrite[], metadata?: Record<string, string>): void {
  const buf = encodeSafetensors(tensors, metadata);
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, buf);
  fs.renameSync(tmp, file);
}
