import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { runPython } from "../../test/support/python-tools.js";
import { bf16ToFloat, floatToBf16, floatToHalf, halfToFloat } from "./float16.js";
import {
  encodeSafetensors,
  readFloat32,
  readSafetensorsFolder,
  readSafetensorsHeader,
  readTensorBytes,
  writeSafetensors,
} from "./safetensors.js";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "st-test-"));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function randomFloats(n: number, seed: number): Float32Array {
  let s = seed;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    out[i] = ((s / 2 ** 32) * 2 - 1) * 3;
  }
  return out;
}

describe("half-precision conversions", () => {
  it("round-trips every fp16 and bf16 bit pattern that is not NaN", () => {
    for (let h = 0; h < 65536; h++) {
      const f = halfToFloat(h);
      if (!Number.isNaN(f)) expect(floatToHalf(f)).toBe(h);
      const b = bf16ToFloat(h);
      if (!Number.isNaN(b)) expect(floatToBf16(b)).toBe(h);
    }
  });

  it("rounds to nearest even, overflows to infinity, underflows to subnormals", () => {
    expect(floatToHalf(1 + 2 ** -11)).toBe(0x3c00); // tie → even (down)
    expect(floatToHalf(1 + 3 * 2 ** -11)).toBe(0x3c02); // tie → even (up)
    expect(floatToHalf(65520)).toBe(0x7c00);
    expect(floatToHalf(2 ** -24)).toBe(0x0001);
    expect(floatToHalf(2 ** -26)).toBe(0x0000);
    expect(floatToBf16(1 + 2 ** -8)).toBe(0x3f80);
    expect(floatToBf16(1 + 3 * 2 ** -8)).toBe(0x3f82);
  });
});

