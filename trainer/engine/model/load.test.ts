import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { GgmlType, decodeFloatTensor, encodeGguf, permuteRowsForGguf, readGguf, type GgufMetaValue, type GgufTensorToWrite } from "../../../adapters/index.js";
import { TINY_SPECIAL, writeTinyHfModel } from "../../../test/support/tiny-models.js";
import { ggufModelConfig, llama3RopeDivisors, llama3ScalingFromFreqs, parseHfConfig } from "./config.js";
import { identifyModel, loadModel } from "./index.js";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "model-test-"));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

// RoPE on one head vector, two conventions. HF (rotate_half): dimension i pairs with i + d/2.
// llama.cpp's `llama` architecture (rope type NORM): dimension 2i pairs with 2i + 1.
function ropeHf(x: Float32Array, pos: number, theta: number): Float64Array {
  const d = x.length, h = d / 2, out = new Float64Array(d);
  for (let i = 0; i < h; i++) {
    const a = pos * theta ** ((-2 * i) / d), c = Math.cos(a), s = Math.sin(a);
    out[i] = x[i]! * c - x[i + h]! * s;
    out[i + h] = x[i + h]! * c + x[i]! * s;
  }
  return out;
}
function ropeAdjacent(x: Float32Array, pos: number, theta: number): Float64Array {
  const d = x.length, out = new Float64Array(d);
  for (let i = 0; i < d / 2; i++) {
    const a = pos * theta ** ((-2 * i) / d), c = Math.cos(a), s = Math.sin(a);
    out[2 * i] = x[2 * i]! * c - x[2 * i + 1]! * s;
    out[2 * i + 1] = x[2 * i + 1]! * c + x[2 * i]! * s;
  }
  return out;
}
function matVec(w: Float32Array, rows: number, cols: number, x: Float32Array): Float32Array {
  const y = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let c = 0; c < cols; c++) s += w[r * cols + c]! * x[c]!;
    y[r] = s;
  }
  return y;
}

describe("loadModel on the real SmolLM2-135M-Instruct GGUF", () => {
  it("reads its config, names weights as Hugging Face does, and references float tensors in the file", async () => {
    const m = await loadModel(process.env.CLAWLOOP_TEST_MODEL!);
    try {
      expect(m.weights.config).toEqual({
        architecture: "llama", hiddenSize: 576, intermediateSize: 1536, numLayers: 30, numHeads: 9, numKvHeads: 3,
        headDim: 64, vocabSize: 49152, rmsNormEps: 1e-5, ropeTheta: 100000, ropeScaling: null, maxPositionEmbeddings: 8192,
        tieWordEmbeddings: true, attentionBias: false, qkNorm: false,
      });
      const names = m.weights.names();
      expect(names).toHaveLength(30 * 9 + 2);
      expect(names).toContain("model.embed_tokens.weight");
      expect(names).toContain("model.layers.29.mlp.down_proj.weight");
      expect(names).not.toContain("lm_head.weight");
      const norm = m.weights.tensor("model.layers.0.input_layernorm.weight");
      expect(norm).toMatchObject({ dtype: "f32", shape: [576], file: process.env.CLAWLOOP_TEST_MODEL });
      const embed = m.weights.tensor("model.embed_tokens.weight");
      expect(embed.shape).toEqual([49152, 576]);
      expect("data" in embed).toBe(true);
      expect(m.weights.tensor("model.layers.0.self_attn.k_proj.weight").shape).toEqual([192, 576]);
      expect(m.weights.tensor("model.layers.3.mlp.down_proj.weight").shape).toEqual([576, 1536]);
      expect(() => m.weights.tensor("model.layers.99.mlp.up_proj.weight")).toThrow(/no weight named/);
      expect(m.name).toBe("SmolLM2-135M-Instruct.Q4_1");
      expect(m.hash).toMatch(/^sha256:[0-9a-f]{64}$/);
      expect((await loadModel(process.env.CLAWLOOP_TEST_MODEL!)).hash).toBe(m.hash);
    } finally {
      m.close();
    }
  });

  it("un-permutes q and k so HF's rotate-half RoPE on our weights equals llama.cpp's RoPE on the file's", async () => {
    // If the rows were left in llama.cpp's order (or permuted the wrong way), the two RoPEs would
    // rotate different pairs of dimensions and disagree.
    const m = await loadModel(process.env.CLAWLOOP_TEST_MODEL!);
    const g = readGguf(process.env.CLAWLOOP_TEST_MODEL!);
    const { hiddenSize: H, numHeads, numKvHeads, headDim: d, ropeTheta } = m.weights.config;
    const x = Float32Array.from({ length: H }, (_, i) => Math.sin(i * 0.37));
    for (const [proj, gg, heads] of [["q_proj", "attn_q", numHeads], ["k_proj", "attn_k", numKvHeads]] as const) {
      const hf = m.weights.float32(`model.layers.0.self_attn.${proj}.weight`);
      const { readGgufTensorFloat32 } = await import("../../../adapters/index.js");
      const raw = readGgufTensorFloat32(g, `blk.0.${gg}.weight`);
      const yHf = matVec(hf, heads * d, H, x);
      const yGg = matVec(raw, heads * d, H, x);
      expect(Array.from(yHf)).not.toEqual(Array.from(yGg)); // the permutation is real
      for (let h = 0; h < heads; h++) {
        const a = ropeHf(yHf.subarray(h * d, (h + 1) * d), 7, ropeTheta);
        const b = ropeAdjacent(yGg.subarray(h * d, (h + 1) * d), 7, ropeTheta);
        // Same multiset of rotated values, placed per each convention: HF's i ↔ llama.cpp's 2i, i+d/2 ↔ 2i+1.
        for (let i = 0; i < d / 2; i++) {
          expect(a[i]).toBeCloseTo(b[2 * i]!, 4);
          expect(a[i + d / 2]).toBeCloseTo(b[2 * i + 1]!, 4);
        }
      }
    }
    m.close();
  });
});

