// How llama.cpp names and lays out Llama-family tensors in GGUF, relative to Hugging Face.
//
// Names: `blk.{i}.attn_q.weight` ↔ `model.layers.{i}.self_attn.q_proj.weight`, and so on.
// Layout: for the `llama` architecture (Llama and Mistral), llama.cpp's converter permutes the
// rows of q_proj and k_proj (weights and biases, and LoRA B for adapters) so its RoPE can rotate
// adjacent pairs instead of HF's halves: per head, rows reshaped (2, head_dim/2) are transposed
// to (head_dim/2, 2) — `LlamaModel.permute` in convert_hf_to_gguf.py, with n_head for q and
// n_head_kv for k. Qwen2 and Qwen3 are converted without it.

const LAYER_PARTS: [gguf: string, hf: string][] = [
  ["attn_norm", "input_layernorm"],
  ["ffn_norm", "post_attention_layernorm"],
  ["attn_q", "self_attn.q_proj"],
  ["attn_k", "self_attn.k_proj"],
  ["attn_v", "self_attn.v_proj"],
  ["attn_output", "self_attn.o_proj"],
  ["attn_q_norm", "self_attn.q_norm"],
  ["attn_k_norm", "self_attn.k_norm"],
  ["ffn_gate", "mlp.gate_proj"],
  ["ffn_up", "mlp.up_proj"],
  ["ffn_down", "mlp.down_proj"],
];
const GLOBAL: [gguf: string, hf: string][] = [
  ["token_embd.weight", "model.embed_tokens.weight"],
  ["output_norm.weight", "model.norm.weight"],
  ["output.weight", "lm_head.weight"],
];
const G2H_PART = new Map(LAYER_PARTS);
const H2G_PART = new Map(LAYER_PARTS.map(([g, h]) => [h, g]));

/** HF name of a GGUF tensor, or null for tensors with no HF counterpart (e.g. `rope_freqs.weight`). */
export function ggufToHfName(name: string): string | null {
  const global = GLOBAL.find(([g]) => g === name);
  if (global) return global[1];
  const m = /^blk\.(\d+)\.([a-z_]+)\.(weight|bias)$/.exec(name);
  if (!m) return null;
  const part = G2H_PART.get(m[2]!);
  return part ? `model.layers.${m[1]}.${part}.${m[3]}` : null;
}

/** GGUF name of an HF tensor or module path (`model.layers.3.self_attn.q_proj.weight`). */
export function hfToGgufName(name: string): string | null {
  const global = GLOBAL.find(([, h]) => h === name);
  if (global) return global[0];
  const m = /^model\.layers\.(\d+)\.(.+)\.(weight|bias)$/.exec(name);
  if (!m) return null;
  const part = H2G_PART.get(m[2]!);
  return part ? `blk.${m[1]}.${part}.${m[3]}` : null;
}

/**
 * Row permutation of llama.cpp's converter for a q/k tensor with `rows` rows (each `rowLen`
 * values) and `nHead` heads: HF layout → GGUF layout. Works in place on a copy.
 */
export function permuteRowsForGguf(data: Float32Array, rows: number, rowLen: number, nHead: number): Float32Array {
  return moveRows(data, rows, rowLen, nHead, true);
}

/** The inverse: GGUF layout → HF layout. */
export function unpermuteRowsFromGguf(data: Float32Array, rows: number, rowLen: number, nHead: number): Float32Array {
  return moveRows(data, rows, rowLen, nHead, false);
}

function moveRows(data: Float32Array, rows: number, rowLen: number, nHead: number, toGguf: boolean): Float32Array {
  if (rows % (nHead * 2) !== 0) throw new Error(`cannot permute ${rows} rows for RoPE across ${nHead} heads`);
  if (data.length !== rows * rowLen) throw new Error(`permute: ${data.length} values is not ${rows}×${rowLen}`);
  const headDim = rows / nHead;
  const half = headDim / 2;
  const out = new Float32Array(data.length);
  for (let h = 0; h < nHead; h++) {
    for (let j = 0; j < 2; j++) {
      for (let i = 0; i < half; i++) {
        const hfRow = h * headDim + j * half + i;
        const ggRow = h * headDim + i * 2 + j;
        const [from, to] = toGguf ? [hfRow, ggRow] : [ggRow, hfRow];
        out.set(data.subarray(from * rowLen, (from + 1) * rowLen), to * rowLen);
      }
    }
  }
  return out;
}
