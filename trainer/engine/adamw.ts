// AdamW on the LoRA matrices, in TypeScript (they are small): global gradient-norm clipping as
// torch.nn.utils.clip_grad_norm_, decoupled weight decay and bias-corrected moments as
// torch.optim.AdamW. Moments are float32 like PyTorch's for fp32 parameters; the state
// serializes to a safetensors buffer, so a restarted trainer continues bit for bit.
import { encodeSafetensors, type LoraAdapter } from "../../adapters/index.js";

export interface AdamWOptions {
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
  /** Clip the global L2 norm of all gradients to this; Infinity turns clipping off. */
  maxGradNorm?: number;
}

export interface LoraGradients {
  a: ReadonlyMap<string, Float32Array>;
  b: ReadonlyMap<string, Float32Array>;
}

const FORMAT = "clawloop-adamw-v1";

export class AdamW {
  lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  readonly maxGradNorm: number;
  /** Steps taken so far. */
  stepCount = 0;
  private m = new Map<string, Float32Array>();
  private v = new Map<string, Float32Array>();

  constructor(opts: AdamWOptions) {
    this.lr = opts.lr;
    this.beta1 = opts.beta1 ?? 0.9;
    this.beta2 = opts.beta2 ?? 0.999;
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0;
    this.maxGradNorm = opts.maxGradNorm ?? 1;
    const check = (name: string, x: number, ok: boolean) => {
      if (!ok) throw new Error(`AdamW: invalid ${name} ${x}`);
    };
    check("lr", this.lr, Number.isFinite(this.lr) && this.lr >= 0);
    check("beta1", this.beta1, this.beta1 >= 0 && this.beta1 < 1);
    check("beta2", this.beta2, this.beta2 >= 0 && this.beta2 < 1);
    check("eps", this.eps, this.eps > 0);
    check("weightDecay", this.weightDecay, this.weightDecay >= 0);
    check("maxGradNorm", this.maxGradNorm, this.maxGradNorm > 0);
  }

  /**
   * Updates `adapter` in place. Throws, leaving the adapter and the state untouched, when a
   * gradient is missing, mis-sized or not finite. Returns the global norm before clipping.
   */
  step(adapter: LoraAdapter, grads: LoraGradients, opts: { lr?: number } = {}): { gradNorm: number; clipped: boolean } {
    const pairs: [string, Float32Array, Float32Array][] = [];
    let sq = 0;
    for (const part of ["a", "b"] as const) {
      for (const [key, param] of adapter[part]) {
        const g = grads[part].get(key);
        if (!g) throw new Error(`AdamW: no gradient for LoRA ${part.toUpperCase()} ${key}`);
        if (g.length !== param.length) throw new Error(`AdamW: gradient for ${part.toUpperCase()} ${key} has ${g.length} values, the matrix ${param.length}`);
        for (let i = 0; i < g.length; i++) {
          const x = g[i]!;
          if (!Number.isFinite(x)) throw new Error(`AdamW: gradient for ${part.toUpperCase()} ${key} contains ${x}; the adapter was not changed`);
          sq += x * x;
        }
        pairs.push([`${part}.${key}`, param, g]);
      }
    }
    const gradNorm = Math.sqrt(sq);
    const clipped = gradNorm > this.maxGradNorm;
    const coef = clipped ? this.maxGradNorm / (gradNorm + 1e-6) : 1;

    const lr = opts.lr ?? this.lr;
    this.stepCount++;
    const t = this.stepCount;
    const b1 = this.beta1;
    const b2 = this.beta2;
    const bc1 = 1 - b1 ** t;
    const bc2 = 1 - b2 ** t;
    const decay = 1 - lr * this.weightDecay;
    for (const [name, p, g] of pairs) {
      let m = this.m.get(name);
      let v = this.v.get(name);
      if (!m || !v) {
        m = new Float32Array(p.length);
        v = new Float32Array(p.length);
        this.m.set(name, m);
        this.v.set(name, v);
      }
      for (let i = 0; i < p.length; i++) {
        const gi = g[i]! * coef;
        const mi = (m[i] = b1 * m[i]! + (1 - b1) * gi);
        const vi = (v[i] = b2 * v[i]! + (1 - b2) * gi * gi);
        p[i] = p[i]! * decay - (lr * (mi / bc1)) / (Math.sqrt(vi / bc2) + this.eps);
      }
    }
    return { gradNorm, clipped };
  }