describe("HF config.json parsing", () => {
  it("parses real configs of the supported families", () => {
    const qwen25 = parseHfConfig({ model_type: "qwen2", hidden_size: 896, intermediate_size: 4864, num_hidden_layers: 24, num_attention_heads: 14, num_key_value_heads: 2, vocab_size: 151936, rms_norm_eps: 1e-6, rope_theta: 1000000, max_position_embeddings: 32768, tie_word_embeddings: true, rope_scaling: null });
    expect(qwen25).toMatchObject({ architecture: "qwen2", headDim: 64, numKvHeads: 2, attentionBias: true, qkNorm: false, tieWordEmbeddings: true, ropeScaling: null });
    const qwen3 = parseHfConfig({ model_type: "qwen3", hidden_size: 1024, intermediate_size: 3072, num_hidden_layers: 28, num_attention_heads: 16, num_key_value_heads: 8, head_dim: 128, vocab_size: 151936, rms_norm_eps: 1e-6, rope_theta: 1000000, max_position_embeddings: 40960, tie_word_embeddings: true, attention_bias: false });
    expect(qwen3).toMatchObject({ architecture: "qwen3", headDim: 128, attentionBias: false, qkNorm: true });
    const llama32 = parseHfConfig({ model_type: "llama", hidden_size: 2048, intermediate_size: 8192, num_hidden_layers: 16, num_attention_heads: 32, num_key_value_heads: 8, head_dim: 64, vocab_size: 128256, rms_norm_eps: 1e-5, rope_theta: 500000, max_position_embeddings: 131072, tie_word_embeddings: true, rope_scaling: { factor: 32, high_freq_factor: 4, low_freq_factor: 1, original_max_position_embeddings: 8192, rope_type: "llama3" } });
    expect(llama32.ropeScaling).toEqual({ type: "llama3", factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 });
    const mistral = parseHfConfig({ model_type: "mistral", hidden_size: 4096, intermediate_size: 14336, num_hidden_layers: 32, num_attention_heads: 32, num_key_value_heads: 8, vocab_size: 32768, rms_norm_eps: 1e-5, rope_theta: 1000000, max_position_embeddings: 32768, tie_word_embeddings: false, sliding_window: null });
    expect(mistral).toMatchObject({ architecture: "mistral", headDim: 128, tieWordEmbeddings: false, attentionBias: false });
    const linear = parseHfConfig({ ...mistral, model_type: "llama", hidden_size: 64, intermediate_size: 128, num_hidden_layers: 1, num_attention_heads: 4, vocab_size: 10, rope_scaling: { type: "linear", factor: 2 } });
    expect(linear.ropeScaling).toEqual({ type: "linear", factor: 2 });
    // transformers ≥ 5: rope settings under rope_parameters.
    const v5 = parseHfConfig({ model_type: "llama", hidden_size: 64, intermediate_size: 128, num_hidden_layers: 1, num_attention_heads: 4, vocab_size: 10, rope_parameters: { rope_type: "default", rope_theta: 123 } });
    expect(v5).toMatchObject({ ropeTheta: 123, ropeScaling: null });
  });

  it("rejects what it cannot run, saying why", () => {
    expect(() => parseHfConfig({ model_type: "gemma2" })).toThrow(/model_type "gemma2" is not supported/);
    expect(() => parseHfConfig({ model_type: "llama", hidden_size: 8, num_attention_heads: 2 })).toThrow(/missing "intermediate_size"/);
    expect(() =>
      parseHfConfig({ model_type: "llama", hidden_size: 8, intermediate_size: 8, num_hidden_layers: 1, num_attention_heads: 2, vocab_size: 4, rope_scaling: { rope_type: "yarn", factor: 4 } }),
    ).toThrow(/RoPE scaling type "yarn" is not supported/);
  });
});

