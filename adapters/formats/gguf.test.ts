import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REPO_ROOT } from "../../test/support/model-fixture.js";
import { ensurePythonTools } from "../../test/support/python-tools.js";
import { floatToHalf } from "./float16.js";
import {
  GgmlType,
  encodeGguf,
  ggmlTypeName,
  readGguf,
  readGgufTensorBytes,
  readGgufTensorFloat32,
  writeGguf,
  type GgufFile,
} from "./gguf.js";

const SCRIPT = path.join(REPO_ROOT, "test/support/py/gguf_crosscheck.py");
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "gguf-test-"));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function py(args: string[]): string {
  return execFileSync(ensurePythonTools(), [SCRIPT, ...args], { encoding: "utf8", maxBuffer: 512 * 1024 * 1024 });
}

function readF32(file: string): Float32Array {
  const b = fs.readFileSync(file);
  return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
}

/** Index of the first element whose bits differ (NaN-safe), or -1. */
function firstBitDifference(a: Float32Array, b: Float32Array): number {
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  if (ua.length !== ub.length) return 0;
  for (let i = 0; i < ua.length; i++) if (ua[i] !== ub[i]) return i;
  return -1;
}

describe("GGUF reader on a file written by gguf-py", () => {
  let g: GgufFile;
  let meta: { tensors: { name: string; type: number; shape: number[] }[] };
  beforeAll(() => {
    py(["make-file", tmp]);
    g = readGguf(path.join(tmp, "ref.gguf"));
    meta = JSON.parse(fs.readFileSync(path.join(tmp, "meta.json"), "utf8"));
  });

  it("reads metadata of every value type", () => {
    const m = g.metadata;
    expect(g.version).toBe(3);
    expect(m.get("general.architecture")).toBe("llama");
    expect(m.get("t.u8")).toBe(200);
    expect(m.get("t.i8")).toBe(-100);
    expect(m.get("t.u16")).toBe(60000);
    expect(m.get("t.i16")).toBe(-30000);
    expect(m.get("t.u32")).toBe(4000000000);
    expect(m.get("t.i32")).toBe(-2000000000);
    expect(m.get("t.f32")).toBe(Math.fround(0.1));
    expect(m.get("t.u64")).toBe(2 ** 40 + 3);
    expect(m.get("t.i64")).toBe(-(2 ** 40) - 3);
    expect(m.get("t.f64")).toBe(0.1);
    expect(m.get("t.bool")).toBe(true);
    expect(m.get("t.str")).toBe("héllo ✓ 世界");
    expect(Array.from(m.get("t.arr_i32") as Int32Array)).toEqual([1, -2, 3]);
    expect(m.get("t.arr_str")).toEqual(["a", "", "ü"]);
    expect(Array.from(m.get("t.arr_f32") as Float32Array)).toEqual([0.5, -1.25]);
  });

  it("dequantizes every supported type bit-identically to gguf-py", () => {
    const types = meta.tensors.map((t) => ggmlTypeName(t.type)).sort();
    expect(types).toEqual(["BF16", "F16", "F32", "Q2_K", "Q3_K", "Q4_0", "Q4_1", "Q4_K", "Q5_0", "Q5_1", "Q5_K", "Q6_K", "Q8_0"]);
    for (const t of meta.tensors) {
      const info = g.tensors.get(t.name)!;
      expect(info.type).toBe(t.type);
      expect(info.dims).toEqual([...t.shape].reverse());
      const ours = readGgufTensorFloat32(g, t.name);
      const ref = readF32(path.join(tmp, `${t.name}.f32`));
      const at = firstBitDifference(ours, ref);
      expect(at, `${t.name}: element ${at}: ours ${ours[at]} gguf-py ${ref[at]}`).toBe(-1);
    }
  });
});

describe("GGUF reader on the real SmolLM2-135M-Instruct Q4_1 file", () => {
  it("parses its header and dequantizes its Q4_1, Q8_0 and F32 tensors exactly as gguf-py does", () => {
    const model = process.env.CLAWLOOP_TEST_MODEL!;
    const g = readGguf(model);
    expect(g.metadata.get("general.architecture")).toBe("llama");
    expect(g.tensors.size).toBe(272);
    expect((g.metadata.get("tokenizer.ggml.tokens") as string[]).length).toBe(49152);
    const names = ["token_embd.weight", "blk.0.attn_q.weight", "blk.0.attn_k.weight", "blk.0.ffn_down.weight", "blk.29.ffn_up.weight", "blk.0.attn_norm.weight", "output_norm.weight"];
    const byType = new Set(names.map((n) => ggmlTypeName(g.tensors.get(n)!.type)));
    expect([...byType].sort()).toEqual(["F32", "Q4_1", "Q8_0"]);
    py(["dequant", model, tmp, ...names]);
    for (const n of names) {
      const ours = readGgufTensorFloat32(g, n);
      const ref = readF32(path.join(tmp, `${n}.f32`));
      expect(ours.length).toBe(ref.length);
      const at = firstBitDifference(ours, ref);
      expect(at, `${n}: element ${at}`).toBe(-1);
    }
  });
});