  /** Moments, step count and hyperparameters as a safetensors buffer. */
  saveState(): Uint8Array {
    const tensors = [...this.m.keys()].sort().flatMap((name) => [
      { name: `m.${name}`, shape: [this.m.get(name)!.length], data: this.m.get(name)! },
      { name: `v.${name}`, shape: [this.v.get(name)!.length], data: this.v.get(name)! },
    ]);
    const meta = {
      format: FORMAT,
      step: String(this.stepCount),
      lr: String(this.lr),
      beta1: String(this.beta1),
      beta2: String(this.beta2),
      eps: String(this.eps),
      weightDecay: String(this.weightDecay),
      maxGradNorm: String(this.maxGradNorm),
    };
    return new Uint8Array(encodeSafetensors(tensors, meta));
  }

  /** Restores moments and step count saved by saveState (hyperparameters stay as constructed). */
  loadState(bytes: Uint8Array): void {
    const { metadata, tensors } = parseState(bytes);
    if (metadata.format !== FORMAT) throw new Error(`AdamW state: unknown format "${metadata.format}"`);
    const step = Number(metadata.step);
    if (!Number.isInteger(step) || step < 0) throw new Error(`AdamW state: bad step "${metadata.step}"`);
    const m = new Map<string, Float32Array>();
    const v = new Map<string, Float32Array>();
    for (const [name, data] of tensors) {
      if (name.startsWith("m.")) m.set(name.slice(2), data);
      else if (name.startsWith("v.")) v.set(name.slice(2), data);
      else throw new Error(`AdamW state: unexpected tensor "${name}"`);
    }
    for (const name of m.keys()) if (v.get(name)?.length !== m.get(name)!.length) throw new Error(`AdamW state: moments of ${name} do not match`);
    if (m.size !== v.size) throw new Error("AdamW state: first and second moments differ in number");
    this.m = m;
    this.v = v;
    this.stepCount = step;
  }
}

/** Reads back what encodeSafetensors wrote (F32 tensors only), validating every offset. */
function parseState(bytes: Uint8Array): { metadata: Record<string, string>; tensors: Map<string, Float32Array> } {
  const fail = (msg: string): never => {
    throw new Error(`AdamW state is not valid: ${msg}`);
  };
  if (bytes.length < 8) fail("shorter than 8 bytes");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = Number(view.getBigUint64(0, true));
  if (8 + headerLen > bytes.length) fail("header runs past the end");
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLen))) as Record<string, unknown>;
  } catch {
    return fail("header is not JSON");
  }
  const dataStart = 8 + headerLen;
  const metadata = (header.__metadata__ ?? {}) as Record<string, string>;
  const tensors = new Map<string, Float32Array>();
  for (const [name, entry] of Object.entries(header)) {
    if (name === "__metadata__") continue;
    const e = entry as { dtype?: string; data_offsets?: [number, number] };
    if (e.dtype !== "F32" || !Array.isArray(e.data_offsets)) fail(`tensor "${name}" is not F32`);
    const [start, end] = e.data_offsets!;
    if (!(start >= 0 && end >= start && dataStart + end <= bytes.length && (end - start) % 4 === 0)) fail(`tensor "${name}" has bad offsets`);
    // Copy: the caller's buffer may be unaligned or reused.
    const copy = bytes.slice(dataStart + start, dataStart + end);
    tensors.set(name, new Float32Array(copy.buffer, copy.byteOffset, (end - start) / 4));
  }
  return { metadata, tensors };
}