describe("loadModel on synthetic HF folders", () => {
  for (const modelType of ["llama", "mistral", "qwen2", "qwen3"] as const) {
    it(`${modelType}: config, every weight by reference at the right bytes, tokenizer, chat template`, async () => {
      const dir = path.join(tmp, `hf-${modelType}`);
      const values = writeTinyHfModel(dir, {
        modelType,
        headDim: modelType === "qwen3" ? 16 : undefined, // explicit head_dim ≠ hidden/heads
        sharded: modelType === "qwen2",
        dtype: modelType === "mistral" ? "BF16" : modelType === "llama" ? "F16" : "F32",
      });
      const m = await loadModel(dir);
      const c = m.weights.config;
      expect(c.architecture).toBe(modelType);
      expect(c.headDim).toBe(modelType === "qwen3" ? 16 : 8);
      expect(c.attentionBias).toBe(modelType === "qwen2");
      expect(c.qkNorm).toBe(modelType === "qwen3");
      expect(c.tieWordEmbeddings).toBe(modelType === "qwen2" || modelType === "qwen3");
      expect(new Set(m.weights.names())).toEqual(new Set(values.keys()));
      for (const [name, want] of values) {
        const t = m.weights.tensor(name);
        expect("file" in t).toBe(true);
        const got = m.weights.float32(name);
        const tol = t.dtype === "f32" ? 0 : t.dtype === "f16" ? 1e-3 : 1e-2;
        for (let i = 0; i < want.length; i++) expect(Math.abs(got[i]! - want[i]!)).toBeLessThanOrEqual(tol * Math.max(1, Math.abs(want[i]!)));
        if ("file" in t) {
          const fd = fs.openSync(t.file, "r");
          const buf = Buffer.alloc(t.byteLength);
          fs.readSync(fd, buf, 0, t.byteLength, t.offset);
          fs.closeSync(fd);
          expect(decodeFloatTensor(t.dtype, buf)).toEqual(got);
        }
      }
      if (modelType === "qwen3") expect(m.weights.tensor("model.layers.1.self_attn.q_proj.weight").shape).toEqual([64, 32]);
      // Tokenizer from tokenizer.json: merges, specials, BOS from the post-processor (llama/mistral).
      const tok = m.tokenizer;
      const hello = tok.encode("hello");
      expect(hello).toHaveLength(1);
      expect(tok.encode("<|im_start|>hello", { parseSpecial: true })).toEqual([260, hello[0]]);
      expect(tok.encode("<|im_start|>", { parseSpecial: false })).toHaveLength(12);
      const wantsBos = modelType === "llama" || modelType === "mistral";
      expect(tok.bosTokenId).toBe(262);
      expect(tok.eosTokenIds).toEqual([261]);
      expect(tok.encode("hello", { addSpecial: true })).toEqual(wantsBos ? [262, ...hello] : hello);
      const msgs = [{ role: "user", content: "hello" }];
      const text = tok.renderChat(msgs, { addGenerationPrompt: true });
      expect(text).toBe(`${TINY_SPECIAL.bos}<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n`);
      // The template writes BOS itself: it is never doubled.
      expect(tok.encodeChat(msgs, { addGenerationPrompt: true }).filter((i) => i === 262)).toHaveLength(1);
      expect(tok.decode(tok.encodeChat(msgs, { addGenerationPrompt: true }))).toBe(text);
      m.close();
    });
  }

  it("identifyModel gives what loadModel does, without weights (the train loop's start), for a folder and a GGUF file", async () => {
    const dir = path.join(tmp, "identify");
    writeTinyHfModel(dir, { modelType: "qwen2", sharded: true });
    for (const source of [dir, process.env.CLAWLOOP_TEST_MODEL!]) {
      const m = await loadModel(source);
      const id = await identifyModel(source);
      expect(Object.keys(id).sort()).toEqual(["config", "hash", "name", "source", "tokenizer"]);
      expect({ source: id.source, name: id.name, hash: id.hash, config: id.config }).toEqual({ source: m.source, name: m.name, hash: m.hash, config: m.weights.config });
      expect(m.config).toEqual(m.weights.config);
      const chat = [{ role: "user" as const, content: "Hello there" }];
      expect(id.tokenizer.encodeChat(chat, { addGenerationPrompt: true })).toEqual(m.tokenizer.encodeChat(chat, { addGenerationPrompt: true }));
      m.close();
    }
    await expect(identifyModel(path.join(tmp, "nope"))).rejects.toThrow(/model not found/);
  });

  it("gives different hashes to different weights and the same hash to the same", async () => {
    const a = path.join(tmp, "hash-a"), b = path.join(tmp, "hash-b"), c = path.join(tmp, "hash-c");
    writeTinyHfModel(a, { modelType: "llama", seed: 1 });
    writeTinyHfModel(b, { modelType: "llama", seed: 2 });
    writeTinyHfModel(c, { modelType: "llama", seed: 1 });
    const [ha, hb, hc] = await Promise.all([a, b, c].map(async (d) => (await loadModel(d)).hash));
    expect(ha).not.toBe(hb);
    expect(ha).toBe(hc);
  });

  it("reports bad folders clearly", async () => {
    await expect(loadModel(path.join(tmp, "nope"))).rejects.toThrow(/model not found/);
    const empty = path.join(tmp, "empty");
    fs.mkdirSync(empty);
    await expect(loadModel(empty)).rejects.toThrow(/no config.json/);
    const noWeights = path.join(tmp, "no-weights");
    writeTinyHfModel(noWeights, { modelType: "llama" });
    fs.rmSync(path.join(noWeights, "model.safetensors"));
    await expect(loadModel(noWeights)).rejects.toThrow(/no \*\.safetensors/);
    const badJson = path.join(tmp, "bad-json");
    writeTinyHfModel(badJson, { modelType: "llama" });
    fs.writeFileSync(path.join(badJson, "config.json"), "{ nope");
    await expect(loadModel(badJson)).rejects.toThrow(/config.json: not valid JSON/);
  });
});

