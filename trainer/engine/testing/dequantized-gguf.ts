// A copy of a quantized GGUF with every tensor dequantized to F32 (same names, same layout, same
// metadata), written by our GGUF reader and writer. llama.cpp running this copy computes with
// exactly the weights our engine sees, in f32 matmuls; the gap between it and llama.cpp on the
// original file is what llama.cpp's quantized arithmetic (8-bit activations in the quantized dot
// products) contributes, which is the yardstick for the forward-pass test.
import fs from "node:fs";
import path from "node:path";
import {
  GgmlType,
  GgufValueType,
  readGguf,
  readGgufTensorFloat32,
  writeGguf,
  type GgufMetaValue,
  type GgufTensorToWrite,
} from "../../../adapters/index.js";

const TAGS = new Map<number, string>([
  [GgufValueType.UINT8, "u8"],
  [GgufValueType.INT8, "i8"],
  [GgufValueType.UINT16, "u16"],
  [GgufValueType.INT16, "i16"],
  [GgufValueType.UINT32, "u32"],
  [GgufValueType.INT32, "i32"],
  [GgufValueType.FLOAT32, "f32"],
  [GgufValueType.FLOAT64, "f64"],
  [GgufValueType.UINT64, "u64"],
  [GgufValueType.INT64, "i64"],
  [GgufValueType.BOOL, "bool"],
  [GgufValueType.STRING, "string"],
]);

/** Writes (once) `<dir>/<name>.f32.gguf` from a quantized GGUF; returns its path. */
export function ensureDequantizedGguf(source: string, dir: string): string {
  const target = path.join(dir, `${path.basename(source, ".gguf")}.f32.gguf`);
  if (fs.existsSync(target)) return target;
  fs.mkdirSync(dir, { recursive: true });
  const g = readGguf(source);
  const metadata: Record<string, GgufMetaValue> = {};
  for (const [key, value] of g.metadata) {
    if (key === "general.alignment") continue;
    const t = g.metadataTypes.get(key)!;
    if (t.type === GgufValueType.ARRAY) {
      const item = TAGS.get(t.itemType!);
      if (!item) throw new Error(`metadata ${key}: nested arrays are not copied`);
      metadata[key] = { type: "array", itemType: item, value } as GgufMetaValue;
    } else {
      metadata[key] = { type: TAGS.get(t.type), value } as GgufMetaValue;
    }
  }
  metadata["general.file_type"] = { type: "u32", value: 0 }; // LLAMA_FTYPE_ALL_F32
  const tensors: GgufTensorToWrite[] = [];
  for (const [name, info] of g.tensors) {
    const data = readGgufTensorFloat32(g, name);
    tensors.push({ name, dims: info.dims, type: GgmlType.F32, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) });
  }
  writeGguf(target, { metadata, tensors, alignment: g.alignment });
  return target;
}