describe("safetensors", () => {
  const a = randomFloats(6 * 5, 1);
  const b = randomFloats(7, 2);
  const c = randomFloats(4 * 3, 3);

  it("writes F32/F16/BF16 that the Python safetensors reader loads with the same values", () => {
    const file = path.join(tmp, "ours.safetensors");
    writeSafetensors(file, [
      { name: "a", shape: [6, 5], data: a },
      { name: "b.f16", shape: [7], data: b, dtype: "F16" },
      { name: "c.bf16", shape: [4, 3], data: c, dtype: "BF16" },
    ]);
    const raw = fs.readFileSync(file);
    const headerLen = Number(raw.readBigUInt64LE(0));
    expect(headerLen % 8).toBe(0);
    expect(JSON.parse(raw.subarray(8, 8 + headerLen).toString()).__metadata__).toEqual({ format: "pt" });
    const out = runPython(
      `import sys, json, numpy as np
from safetensors import safe_open
with safe_open(sys.argv[1], "np") as f:
  meta = f.metadata()
  t = {k: f.get_tensor(k) for k in ("a", "b.f16")}
  cdt = f.get_slice("c.bf16").get_dtype()
def bits(x):
  return x.view(np.uint16).astype(int).tolist() if x.dtype == np.float16 else x.astype(np.float64).tolist()
print(json.dumps({"meta": meta, "a": t["a"].tolist(), "ashape": list(t["a"].shape), "b": bits(t["b.f16"]), "bdt": str(t["b.f16"].dtype), "cdt": cdt}))`,
      [file],
    );
    const got = JSON.parse(out) as { meta: unknown; a: number[][]; ashape: number[]; b: number[]; bdt: string; cdt: string };
    expect(got.meta).toEqual({ format: "pt" });
    expect(got.ashape).toEqual([6, 5]);
    expect(Float32Array.from(got.a.flat())).toEqual(a);
    expect(got.bdt).toBe("float16");
    expect(got.b).toEqual(Array.from(b, (x) => floatToHalf(x)));
    // numpy has no bfloat16, so only the tag is checked here; the values are checked in the round trip.
    expect(got.cdt).toBe("BF16");
  });

  it("reads a file written by the Python safetensors writer, lazily, at the right offsets", () => {
    const file = path.join(tmp, "theirs.safetensors");
    runPython(
      `import sys, numpy as np
from safetensors.numpy import save_file
x = np.arange(24, dtype=np.float32).reshape(2, 3, 4) / 7
y = (np.arange(10, dtype=np.float32) - 5).astype(np.float16)
save_file({"x": x, "y": y, "z": np.zeros((0, 3), dtype=np.float32)}, sys.argv[1], metadata={"hello": "world"})`,
      [file],
    );
    const h = readSafetensorsHeader(file);
    expect(h.metadata).toEqual({ hello: "world" });
    const x = h.tensors.get("x")!;
    expect(x.shape).toEqual([2, 3, 4]);
    expect(x.dtype).toBe("F32");
    expect(readFloat32(x)).toEqual(Float32Array.from({ length: 24 }, (_, i) => i / 7));
    expect(readFloat32(h.tensors.get("y")!)).toEqual(Float32Array.from({ length: 10 }, (_, i) => i - 5));
    expect(h.tensors.get("z")!.byteLength).toBe(0);
    // The offset is absolute: the raw bytes at it are the tensor.
    const raw = fs.readFileSync(file).subarray(x.offset, x.offset + x.byteLength);
    expect(Buffer.compare(raw, readTensorBytes(x))).toBe(0);
  });

  it("round-trips bit-exactly, including BF16", () => {
    const file = path.join(tmp, "rt.safetensors");
    writeSafetensors(file, [{ name: "c", shape: [4, 3], data: c, dtype: "BF16" }, { name: "a", shape: [30], data: a }]);
    const h = readSafetensorsHeader(file);
    expect(readFloat32(h.tensors.get("a")!)).toEqual(a);
    expect(readFloat32(h.tensors.get("c")!)).toEqual(Float32Array.from(c, (v) => bf16ToFloat(floatToBf16(v))));
  });

  it("reads a sharded folder through model.safetensors.index.json", () => {
    const dir = path.join(tmp, "sharded");
    fs.mkdirSync(dir);
    writeSafetensors(path.join(dir, "model-00001-of-00002.safetensors"), [{ name: "w1", shape: [2, 2], data: a.subarray(0, 4) }]);
    writeSafetensors(path.join(dir, "model-00002-of-00002.safetensors"), [{ name: "w2", shape: [3], data: b.subarray(0, 3) }]);
    fs.writeFileSync(
      path.join(dir, "model.safetensors.index.json"),
      JSON.stringify({ metadata: { total_size: 28 }, weight_map: { w1: "model-00001-of-00002.safetensors", w2: "model-00002-of-00002.safetensors" } }),
    );
    const idx = readSafetensorsFolder(dir);
    expect([...idx.tensors.keys()].sort()).toEqual(["w1", "w2"]);
    expect(readFloat32(idx.tensors.get("w2")!)).toEqual(b.subarray(0, 3));
    expect(idx.tensors.get("w1")!.file).toMatch(/00001-of-00002/);
  });

  it("rejects corrupt files with a clear error", () => {
    const good = encodeSafetensors([{ name: "a", shape: [6, 5], data: a }]);
    const cases: [string, Buffer, RegExp][] = [
      ["short", Buffer.alloc(4), /shorter than the 8-byte header length/],
      ["huge-header", Buffer.concat([Buffer.from([0, 0, 0, 0, 0, 0, 0, 1]), Buffer.alloc(8)]), /exceeds 100 MB/],
      ["truncated", good.subarray(0, good.length - 4), /past the data buffer/],
      ["not-json", Buffer.concat([Buffer.from([4, 0, 0, 0, 0, 0, 0, 0]), Buffer.from("{{{{")]), /not JSON/],
    ];
    for (const [name, bytes, err] of cases) {
      const f = path.join(tmp, `${name}.safetensors`);
      fs.writeFileSync(f, bytes);
      expect(() => readSafetensorsHeader(f)).toThrow(err);
    }
    expect(() => encodeSafetensors([{ name: "a", shape: [2, 2], data: a }])).toThrow(/needs 4 values/);
  });
});
