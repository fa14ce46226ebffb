// A deliberately naive float64 forward pass, written loop by loop from the Hugging Face modeling
// code (LlamaForCausalLM / Qwen2 / Qwen3), to check the graph's forward semantics on tiny models.
// It shares nothing with the graph code; RoPE scaling comes from the model loader's
// llama3RopeDivisors, an independent implementation of transformers' formula.
import { loraKey, type LoraTarget } from "../../../adapters/index.js";
import { llama3RopeDivisors } from "../model/index.js";
import type { ModelWeights } from "../model/types.js";

export interface ReferenceLora {
  scaling: number;
  a: ReadonlyMap<string, ArrayLike<number>>;
  b: ReadonlyMap<string, ArrayLike<number>>;
}

const MODULE: Record<LoraTarget, string> = {
  q: "self_attn.q_proj",
  k: "self_attn.k_proj",
  v: "self_attn.v_proj",
  o: "self_attn.o_proj",
  gate: "mlp.gate_proj",
  up: "mlp.up_proj",
  down: "mlp.down_proj",
};

/** log π(response_t | prompt, response_<t) by the book. */
export function referenceLogprobs(w: ModelWeights, promptIds: number[], responseIds: number[], lora: ReferenceLora | null = null): number[] {
  const c = w.config;
  const D = c.hiddenSize;
  const hd = c.headDim;
  const H = c.numHeads;
  const KV = c.numKvHeads;
  const cache = new Map<string, Float64Array>();
  const get = (name: string): Float64Array => {
    let v = cache.get(name);
    if (!v) cache.set(name, (v = Float64Array.from(w.float32(name))));
    return v;
  };
  const has = (name: string) => w.names().includes(name);
  const seq = [...promptIds, ...responseIds.slice(0, -1)];
  const T = seq.length;
  const E = get("model.embed_tokens.weight");

  const matvec = (W: Float64Array, x: Float64Array, out: number): Float64Array => {
    const y = new Float64Array(out);
    const n = x.length;
    for (let o = 0; o < out; o++) {
      let s = 0;
      for (let i = 0; i < n; i++) s += W[o * n + i]! * x[i]!;
      y[o] = s;
    }
    return y;
  };
  const linear = (layer: number, target: LoraTarget, x: Float64Array): Float64Array => {
    const base = `model.layers.${layer}.${MODULE[target]}`;
    const W = get(`${base}.weight`);
    const out = W.length / x.length;
    const y = matvec(W, x, out);
    if (has(`${base}.bias`)) {
      const b = get(`${base}.bias`);
      for (let o = 0; o < out; o++) y[o]! += b[o]!;
    }
    const A = lora?.a.get(loraKey(layer, target));
    const B = lora?.b.get(loraKey(layer, target));
    if (lora && A && B) {
      const r = A.length / x.length;
      const ax = matvec(Float64Array.from(A), x, r);
      const bax = matvec(Float64Array.from(B), ax, out);
      for (let o = 0; o < out; o++) y[o]! += lora.scaling * bax[o]!;
    }
    return y;
  };
  const rmsNorm = (x: Float64Array, weight: Float64Array): Float64Array => {
    let ms = 0;
    for (const v of x) ms += v * v;
    const inv = 1 / Math.sqrt(ms / x.length + c.rmsNormEps);
    return Float64Array.from(x, (v, i) => v * inv * weight[i]!);
  };

  // RoPE: θ_i = base^(−2i/hd), divided by the scaling's per-frequency divisor.
  const half = hd / 2;
  const divisors = new Float64Array(half).fill(1);
  if (c.ropeScaling?.type === "linear") divisors.fill(c.ropeScaling.factor);
  if (c.ropeScaling?.type === "llama3") divisors.set(llama3RopeDivisors(c.ropeScaling, c.ropeTheta, hd));
  const rotate = (x: Float64Array, pos: number): Float64Array => {
    const out = new Float64Array(hd);
    for (let i = 0; i < half; i++) {
      const angle = pos * Math.pow(c.ropeTheta, -(2 * i) / hd) / divisors[i]!;
      const cs = Math.cos(angle);
      const sn = Math.sin(angle);
      out[i] = x[i]! * cs - x[i + half]! * sn;
      out[i + half] = x[i + half]! * cs + x[i]! * sn;
    }
    return out;
  };

  let h: Float64Array[] = seq.map((id) => E.slice(id * D, (id + 1) * D));
  for (let layer = 0; layer < c.numLayers; layer++) {
    const p = `model.layers.${layer}`;
    const xs = h.map((x) => rmsNorm(x, get(`${p}.input_layernorm.weight`)));
    const heads = (v: Float64Array, n: number): Float64Array[] => Array.from({ length: n }, (_, k) => v.slice(k * hd, (k + 1) * hd));
    const q = xs.map((x) => heads(linear(layer, "q", x), H));
    const k = xs.map((x) => heads(linear(layer, "k", x), KV));
    const v = xs.map((x) => heads(linear(layer, "v", x), KV));
    if (c.qkNorm) {
      const qn = get(`${p}.self_attn.q_norm.weight`);
      const kn = get(`${p}.self_attn.k_norm.weight`);
      q.forEach((hs, t) => (q[t] = hs.map((x) => rmsNorm(x, qn))));
      k.forEach((hs, t) => (k[t] = hs.map((x) => rmsNorm(x, kn))));
    }
    const qr = q.map((hs, t) => hs.map((x) => rotate(x, t)));
    const kr = k.map((hs, t) => hs.map((x) => rotate(x, t)));
    const attnOut = xs.map((_, t) => {
      const ctx = new Float64Array(H * hd);
      for (let hh = 0; hh < H; hh++) {
        const kvh = Math.floor(hh / (H / KV));
        const scores = [];
        for (let u = 0; u <= t; u++) {
          let s = 0;
          for (let i = 0; i < hd; i++) s += qr[t]![hh]![i]! * kr[u]![kvh]![i]!;
          scores.push(s / Math.sqrt(hd));
        }
        const m = Math.max(...scores);
        const e = scores.map((s) => Math.exp(s - m));
        const z = e.reduce((a, b) => a + b, 0);
        for (let u = 0; u <= t; u++) for (let i = 0; i < hd; i++) ctx[hh * hd + i]! += (e[u]! / z) * v[u]![kvh]![i]!;
      }
      return linear(layer, "o", ctx);
    });
    h = h.map((x, t) => x.map((val, i) => val + attnOut[t]![i]!));
    h = h.map((x) => {
      const x2 = rmsNorm(x, get(`${p}.post_attention_layernorm.weight`));
      const gate = linear(layer, "gate", x2);
      const up = linear(layer, "up", x2);
      const act = gate.map((g, i) => (g / (1 + Math.exp(-g))) * up[i]!);
      const down = linear(layer, "down", act);
      return x.map((val, i) => val + down[i]!);
    });
  }

  const lm = c.tieWordEmbeddings ? E : get("lm_head.weight");
  const norm = get("model.norm.weight");
  return responseIds.map((target, j) => {
    const x = rmsNorm(h[promptIds.length - 1 + j]!, norm);
    const logits = matvec(lm, x, c.vocabSize);
    const m = Math.max(...logits);
    let z = 0;
    for (const l of logits) z += Math.exp(l - m);
    return logits[target]! - m - Math.log(z);
  });
}
