// ModelWeights over a GGUF file or a folder of safetensors, in Hugging Face names and layout.
// Float tensors stay in their files (file + offset, for ONNX Runtime external data); quantized
// GGUF tensors, and GGUF q/k of the `llama` architecture (whose rows llama.cpp permuted), are
// decoded on first use into fp32 and cached.
import fs from "node:fs";
import type { GgufFile, SafetensorsEntry } from "../../../adapters/index.js";
import {
  GgmlType,
  decodeFloatTensor,
  ggmlTypeName,
  ggufToHfName,
  readFloat32,
  readGgufTensorBytes,
  readGgufTensorFloat32,
  unpermuteRowsFromGguf,
} from "../../../adapters/index.js";
import type { ModelConfig, ModelWeights, WeightDType, WeightTensor } from "./types.js";

abstract class BaseWeights implements ModelWeights {
  protected readonly cache = new Map<string, WeightTensor>();
  constructor(readonly config: ModelConfig) {}
  abstract names(): string[];
  protected abstract load(name: string): WeightTensor | undefined;

  tensor(name: string): WeightTensor {
    let t = this.cache.get(name);
    if (!t) {
      t = this.load(name);
      if (!t) throw new Error(`model has no weight named "${name}"`);
      this.cache.set(name, t);
    }
    return t;
  }

  float32(name: string): Float32Array {
    const t = this.tensor(name);
    if ("data" in t) return t.data;
    const buf = Buffer.alloc(t.byteLength);
    const fd = fs.openSync(t.file, "r");
    try {
      fs.readSync(fd, buf, 0, t.byteLength, t.offset);
    } finally {
      fs.closeSync(fd);
    }
    return decodeFloatTensor(t.dtype, buf);
  }

  /** Drops decoded tensors (the memory of a dequantized model). */
  release(): void {
    this.cache.clear();
  }
}

const FLOAT_GGML: Partial<Record<number, WeightDType>> = { [GgmlType.F32]: "f32", [GgmlType.F16]: "f16", [GgmlType.BF16]: "bf16" };

export class GgufWeights extends BaseWeights {
  private readonly byHf = new Map<string, string>();

  constructor(
    private readonly g: GgufFile,
    config: ModelConfig,
  ) {
    super(config);
    for (const name of g.tensors.keys()) {
      const hf = ggufToHfName(name);
      if (hf) this.byHf.set(hf, name);
    }
  }

  names(): string[] {
    return [...this.byHf.keys()];
  }

  protected load(name: string): WeightTensor | undefined {
    const ggName = this.byHf.get(name);
    if (!ggName) return undefined;
    const info = this.g.tensors.get(ggName)!;
    const shape = [...info.dims].reverse();
    const permuted = this.config.architecture === "llama" || this.config.architecture === "mistral";
    const isQ = /\.self_attn\.q_proj\./.test(name);
    const isK = /\.self_attn\.k_proj\./.test(name);
    const floatType = FLOAT_GGML[info.type];
    if (floatType && !(permuted && (isQ || isK)))
      return { name, shape, dtype: floatType, file: this.g.path, offset: info.offset, byteLength: info.byteLength };
    let data: Float32Array;
    try {
      data = readGgufTensorFloat32(this.g, ggName);
    } catch (e) {
      throw new Error(`${this.g.path}: cannot load "${ggName}" (${ggmlTypeName(info.type)}): ${(e as Error).message}`);
    }
    if (permuted && (isQ || isK)) {
      const rows = shape[0]!;
      const rowLen = shape.length > 1 ? shape[1]! : 1;
      data = unpermuteRowsFromGguf(data, rows, rowLen, isQ ? this.config.numHeads : this.config.numKvHeads);
    }
    return { name, shape, dtype: "f32", data };
  }

  /** Raw stored bytes of a GGUF tensor by its GGUF name (for tests and tools). */
  rawBytes(ggufName: string): Buffer {
    return readGgufTensorBytes(this.g, ggufName);
  }
}

const FLOAT_ST: Partial<Record<string, WeightDType>> = { F32: "f32", F16: "f16", BF16: "bf16" };

export class SafetensorsWeights extends BaseWeights {
  constructor(
    private readonly entries: Map<string, SafetensorsEntry>,
    config: ModelConfig,
  ) {
    super(config);
  }

  names(): string[] {
    return [...this.entries.keys()];
  }

  protected load(name: string): WeightTensor | undefined {
    const e = this.entries.get(name);
    if (!e) return undefined;
    const dtype = FLOAT_ST[e.dtype];
    if (dtype) return { name, shape: e.shape, dtype, file: e.file, offset: e.offset, byteLength: e.byteLength };
    if (e.dtype === "F64") return { name, shape: e.shape, dtype: "f32", data: readFloat32(e) };
    throw new Error(`${e.file}: weight "${name}" has dtype ${e.dtype}; only F32, F16, BF16 (and F64) checkpoints are supported`);
  }
}
