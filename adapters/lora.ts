// A LoRA adapter in memory: the trainer's master copy (fp32) and what the file formats read and
// write. Layout follows PEFT: for a linear layer W [out, in], A is [rank, in] and B is [out, rank],
// both row-major, and the layer computes y = W x + (alpha / rank) · B (A x).

export type LoraTarget = "q" | "k" | "v" | "o" | "gate" | "up" | "down";
export const LORA_TARGETS: readonly LoraTarget[] = ["q", "k", "v", "o", "gate", "up", "down"];

/** Hugging Face module path of each target inside `model.layers.{i}`. */
export const TARGET_MODULES: Record<LoraTarget, string> = {
  q: "self_attn.q_proj",
  k: "self_attn.k_proj",
  v: "self_attn.v_proj",
  o: "self_attn.o_proj",
  gate: "mlp.gate_proj",
  up: "mlp.up_proj",
  down: "mlp.down_proj",
};

export interface LoraDims {
  in: number;
  out: number;
}

export interface LoraConfig {
  rank: number;
  alpha: number;
  targets: LoraTarget[];
  numLayers: number;
  /** Input/output size of each targeted projection. */
  dims: Partial<Record<LoraTarget, LoraDims>>;
  /** `base_model_name_or_path` in adapter_config.json. */
  baseModel: string;
}

export interface LoraAdapter {
  config: LoraConfig;
  /** Keyed by `loraKey(layer, target)`. A: [rank, in], B: [out, rank]. */
  a: Map<string, Float32Array>;
  b: Map<string, Float32Array>;
}

export function loraKey(layer: number, target: LoraTarget): string {
  return `${layer}.${target}`;
}

export function loraScaling(config: LoraConfig): number {
  return config.alpha / config.rank;
}

function dimsOf(config: LoraConfig, target: LoraTarget): LoraDims {
  const d = config.dims[target];
  if (!d) throw new Error(`LoRA config has no dimensions for target "${target}"`);
  return d;
}

/** A seeded PRNG (mulberry32), so adapters initialize reproducibly. */
export function seededRandom(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A fresh adapter initialized as PEFT does (`init_lora_weights=True`): A from
 * kaiming_uniform(a=√5), i.e. U(−1/√in, 1/√in), and B = 0, so the adapter starts as a no-op.
 */
export function createLoraAdapter(config: LoraConfig, seed = 0): LoraAdapter {
  const rand = seededRandom(seed);
  const a = new Map<string, Float32Array>();
  const b = new Map<string, Float32Array>();
  for (let layer = 0; layer < config.numLayers; layer++) {
    for (const target of config.targets) {
      const { in: fanIn, out } = dimsOf(config, target);
      const bound = 1 / Math.sqrt(fanIn);
      const A = new Float32Array(config.rank * fanIn);
      for (let i = 0; i < A.length; i++) A[i] = (rand() * 2 - 1) * bound;
      a.set(loraKey(layer, target), A);
      b.set(loraKey(layer, target), new Float32Array(out * config.rank));
    }
  }
  return { config, a, b };
}

export function cloneLoraAdapter(src: LoraAdapter): LoraAdapter {
  const copy = (m: Map<string, Float32Array>) => new Map([...m].map(([k, v]) => [k, v.slice()]));
  return { config: { ...src.config, targets: [...src.config.targets], dims: { ...src.config.dims } }, a: copy(src.a), b: copy(src.b) };
}
