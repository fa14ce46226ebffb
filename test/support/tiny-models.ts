// Tiny synthetic Hugging Face model folders (config.json + safetensors + tokenizer.json +
// tokenizer_config.json) for the architectures no real checkpoint is available for here (only
// package registries are reachable): they exercise the loading paths, not model quality.
import fs from "node:fs";
import path from "node:path";
import { seededRandom, writeSafetensors, type TensorToWrite } from "../../adapters/index.js";

export interface TinyModelOptions {
  modelType: "llama" | "mistral" | "qwen2" | "qwen3";
  hidden?: number;
  intermediate?: number;
  layers?: number;
  heads?: number;
  kvHeads?: number;
  headDim?: number;
  tie?: boolean;
  /** Split the weights over two shards with an index file. */
  sharded?: boolean;
  dtype?: "F32" | "F16" | "BF16";
  extraConfig?: Record<string, unknown>;
  seed?: number;
}

/** GPT-2's byte → printable-character table (byte-level BPE vocabularies are written in it). */
export function bytesToUnicode(): string[] {
  const keep: number[] = [];
  for (let b = 33; b <= 126; b++) keep.push(b);
  for (let b = 161; b <= 172; b++) keep.push(b);
  for (let b = 174; b <= 255; b++) keep.push(b);
  const out = new Array<string>(256);
  let n = 0;
  for (let b = 0; b < 256; b++) out[b] = String.fromCodePoint(keep.includes(b) ? b : 256 + n++);
  return out;
}

export const TINY_SPECIAL = { bos: "<s>", imStart: "<|im_start|>", imEnd: "<|im_end|>" };

/** A byte-level BPE tokenizer.json: 256 byte tokens, merges building "hello", and three specials. */
export function tinyTokenizerJson(addBos: boolean): Record<string, unknown> {
  const bytes = bytesToUnicode();
  const vocab: Record<string, number> = {};
  bytes.forEach((c, i) => (vocab[c] = i));
  const merges = [["h", "e"], ["he", "l"], ["hel", "l"], ["hell", "o"]];
  for (const [a, b] of merges) vocab[a! + b!] = Object.keys(vocab).length;
  const specials = [TINY_SPECIAL.imStart, TINY_SPECIAL.imEnd, TINY_SPECIAL.bos];
  const base = Object.keys(vocab).length;
  return {
    version: "1.0",
    added_tokens: specials.map((content, i) => ({ id: base + i, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: null,
    pre_tokenizer: { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: addBos
      ? {
          type: "TemplateProcessing",
          single: [{ SpecialToken: { id: TINY_SPECIAL.bos, type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
          pair: [{ SpecialToken: { id: TINY_SPECIAL.bos, type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }, { Sequence: { id: "B", type_id: 1 } }],
          special_tokens: { [TINY_SPECIAL.bos]: { id: TINY_SPECIAL.bos, ids: [base + 2], tokens: [TINY_SPECIAL.bos] } },
        }
      : null,
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: "", end_of_word_suffix: "", fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges: merges.map(([a, b]) => `${a} ${b}`) },
  };
}

export const CHATML = "{% for m in messages %}{{ bos_token if loop.first else '' }}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

/** Writes the folder; returns the tensors written (fp32 values) by name. */
export function writeTinyHfModel(dir: string, o: TinyModelOptions): Map<string, Float32Array> {
  fs.mkdirSync(dir, { recursive: true });
  const hidden = o.hidden ?? 32;
  const heads = o.heads ?? 4;
  const kvHeads = o.kvHeads ?? 2;
  const headDim = o.headDim ?? hidden / heads;
  const inter = o.intermediate ?? 48;
  const layers = o.layers ?? 2;
  const tok = tinyTokenizerJson(o.modelType === "llama" || o.modelType === "mistral");
  const vocabSize = Object.keys((tok.model as { vocab: object }).vocab).length + 3;
  const tie = o.tie ?? (o.modelType === "qwen2" || o.modelType === "qwen3");
  const config: Record<string, unknown> = {
    architectures: [{ llama: "LlamaForCausalLM", mistral: "MistralForCausalLM", qwen2: "Qwen2ForCausalLM", qwen3: "Qwen3ForCausalLM" }[o.modelType]],
    model_type: o.modelType,
    hidden_size: hidden,
    intermediate_size: inter,
    num_hidden_layers: layers,
    num_attention_heads: heads,
    num_key_value_heads: kvHeads,
    vocab_size: vocabSize,
    rms_norm_eps: 1e-6,
    rope_theta: 10000,
    max_position_embeddings: 512,
    tie_word_embeddings: tie,
    torch_dtype: "float32",
    ...(o.headDim ? { head_dim: o.headDim } : {}),
    ...o.extraConfig,
  };
  fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify(config, null, 2));
  const rand = seededRandom(o.seed ?? 7);
  const tensors: TensorToWrite[] = [];
  const values = new Map<string, Float32Array>();
  const add = (name: string, shape: number[]) => {
    const data = Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => (rand() * 2 - 1) * 0.1);
    tensors.push({ name, shape, data, dtype: o.dtype ?? "F32" });
    values.set(name, data);
  };
  add("model.embed_tokens.weight", [vocabSize, hidden]);
  for (let i = 0; i < layers; i++) {
    const p = `model.layers.${i}`;
    add(`${p}.input_layernorm.weight`, [hidden]);
    add(`${p}.post_attention_layernorm.weight`, [hidden]);
    add(`${p}.self_attn.q_proj.weight`, [heads * headDim, hidden]);
    add(`${p}.self_attn.k_proj.weight`, [kvHeads * headDim, hidden]);
    add(`${p}.self_attn.v_proj.weight`, [kvHeads * headDim, hidden]);
    add(`${p}.self_attn.o_proj.weight`, [hidden, heads * headDim]);
    if (o.modelType === "qwen2") {
      add(`${p}.self_attn.q_proj.bias`, [heads * headDim]);
      add(`${p}.self_attn.k_proj.bias`, [kvHeads * headDim]);
      add(`${p}.self_attn.v_proj.bias`, [kvHeads * headDim]);
    }
    if (o.modelType === "qwen3") {
      add(`${p}.self_attn.q_norm.weight`, [headDim]);
      add(`${p}.self_attn.k_norm.weight`, [headDim]);
    }
    add(`${p}.mlp.gate_proj.weight`, [inter, hidden]);
    add(`${p}.mlp.up_proj.weight`, [inter, hidden]);
    add(`${p}.mlp.down_proj.weight`, [hidden, inter]);
  }
  add("model.norm.weight", [hidden]);
  if (!tie) add("lm_head.weight", [vocabSize, hidden]);
  if (o.sharded) {
    const half = Math.ceil(tensors.length / 2);
    const shards = [tensors.slice(0, half), tensors.slice(half)];
    const weightMap: Record<string, string> = {};
    shards.forEach((ts, i) => {
      const name = `model-0000${i + 1}-of-00002.safetensors`;
      writeSafetensors(path.join(dir, name), ts);
      for (const t of ts) weightMap[t.name] = name;
    });
    fs.writeFileSync(path.join(dir, "model.safetensors.index.json"), JSON.stringify({ metadata: {}, weight_map: weightMap }));
  } else writeSafetensors(path.join(dir, "model.safetensors"), tensors);
  fs.writeFileSync(path.join(dir, "tokenizer.json"), JSON.stringify(tok));
  fs.writeFileSync(
    path.join(dir, "tokenizer_config.json"),
    JSON.stringify({ bos_token: TINY_SPECIAL.bos, eos_token: TINY_SPECIAL.imEnd, chat_template: CHATML }),
  );
  return values;
}
