"""Reference side of clawloop's GGUF tests, using gguf-py (llama.cpp's own Python package).

  make-file OUT_DIR        write OUT_DIR/ref.gguf (every metadata type; tensors of every
                           supported ggml type) and, per tensor, OUT_DIR/<name>.f32 holding
                           gguf-py's dequantization; OUT_DIR/meta.json describes it all.
  dequant GGUF OUT_DIR N.. dequantize the named tensors of GGUF with gguf-py into OUT_DIR/<name>.f32
  read GGUF                print metadata (JSON) and tensor infos of a GGUF written by clawloop.
"""
import json
import os
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf.quants import dequantize, quantize

QUANTIZABLE = [T.F32, T.F16, T.BF16, T.Q8_0, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1]
# gguf-py dequantizes these but cannot quantize them: we store random block bytes instead
# (every bit pattern is a valid block once the fp16 scales are finite), so the comparison
# covers all code paths of the decoder, not just the patterns a quantizer would produce.
RANDOM_BLOCKS = {T.Q2_K: [80, 82], T.Q3_K: [108], T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208]}


def make_file(out_dir):
    rng = np.random.default_rng(1234)
    w = gguf.GGUFWriter(os.path.join(out_dir, "ref.gguf"), "llama")
    w.add_uint8("t.u8", 200)
    w.add_int8("t.i8", -100)
    w.add_uint16("t.u16", 60000)
    w.add_int16("t.i16", -30000)
    w.add_uint32("t.u32", 4000000000)
    w.add_int32("t.i32", -2000000000)
    w.add_float32("t.f32", 0.1)
    w.add_uint64("t.u64", 2**40 + 3)
    w.add_int64("t.i64", -(2**40) - 3)
    w.add_float64("t.f64", 0.1)
    w.add_bool("t.bool", True)
    w.add_string("t.str", "héllo ✓ 世界")
    w.add_array("t.arr_i32", [1, -2, 3])
    w.add_array("t.arr_str", ["a", "", "ü"])
    w.add_array("t.arr_f32", [0.5, -1.25])
    meta = {"tensors": []}
    rows, cols = 6, 512
    for qt in QUANTIZABLE:
        x = (rng.standard_normal((rows, cols)) * 0.7).astype(np.float32)
        q = quantize(x, qt)
        name = f"q.{qt.name}"
        w.add_tensor(name, q, raw_dtype=qt)
        ref = dequantize(q, qt).astype(np.float32)
        ref.tofile(os.path.join(out_dir, name + ".f32"))
        meta["tensors"].append({"name": name, "type": int(qt), "shape": list(x.shape)})
    for qt, scale_offsets in RANDOM_BLOCKS.items():
        block_elems, block_bytes = gguf.GGML_QUANT_SIZES[qt]
        n_blocks = rows * cols // block_elems
        b = rng.integers(0, 256, size=(n_blocks, block_bytes), dtype=np.uint8)
        for off in scale_offsets:
            scales = (rng.uniform(-0.05, 0.05, size=n_blocks)).astype(np.float16)
            b[:, off:off + 2] = scales.view(np.uint8).reshape(n_blocks, 2)
        q = b.reshape(rows, cols // block_elems * block_bytes)
        name = f"q.{qt.name}"
        w.add_tensor(name, q, raw_dtype=qt)
        dequantize(q, qt).astype(np.float32).tofile(os.path.join(out_dir, name + ".f32"))
        meta["tensors"].append({"name": name, "type": int(qt), "shape": [rows, cols]})
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with open(os.path.join(out_dir, "meta.json"), "w") as f:
        json.dump(meta, f)


def dequant(path, out_dir, names):
    r = gguf.GGUFReader(path)
    by_name = {t.name: t for t in r.tensors}
    for n in names:
        t = by_name[n]
        dequantize(t.data, t.tensor_type).astype(np.float32).tofile(os.path.join(out_dir, n + ".f32"))


def read(path):
    r = gguf.GGUFReader(path)
    meta = {}
    for k, f in r.fields.items():
        if k.startswith("GGUF."):
            continue
        v = f.contents()
        meta[k] = {"type": f.types[0].name, "value": v}
    tensors = [
        {"name": t.name, "type": t.tensor_type.name, "ne": [int(x) for x in t.shape],
         "values": dequantize(t.data, t.tensor_type).astype(np.float64).ravel().tolist()}
        for t in r.tensors
    ]
    print(json.dumps({"meta": meta, "tensors": tensors, "alignment": r.alignment}))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "make-file":
        make_file(sys.argv[2])
    elif cmd == "dequant":
        dequant(sys.argv[2], sys.argv[3], sys.argv[4:])
    elif cmd == "read":
        read(sys.argv[2])