// A small GGUF in llama.cpp's layout, written with our writer, for the GGUF paths of the other
// architectures (no real Qwen2/Qwen3/Llama-3 GGUF is reachable here).
function tinyGguf(arch: "llama" | "qwen2" | "qwen3", extra: { tensors?: GgufTensorToWrite[]; meta?: Record<string, GgufMetaValue> } = {}) {
  const H = 32, heads = 4, kv = 2, d = arch === "qwen3" ? 16 : 8, I = 48, V = 8;
  const f32 = (n: number, seed: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.1 + seed));
  const tensors: GgufTensorToWrite[] = [];
  const values = new Map<string, Float32Array>();
  const add = (name: string, ne: number[], type: number = GgmlType.F32) => {
    const v = f32(ne.reduce((a, b) => a * b, 1), tensors.length);
    values.set(name, v);
    tensors.push({ name, dims: ne, type, data: new Uint8Array(v.buffer) });
  };
  add("token_embd.weight", [H, V]);
  add("output_norm.weight", [H]);
  add("output.weight", [H, V]);
  add("blk.0.attn_norm.weight", [H]);
  add("blk.0.ffn_norm.weight", [H]);
  add("blk.0.attn_q.weight", [H, heads * d]);
  add("blk.0.attn_k.weight", [H, kv * d]);
  add("blk.0.attn_v.weight", [H, kv * d]);
  add("blk.0.attn_output.weight", [heads * d, H]);
  add("blk.0.ffn_gate.weight", [H, I]);
  add("blk.0.ffn_up.weight", [H, I]);
  add("blk.0.ffn_down.weight", [I, H]);
  if (arch === "qwen2") for (const [n, len] of [["q", heads * d], ["k", kv * d], ["v", kv * d]] as const) add(`blk.0.attn_${n}.bias`, [len]);
  if (arch === "qwen3") for (const n of ["q", "k"]) add(`blk.0.attn_${n}_norm.weight`, [d]);
  tensors.push(...(extra.tensors ?? []));
  const meta: Record<string, GgufMetaValue> = {
    "general.architecture": { type: "string", value: arch },
    "general.type": { type: "string", value: "model" },
    [`${arch}.block_count`]: { type: "u32", value: 1 },
    [`${arch}.context_length`]: { type: "u32", value: 4096 },
    [`${arch}.embedding_length`]: { type: "u32", value: H },
    [`${arch}.feed_forward_length`]: { type: "u32", value: I },
    [`${arch}.attention.head_count`]: { type: "u32", value: heads },
    [`${arch}.attention.head_count_kv`]: { type: "u32", value: kv },
    [`${arch}.attention.layer_norm_rms_epsilon`]: { type: "f32", value: 1e-6 },
    [`${arch}.rope.freq_base`]: { type: "f32", value: 1000000 },
    ...(arch === "qwen3" ? { [`${arch}.attention.key_length`]: { type: "u32", value: d } as GgufMetaValue } : {}),
    "tokenizer.ggml.model": { type: "string", value: "gpt2" },
    "tokenizer.ggml.pre": { type: "string", value: "qwen2" },
    "tokenizer.ggml.tokens": { type: "array", itemType: "string", value: ["a", "b", "ab", "<|im_start|>", "<|im_end|>", "c", "d", "e"] },
    "tokenizer.ggml.token_type": { type: "array", itemType: "i32", value: [1, 1, 1, 3, 3, 1, 1, 1] },
    "tokenizer.ggml.merges": { type: "array", itemType: "string", value: ["a b"] },
    "tokenizer.ggml.eos_token_id": { type: "u32", value: 4 },
    ...extra.meta,
  };
  const file = path.join(tmp, `${arch}-${Math.random().toString(36).slice(2)}.gguf`);
  fs.writeFileSync(file, encodeGguf({ metadata: meta, tensors }));
  return { file, values, H, heads, kv, d };
}