describe("GGUF writer", () => {
  it("writes files that gguf-py reads back with the same metadata and tensors", () => {
    const file = path.join(tmp, "ours.gguf");
    const f32 = Float32Array.from({ length: 8 * 4 }, (_, i) => i / 8 - 1);
    const f16 = Uint16Array.from(f32, (v) => floatToHalf(v * 3));
    writeGguf(file, {
      metadata: {
        "general.architecture": { type: "string", value: "llama" },
        "general.type": { type: "string", value: "adapter" },
        "adapter.lora.alpha": { type: "f32", value: 32 },
        "x.u32": { type: "u32", value: 7 },
        "x.bool": { type: "bool", value: false },
        "x.i64": { type: "i64", value: -5n },
        "x.tokens": { type: "array", itemType: "string", value: ["<s>", "ü", ""] },
        "x.types": { type: "array", itemType: "i32", value: [1, 3, -1] },
      },
      tensors: [
        { name: "a.weight", dims: [4, 8], type: GgmlType.F32, data: new Uint8Array(f32.buffer) },
        { name: "b.weight", dims: [8, 4], type: GgmlType.F16, data: new Uint8Array(f16.buffer) },
      ],
    });
    const got = JSON.parse(py(["read", file])) as {
      meta: Record<string, { type: string; value: unknown }>;
      tensors: { name: string; type: string; ne: number[]; values: number[] }[];
    };
    expect(got.meta["general.type"]).toEqual({ type: "STRING", value: "adapter" });
    expect(got.meta["adapter.lora.alpha"]).toEqual({ type: "FLOAT32", value: 32 });
    expect(got.meta["x.u32"]).toEqual({ type: "UINT32", value: 7 });
    expect(got.meta["x.bool"]).toEqual({ type: "BOOL", value: false });
    expect(got.meta["x.i64"]).toEqual({ type: "INT64", value: -5 });
    expect(got.meta["x.tokens"]).toEqual({ type: "ARRAY", value: ["<s>", "ü", ""] });
    expect(got.meta["x.types"]).toEqual({ type: "ARRAY", value: [1, 3, -1] });
    expect(got.tensors.map((t) => [t.name, t.type, t.ne])).toEqual([
      ["a.weight", "F32", [4, 8]],
      ["b.weight", "F16", [8, 4]],
    ]);
    expect(Float32Array.from(got.tensors[0]!.values)).toEqual(f32);
    // And our reader round-trips our writer.
    const g = readGguf(file);
    expect(readGgufTensorFloat32(g, "a.weight")).toEqual(f32);
    expect(new Uint16Array(readGgufTensorBytes(g, "b.weight").buffer.slice(0))).toEqual(f16);
    expect(Number(g.metadata.get("x.i64"))).toBe(-5);
    expect(g.tensors.get("b.weight")!.offset % 32).toBe(0);
  });

  it("refuses tensors whose bytes do not match their shape and type", () => {
    expect(() =>
      encodeGguf({ metadata: {}, tensors: [{ name: "x", dims: [32, 2], type: GgmlType.Q8_0, data: new Uint8Array(34) }] }),
    ).toThrow(/needs 68 bytes, got 34/);
  });
});

describe("GGUF failure behaviour", () => {
  const good = encodeGguf({
    metadata: { "general.architecture": { type: "string", value: "llama" } },
    tensors: [{ name: "w", dims: [64], type: GgmlType.F32, data: new Uint8Array(256) }],
  });
  const cases: [string, Buffer, RegExp][] = [
    ["not-gguf", Buffer.from("PK\x03\x04 definitely a zip file"), /bad magic/],
    ["v1", Buffer.concat([good.subarray(0, 4), Buffer.from([1, 0, 0, 0]), good.subarray(8)]), /version 1 is not supported/],
    ["truncated-header", good.subarray(0, 30), /truncated GGUF header/],
    ["truncated-data", good.subarray(0, good.length - 100), /runs past the end of the file/],
    ["bad-type", Buffer.concat([good.subarray(0, 24 + 8 + 20), Buffer.from([99, 0, 0, 0]), good.subarray(24 + 8 + 24)]), /unknown GGUF metadata value type 99/],
  ];
  for (const [name, bytes, err] of cases) {
    it(`reports ${name} clearly`, () => {
      const f = path.join(tmp, `${name}.gguf`);
      fs.writeFileSync(f, bytes);
      expect(() => readGguf(f)).toThrow(err);
    });
  }

  it("reads version 2 files (same layout as 3 for little-endian files)", () => {
    const f = path.join(tmp, "v2.gguf");
    fs.writeFileSync(f, Buffer.concat([good.subarray(0, 4), Buffer.from([2, 0, 0, 0]), good.subarray(8)]));
    const g = readGguf(f);
    expect(g.version).toBe(2);
    expect(readGgufTensorFloat32(g, "w")).toHaveLength(64);
  });

  it("names the tensor and type when asked to dequantize an unsupported type", () => {
    const f = path.join(tmp, "iq.gguf");
    // Q8_1 blocks have a known size but no decoder (no model file stores Q8_1).
    fs.writeFileSync(f, encodeGguf({ metadata: {}, tensors: [{ name: "w", dims: [32], type: GgmlType.Q8_1, data: new Uint8Array(36) }] }));
    expect(() => readGgufTensorFloat32(readGguf(f), "w")).toThrow(/Q8_1: not supported/);
    expect(() => readGgufTensorFloat32(readGguf(f), "nope")).toThrow(/no tensor named "nope"/);
  });
});