describe("loadModel on synthetic GGUF files", () => {
  it("qwen2 and qwen3: config from metadata, weights referenced in place, not permuted", async () => {
    for (const arch of ["qwen2", "qwen3"] as const) {
      const { file, values, heads, d } = tinyGguf(arch);
      const m = await loadModel(file);
      expect(m.weights.config).toMatchObject({ architecture: arch, headDim: d, numHeads: heads, numKvHeads: 2, ropeTheta: 1000000, rmsNormEps: 1e-6, tieWordEmbeddings: false, attentionBias: arch === "qwen2", qkNorm: arch === "qwen3", vocabSize: 8 });
      const q = m.weights.tensor("model.layers.0.self_attn.q_proj.weight");
      expect(q.shape).toEqual([heads * d, 32]);
      expect("file" in q).toBe(true);
      expect(m.weights.float32("model.layers.0.self_attn.q_proj.weight")).toEqual(values.get("blk.0.attn_q.weight"));
      expect(m.weights.names()).toContain("lm_head.weight");
      if (arch === "qwen3") expect(m.weights.names()).toContain("model.layers.0.self_attn.q_norm.weight");
      if (arch === "qwen2") expect(m.weights.float32("model.layers.0.self_attn.k_proj.bias")).toEqual(values.get("blk.0.attn_k.bias"));
      expect(m.tokenizer.encode("ab<|im_start|>c", { parseSpecial: true })).toEqual([2, 3, 5]);
    }
  });

  it("llama: float q/k are un-permuted in memory (the inverse of the converter's permutation)", async () => {
    const { file, values, H, heads, kv, d } = tinyGguf("llama");
    const m = await loadModel(file);
    const q = m.weights.tensor("model.layers.0.self_attn.q_proj.weight");
    expect("data" in q).toBe(true);
    expect(permuteRowsForGguf(m.weights.float32("model.layers.0.self_attn.q_proj.weight"), heads * d, H, heads)).toEqual(values.get("blk.0.attn_q.weight"));
    expect(permuteRowsForGguf(m.weights.float32("model.layers.0.self_attn.k_proj.weight"), kv * d, H, kv)).toEqual(values.get("blk.0.attn_k.weight"));
    expect("file" in m.weights.tensor("model.layers.0.self_attn.v_proj.weight")).toBe(true);
  });

  it("llama 3: recovers RoPE scaling from rope_freqs.weight, and rejects divisors that are not Llama-3's", async () => {
    const want = { type: "llama3" as const, factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 };
    for (const headDim of [64, 128]) {
      const divisors = Float32Array.from(llama3RopeDivisors(want, 500000, headDim));
      const got = llama3ScalingFromFreqs(divisors, 500000, headDim, 8192)!;
      expect(got.type).toBe("llama3");
      if (got.type !== "llama3") continue;
      expect(got.factor).toBeCloseTo(32, 4);
      expect(got.lowFreqFactor).toBeCloseTo(1, 2);
      expect(got.highFreqFactor).toBeCloseTo(4, 2);
    }
    const divisors = Float32Array.from(llama3RopeDivisors(want, 1000000, 8));
    const { file } = tinyGguf("llama", { tensors: [{ name: "rope_freqs.weight", dims: [4], type: GgmlType.F32, data: new Uint8Array(divisors.buffer) }] });
    const m = await loadModel(file);
    expect(m.weights.config.ropeScaling).toMatchObject({ type: "llama3", originalMaxPositionEmbeddings: 8192 });
    expect(m.weights.names()).not.toContain("rope_freqs.weight");
    expect(() => llama3ScalingFromFreqs(Float32Array.from([1, 7, 2, 40, 3, 32]), 500000, 12, 8192)).toThrow(/do not follow Llama-3/);
  });

  it("linear RoPE scaling from metadata", () => {
    const { file } = tinyGguf("llama", { meta: { "llama.rope.scaling.type": { type: "string", value: "linear" }, "llama.rope.scaling.factor": { type: "f32", value: 4 } } });
    expect(ggufModelConfig(readGguf(file)).ropeScaling).toEqual({ type: "linear", factor: 4 });
  });

  it("refuses adapters, unknown architectures and unknown tokenizers with clear errors", async () => {
    const adapter = tinyGguf("llama", { meta: { "general.type": { type: "string", value: "adapter" } } });
    await expect(loadModel(adapter.file)).rejects.toThrow(/is a LoRA adapter, not a base model/);
    const gemma = tinyGguf("llama", { meta: { "general.architecture": { type: "string", value: "gemma2" } } });
    await expect(loadModel(gemma.file)).rejects.toThrow(/architecture "gemma2" is not supported/);
    const t5 = tinyGguf("qwen2", { meta: { "tokenizer.ggml.model": { type: "string", value: "t5" } } });
    await expect(loadModel(t5.file)).rejects.toThrow(/tokenizer model "t5" is not supported/);
    const pre = tinyGguf("qwen2", { meta: { "tokenizer.ggml.pre": { type: "string", value: "mystery" } } });
    await expect(loadModel(pre.file)).rejects.toThrow(/pre-tokenizer "mystery" is not supported/);
  });
});
