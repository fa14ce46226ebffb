// The compute engine: per-token log-probs of responses (score) and the policy loss with its LoRA
// gradients (trainStep), on ONNX Runtime. Frozen weights are held once, as fp32 tensors fed to
// every program; the LoRA matrices are fed per call, so swapping adapters costs nothing.
import os from "node:os";
import { createLoraAdapter, LORA_TARGETS, loraKey, type LoraAdapter, type LoraConfig, type LoraTarget } from "../../adapters/index.js";
import { planRuns } from "./batching.js";
import { loraDims, modelWeightShapes, validateConfig, type LayerWeightKey, layerWeightShapes } from "./decoder.js";
import type { FloatType } from "./graph/index.js";
import { GiB, layeredTrainBytes, weightBytes, wholeTrainBytes } from "./memory.js";
import type { LoadedModel, ModelConfig, ModelWeights } from "./model/types.js";
import {
  headScoreProgram,
  headTrainProgram,
  layerForwardProgram,
  layerTrainProgram,
  layerWeightInput,
  loraGradOutput,
  loraInput,
  trunkProgram,
  wholeTrainProgram,
  type Program,
  type ProgramSpec,
} from "./programs.js";
import { causalMask, ropeTables } from "./rope.js";
import { ort, Runtime, type ExecutionProvider } from "./runtime.js";

export interface ScoreItem {
  promptIds: number[];
  responseIds: number[];
}

export interface TrainItem extends ScoreItem {
  /** One per response token (computed by the train loop). */
  advantages: number[];
  /** log π_old per response token: the denominator of the PPO ratio. */
  oldLogprobs: number[];
  /** log π_ref per response token, for the KL penalty; items without it get none. */
  refLogprobs?: number[];
}

export interface LossOptions {
  epsLow: number;
  epsHigh: number;
  klCoef: number;
}

export interface Gradients {
  a: Map<string, Float32Array>;
  b: Map<string, Float32Array>;
}

export interface TokenStats {
  /** Response tokens in the step. */
  tokens: number;
  samples: number;
  /** Mean of ρ_t = π/π_old over tokens. */
  meanRatio: number;
  /** Fraction of tokens whose ratio is clipped (no gradient). */
  clipFraction: number;
  /** Mean k3 estimate of KL(π ‖ π_ref) over tokens with reference log-probs; null without any. */
  kl: number | null;
  meanLogprob: number;
}

export interface TrainMetrics extends TokenStats {
  /** ONNX Runtime runs the batch was split into. */
  runs: number;
  seconds: number;
  [key: string]: unknown;
}

export interface TrainStepResult {
  /** Mean over samples of each sample's mean token loss (including the KL term). */
  loss: number;
  gradients: Gradients;
  /** log π of each response token under the adapter, per item. */
  logprobs: number[][];
  metrics: TrainMetrics;
}

/** LoRA values in any float precision (float64 for gradient checks). */
export interface LoraValues {
  scaling: number;
  a: ReadonlyMap<string, Float32Array | Float64Array>;
  b: ReadonlyMap<string, Float32Array | Float64Array>;
}

export type EngineMode = "whole" | "layered";

export interface EngineOptions {
  model: LoadedModel | { weights: ModelWeights; name?: string };
  lora: { rank: number; alpha: number; targets: LoraTarget[] };
  executionProvider?: ExecutionProvider;
  /** Intra-op threads (default: all cores). */
  threads?: number;
  /** Longest prompt + response accepted (default 2048). */
  maxTokens?: number;
  /** Padded tokens (B × T) per ONNX Runtime run (default: maxTokens). */
  batchTokens?: number;
  /** "whole": one program per step; "layered": per-layer recomputation; "auto" picks by memory. */
  mode?: EngineMode | "auto";
  /** Memory the engine may use, for mode "auto" (default: min(8 GiB, 75% of RAM)). */
  memoryBudgetBytes?: number;
  /** float64 is for gradient checks. */
  float?: FloatType;
  /** Told when the requested execution provider is not available. */
  onFallback?: (message: string) => void;
  /** Profile every ONNX Runtime session to files with this prefix (see Runtime). */
  profileFilePrefix?: string;
}

type FloatArray = Float32Array | Float64Array;

interface RunData {
  B: number;
  T: number;
  /** Item positions in the caller's list, in run order. */
  items: number[];
  h0: FloatArray;
  rows: BigInt64Array;
  targets: BigInt64Array;
  /** Where each item's tokens start in rows/targets. */
  offsets: number[];
}

/** Bytes of one [rows, vocab] logits chunk of the head. */
const HEAD_CHUNK_BYTES = 2 ** 27;

export class Engine {
  readonly config: ModelConfig;
  readonly mode: EngineMode;
  readonly float: FloatType;
  readonly maxTokens: number;
  readonly batchTokens: number;
  readonly lora: { rank: number; alpha: number; targets: LoraTarget[] };
  readonly runtime: Runtime;
  private readonly Float: Float32ArrayConstructor | Float64ArrayConstructor;
  private readonly weights = new Map<string, ort.Tensor>();
  private readonly embed: FloatArray;
  private readonly lmName: string;
  private readonly sessions = new Map<string, Promise<ort.InferenceSession>>();
  private readonly tables = new Map<number, { cos: ort.Tensor; sin: ort.Tensor; mask: ort.Tensor }>();
  private readonly headRows: number;
  private closed = false;

  private constructor(opts: EngineOptions, weights: ModelWeights, mode: EngineMode, runtime: Runtime) {
    this.config = weights.config;
    this.mode = mode;
    this.float = opts.float ?? "float32";
    this.Float = this.float === "float64" ? Float64Array : Float32Array;
    this.maxTokens = opts.maxTokens ?? 2048;
    this.batchTokens = opts.batchTokens ?? this.maxTokens;
    this.lora = { rank: opts.lora.rank, alpha: opts.lora.alpha, targets: [...opts.lora.targets] };
    this.runtime = runtime;
    this.headRows = Math.max(16, Math.floor(HEAD_CHUNK_BYTES / (this.config.vocabSize * (this.float === "float64" ? 8 : 4))));

    const shapes = modelWeightShapes(this.config);
    for (const [name, shape] of shapes) {
      const t = weights.tensor(name);
      if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
        throw new Error(`weight ${name} has shape [${t.shape}], expected [${shape}] for this config`);
      }
      const f32 = weights.float32(name);
      const data = this.float === "float64" ? Float64Array.from(f32) : f32;
      this.weights.set(name, new ort.Tensor(this.float, data, shape));
    }
    this.lmName = this.config.tieWordEmbeddings ? "model.embed_tokens.weight" : "lm_head.weight";
    this.embed = this.weights.get("model.embed_tokens.weight")!.data as FloatArray;
  }

  static async create(opts: EngineOptions): Promise<Engine> {
    const weights = opts.model.weights;
    validateConfig(weights.config);
    const { rank, alpha, targets } = opts.lora;
    if (!Number.isInteger(rank) || rank < 1) throw new Error(`LoRA rank must be a positive integer, got ${rank}`);
    if (!(alpha > 0)) throw new Error(`LoRA alpha must be positive, got ${alpha}`);
    if (targets.length === 0) throw new Error("LoRA needs at least one target");
    for (const t of targets) if (!LORA_TARGETS.includes(t)) throw new Error(`unknown LoRA target "${t}" (expected some of ${LORA_TARGETS.join(", ")})`);
    if (new Set(targets).size !== targets.length) throw new Error(`LoRA targets repeat: [${targets.join(", ")}]`);
    const maxTokens = opts.maxTokens ?? 2048;
    const batchTokens = opts.batchTokens ?? maxTokens;
    if (batchTokens < 1 || maxTokens < 2) throw new Error("maxTokens must be ≥ 2 and batchTokens ≥ 1");
    const mode = chooseMode(weights.config, opts, maxTokens, batchTokens);
    const runtime = new Runtime({
      ...(opts.executionProvider ? { executionProvider: opts.executionProvider } : {}),
      ...(opts.threads ? { threads: opts.threads } : {}),
      ...(opts.onFallback ? { onFallback: opts.onFallback } : {}),
      ...(opts.profileFilePrefix ? { profileFilePrefix: opts.profileFilePrefix } : {}),
      optimization: opts.float === "float64" ? "basic" : "all",
    });
    return new Engine(opts, weights, mode, runtime);
  }

  get executionProvider(): ExecutionProvider {
    return this.runtime.provider;
  }

  loraConfig(baseModel = ""): LoraConfig {
    const dims = loraDims(this.config);
    return {
      rank: this.lora.rank,
      alpha: this.lora.alpha,
      targets: [...this.lora.targets],
      numLayers: this.config.numLayers,
      dims: Object.fromEntries(this.lora.targets.map((t) => [t, dims[t]])),
      baseModel,
    };
  }

  /** A fresh adapter shaped for this engine, initialized as PEFT does (a no-op until trained). */
  newAdapter(seed = 0, baseModel = ""): LoraAdapter {
    return createLoraAdapter(this.loraConfig(baseModel), seed);
  }

  // ---- public API ---------------------------------------------------------------------------

  /** log π(response_t | prompt, response_<t) for every response token of every item. */
  async score(items: ScoreItem[], adapter: LoraAdapter | null): Promise<number[][]> {
    items.forEach((it, i) => this.checkItem(it, i, false));
    // The base model is the LoRA program with B = 0: exactly the same numbers (W x + 0), and one
    // program (one session, one memory arena) instead of two.
    const lora = adapter ? this.loraValues(adapter) : this.zeroLora();
    const out: number[][] = items.map(() => []);
    // Items with an empty response have nothing to score.
    const scored = items.map((_, i) => i).filter((i) => items[i]!.responseIds.length > 0);
    for (const run of planRuns(scored.map((i) => sequenceLength(items[i]!)), this.batchTokens)) {
      const data = this.prepareRun(items, run.items.map((k) => scored[k]!), run.T);
      const x = this.mode === "whole" ? await this.trunkWhole(data, lora) : await this.trunkLayered(data, lora);
      this.spread(await this.headScore(x, data.targets), data, out);
    }
    return out;
  }

  /** Loss and LoRA gradients of the policy loss (see decoder.ts policyLoss) for a batch of samples. */
  async trainStep(items: TrainItem[], adapter: LoraAdapter, loss: LossOptions): Promise<TrainStepResult> {
    const started = performance.now();
    const raw = await this.lossAndGradients(items, this.loraValues(adapter), loss);
    const toF32 = (m: Map<string, FloatArray>) => new Map([...m].map(([k, v]) => [k, v instanceof Float32Array ? v : Float32Array.from(v)]));
    const logprobs = raw.logprobs;
    return {
      loss: raw.loss,
      gradients: { a: toF32(raw.gradA), b: toF32(raw.gradB) },
      logprobs,
      metrics: { ...stepMetrics(items, logprobs, loss), runs: raw.runs, seconds: (performance.now() - started) / 1000 },
    };
  }

  /** The step's loss, per-token log-probs and gradients in the engine's float type. */
  async lossAndGradients(
    items: TrainItem[],
    lora: LoraValues,
    loss: LossOptions,
  ): Promise<{ loss: number; logprobs: number[][]; gradA: Map<string, FloatArray>; gradB: Map<string, FloatArray>; runs: number }> {
    if (items.length === 0) throw new Error("trainStep needs at least one item");
    items.forEach((it, i) => this.checkItem(it, i, true));
    for (const [name, v] of [["epsLow", loss.epsLow], ["epsHigh", loss.epsHigh], ["klCoef", loss.klCoef]] as const) {
      if (!Number.isFinite(v) || v < 0) throw new Error(`loss.${name} must be a finite number ≥ 0, got ${v}`);
    }
    this.checkLora(lora);
    const kl = loss.klCoef > 0 && items.some((it) => it.refLogprobs);
    const gradA = new Map<string, FloatArray>();
    const gradB = new Map<string, FloatArray>();
    const logprobs: number[][] = items.map(() => []);
    let total = 0;
    const runs = planRuns(items.map((it) => sequenceLength(it)), this.batchTokens);
    for (const run of runs) {
      const data = this.prepareRun(items, run.items, run.T);
      const lossFeeds = this.lossFeeds(items, data, loss, kl);
      const r = this.mode === "whole" ? await this.trainWhole(data, lora, lossFeeds, kl) : await this.trainLayered(data, lora, lossFeeds, kl);
      total += r.loss;
      this.spread(r.logprobs, data, logprobs);
      for (const [key, g] of r.gradA) addInto(gradA, key, g, runs.length === 1);
      for (const [key, g] of r.gradB) addInto(gradB, key, g, runs.length === 1);
    }
    return { loss: total, logprobs, gradA, gradB, runs: runs.length };
  }

  /**
   * Releases the ONNX Runtime sessions, resolving once they are released: whoever hands freed
   * memory back to the system next (the trainer letting its model go, trainer/loop.ts) must come
   * after it, or the sessions' memory stays with the process.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const sessions = [...this.sessions.values()];
    this.sessions.clear();
    await Promise.all(sessions.map((s) => s.then((x) => x.release()).catch(() => undefined)));
  }

  /** Builds and loads every program this engine's mode uses, so the first step pays nothing. */
  async warmUp(opts: { train?: boolean; kl?: boolean } = {}): Promise<void> {
    await this.session("head:score", () => headScoreProgram(this.spec(false)));
    if (this.mode === "whole") await this.session("trunk", () => trunkProgram(this.spec(true)));
    else await this.session("layer:fwd", () => layerForwardProgram(this.spec(true)));
    if (opts.train === false) return;
    const kl = opts.kl ?? false;
    if (this.mode === "whole") await this.session(`whole:train:${kl}`, () => wholeTrainProgram(this.spec(true), kl));
    else {
      await this.session("layer:train", () => layerTrainProgram(this.spec(true)));
      await this.session(`head:train:${kl}`, () => headTrainProgram(this.spec(false), kl));
    }
  }

  // ---- validation ---------------------------------------------------------------------------

  /** Throws the error score (or trainStep) would throw for this item, without computing anything. */
  validate(item: ScoreItem | TrainItem, kind: "score" | "train" = "score"): void {
    this.checkItem(item, 0, kind === "train", false);
  }

  private checkItem(item: ScoreItem | TrainItem, i: number, train: boolean, named = true): void {
    const bad = (msg: string): never => {
      throw new Error(named ? `item ${i}: ${msg}` : msg);
    };
    if (!item || !Array.isArray(item.promptIds) || !Array.isArray(item.responseIds)) bad("needs promptIds and responseIds arrays");
    const V = this.config.vocabSize;
    if (item.promptIds.length === 0) bad("promptIds is empty (the first response token needs a context)");
    for (const ids of [item.promptIds, item.responseIds]) {
      for (const id of ids) if (!Number.isInteger(id) || id < 0 || id >= V) bad(`token id ${id} is outside the vocabulary [0, ${V})`);
    }
    const len = item.promptIds.length + item.responseIds.length;
    if (len > this.maxTokens) bad(`${len} tokens exceed maxTokens ${this.maxTokens} (cut the prompt from the left first)`);
    if (!train) return;
    const t = item as TrainItem;
    const R = t.responseIds.length;
    if (R === 0) bad("responseIds is empty: nothing to train on");
    const series: [string, number[] | undefined][] = [["advantages", t.advantages], ["oldLogprobs", t.oldLogprobs], ["refLogprobs", t.refLogprobs]];
    for (const [name, xs] of series) {
      if (xs === undefined && name === "refLogprobs") continue;
      if (!Array.isArray(xs) || xs.length !== R) bad(`${name} must have one number per response token (${R})`);
      for (const x of xs!) if (!Number.isFinite(x)) bad(`${name} contains ${x}`);
    }
  }

  private loraValues(adapter: LoraAdapter): LoraValues {
    const c = adapter.config;
    if (c.rank !== this.lora.rank) throw new Error(`adapter rank ${c.rank} does not match the engine's LoRA rank ${this.lora.rank}`);
    const sameTargets = c.targets.length === this.lora.targets.length && this.lora.targets.every((t) => c.targets.includes(t));
    if (!sameTargets) throw new Error(`adapter targets [${c.targets}] do not match the engine's [${this.lora.targets}]`);
    if (c.numLayers !== this.config.numLayers) throw new Error(`adapter has ${c.numLayers} layers, the model ${this.config.numLayers}`);
    return { scaling: c.alpha / c.rank, a: adapter.a, b: adapter.b };
  }

  private checkLora(lora: LoraValues): void {
    const dims = loraDims(this.config);
    const r = this.lora.rank;
    for (let layer = 0; layer < this.config.numLayers; layer++) {
      for (const t of this.lora.targets) {
        const key = loraKey(layer, t);
        const a = lora.a.get(key);
        const b = lora.b.get(key);
        if (!a || a.length !== r * dims[t].in) throw new Error(`LoRA A ${key} must have ${r}×${dims[t].in} values`);
        if (!b || b.length !== dims[t].out * r) throw new Error(`LoRA B ${key} must have ${dims[t].out}×${r} values`);
      }
    }
    if (!Number.isFinite(lora.scaling)) throw new Error("LoRA scaling must be finite");
  }

  // ---- programs and sessions ----------------------------------------------------------------

  private spec(withLora: boolean): ProgramSpec {
    return { config: this.config, float: this.float, lora: withLora ? { targets: this.lora.targets, rank: this.lora.rank } : null };
  }

  private session(key: string, build: () => Program): Promise<ort.InferenceSession> {
    if (this.closed) throw new Error("engine is closed");
    let s = this.sessions.get(key);
    if (!s) {
      s = this.runtime.createSession(build().bytes);
      this.sessions.set(key, s);
      s.catch(() => this.sessions.delete(key));
    }
    return s;
  }

  /** Only the feeds a session declares (programs leave out inputs they do not use). */
  private pick(session: ort.InferenceSession, feeds: Record<string, ort.Tensor>): Record<string, ort.Tensor> {
    const out: Record<string, ort.Tensor> = {};
    for (const name of session.inputNames) {
      const t = feeds[name];
      if (!t) throw new Error(`internal: no feed for program input "${name}"`);
      out[name] = t;
    }
    return out;
  }

  // ---- feeds --------------------------------------------------------------------------------

  private tensor(data: FloatArray | number[], dims: readonly number[]): ort.Tensor {
    const arr = data instanceof this.Float ? data : this.Float.from(data as ArrayLike<number>);
    return new ort.Tensor(this.float, arr, dims);
  }

  private attention(T: number): { cos: ort.Tensor; sin: ort.Tensor; mask: ort.Tensor } {
    let t = this.tables.get(T);
    if (!t) {
      const { cos, sin } = ropeTables(this.config, T);
      const hd = this.config.headDim;
      t = { cos: this.tensor(this.Float.from(cos), [T, hd]), sin: this.tensor(this.Float.from(sin), [T, hd]), mask: this.tensor(this.Float.from(causalMask(T)), [T, T]) };
      if (this.tables.size >= 8) this.tables.delete(this.tables.keys().next().value!);
      this.tables.set(T, t);
    }
    return t;
  }

  /** Embeddings, the predicting rows and their targets for one run. */
  private prepareRun(items: ScoreItem[], order: number[], T: number): RunData {
    const D = this.config.hiddenSize;
    const B = order.length;
    const h0 = new this.Float(B * T * D);
    const rows: number[] = [];
    const targets: number[] = [];
    const offsets: number[] = [];
    order.forEach((idx, b) => {
      const it = items[idx]!;
      const seq = it.promptIds.concat(it.responseIds.slice(0, -1));
      seq.forEach((id, t) => h0.set(this.embed.subarray(id * D, (id + 1) * D), (b * T + t) * D));
      offsets.push(rows.length);
      const P = it.promptIds.length;
      it.responseIds.forEach((id, j) => {
        rows.push(b * T + P - 1 + j);
        targets.push(id);
      });
    });
    return {
      B,
      T,
      items: order,
      h0,
      rows: BigInt64Array.from(rows, BigInt),
      targets: BigInt64Array.from(targets, BigInt),
      offsets,
    };
  }

  private runFeeds(data: RunData): Record<string, ort.Tensor> {
    const c = this.config;
    const feeds: Record<string, ort.Tensor> = {
      h0: this.tensor(data.h0, [data.B, data.T, c.hiddenSize]),
      ...this.attention(data.T),
      rows: new ort.Tensor("int64", data.rows, [data.rows.length]),
      targets: new ort.Tensor("int64", data.targets, [data.targets.length]),
      norm: this.weights.get("model.norm.weight")!,
      lm: this.weights.get(this.lmName)!,
    };
    for (let layer = 0; layer < c.numLayers; layer++) Object.assign(feeds, this.layerWeightFeeds(layer, true));
    return feeds;
  }

  private layerWeightFeeds(layer: number, named: boolean): Record<string, ort.Tensor> {
    const feeds: Record<string, ort.Tensor> = {};
    for (const key of layerWeightShapes(this.config).keys()) {
      feeds[layerWeightInput(key as LayerWeightKey, named ? layer : null)] = this.weights.get(`model.layers.${layer}.${key}`)!;
    }
    return feeds;
  }

  private layerLoraFeeds(lora: LoraValues, layer: number, named: boolean): Record<string, ort.Tensor> {
    const dims = loraDims(this.config);
    const r = this.lora.rank;
    const feeds: Record<string, ort.Tensor> = { lora_scaling: this.tensor([lora.scaling], []) };
    for (const t of this.lora.targets) {
      const key = loraKey(layer, t);
      feeds[loraInput(t, "a", named ? layer : null)] = this.tensor(lora.a.get(key)!, [r, dims[t].in]);
      feeds[loraInput(t, "b", named ? layer : null)] = this.tensor(lora.b.get(key)!, [dims[t].out, r]);
    }
    return feeds;
  }

  private wholeLoraFeeds(lora: LoraValues): Record<string, ort.Tensor> {
    const feeds: Record<string, ort.Tensor> = {};
    for (let layer = 0; layer < this.config.numLayers; layer++) Object.assign(feeds, this.layerLoraFeeds(lora, layer, true));
    return feeds;
  }

  /** Per-token loss inputs: each token weighs 1/(its sample's tokens × samples). */
  private lossFeeds(items: TrainItem[], data: RunData, loss: LossOptions, kl: boolean): Record<string, ort.Tensor> {
    const N = data.rows.length;
    const adv = new this.Float(N);
    const old = new this.Float(N);
    const w = new this.Float(N);
    const ref = new this.Float(N);
    const klw = new this.Float(N);
    const S = items.length;
    data.items.forEach((idx, k) => {
      const it = items[idx]!;
      const R = it.responseIds.length;
      const at = data.offsets[k]!;
      for (let j = 0; j < R; j++) {
        adv[at + j] = it.advantages[j]!;
        old[at + j] = it.oldLogprobs[j]!;
        w[at + j] = 1 / (R * S);
        // Without a reference the KL term is switched off for the token; ref = old keeps it finite.
        ref[at + j] = it.refLogprobs ? it.refLogprobs[j]! : it.oldLogprobs[j]!;
        klw[at + j] = it.refLogprobs ? loss.klCoef / (R * S) : 0;
      }
    });
    const feeds: Record<string, ort.Tensor> = {
      advantages: this.tensor(adv, [N]),
      old_logprobs: this.tensor(old, [N]),
      weights: this.tensor(w, [N]),
      eps_low: this.tensor([loss.epsLow], []),
      eps_high: this.tensor([loss.epsHigh], []),
    };
    if (kl) {
      feeds.ref_logprobs = this.tensor(ref, [N]);
      feeds.kl_weights = this.tensor(klw, [N]);
    }
    return feeds;
  }

  // ---- execution ----------------------------------------------------------------------------

  /** The last layer's output at the predicting rows, from the whole-model forward program. */
  private async trunkWhole(data: RunData, lora: LoraValues): Promise<FloatArray> {
    const trunk = await this.session("trunk", () => trunkProgram(this.spec(true)));
    const { x } = await trunk.run(this.pick(trunk, { ...this.runFeeds(data), ...this.wholeLoraFeeds(lora) }));
    return x!.data as FloatArray;
  }

  /** The same, layer by layer with the program training uses for its forward pass. */
  private async trunkLayered(data: RunData, lora: LoraValues): Promise<FloatArray> {
    const D = this.config.hiddenSize;
    const fwd = await this.session("layer:fwd", () => layerForwardProgram(this.spec(true)));
    const at = this.attention(data.T);
    let h = this.tensor(data.h0, [data.B, data.T, D]);
    for (let layer = 0; layer < this.config.numLayers; layer++) {
      const feeds = { h, ...at, ...this.layerWeightFeeds(layer, false), ...this.layerLoraFeeds(lora, layer, false) };
      h = (await fwd.run(this.pick(fwd, feeds))).h_out!;
    }
    return this.selectRows(h.data as FloatArray, data.rows, 0, data.rows.length);
  }

  /** Rows of a [B·T, D] activation, by flat index. */
  private selectRows(h: FloatArray, rows: BigInt64Array, start: number, end: number): FloatArray {
    const D = this.config.hiddenSize;
    const x = new this.Float((end - start) * D);
    for (let i = start; i < end; i++) {
      const row = Number(rows[i]!);
      x.set(h.subarray(row * D, (row + 1) * D), (i - start) * D);
    }
    return x;
  }

  private zeroLoraCache: LoraValues | null = null;

  /** An adapter that changes nothing (A = B = 0), for scoring the base model. */
  private zeroLora(): LoraValues {
    if (!this.zeroLoraCache) {
      const dims = loraDims(this.config);
      const a = new Map<string, FloatArray>();
      const b = new Map<string, FloatArray>();
      for (let layer = 0; layer < this.config.numLayers; layer++) {
        for (const t of this.lora.targets) {
          a.set(loraKey(layer, t), new this.Float(this.lora.rank * dims[t].in));
          b.set(loraKey(layer, t), new this.Float(dims[t].out * this.lora.rank));
        }
      }
      this.zeroLoraCache = { scaling: 0, a, b };
    }
    return this.zeroLoraCache;
  }

  /** Log-probs from the head, in chunks of rows small enough for the [rows, vocab] logits. */
  private async headScore(x: FloatArray, targets: BigInt64Array): Promise<Float64Array> {
    const D = this.config.hiddenSize;
    const N = targets.length;
    const head = await this.session("head:score", () => headScoreProgram(this.spec(false)));
    const out = new Float64Array(N);
    for (let s = 0; s < N; s += this.headRows) {
      const e = Math.min(N, s + this.headRows);
      const r = await head.run({
        x: this.tensor(x.subarray(s * D, e * D), [e - s, D]),
        norm: this.weights.get("model.norm.weight")!,
        lm: this.weights.get(this.lmName)!,
        targets: new ort.Tensor("int64", targets.subarray(s, e), [e - s]),
      });
      out.set(r.logprobs!.data as FloatArray, s);
    }
    return out;
  }

  private async trainWhole(data: RunData, lora: LoraValues, lossFeeds: Record<string, ort.Tensor>, kl: boolean) {
    const s = await this.session(`whole:train:${kl}`, () => wholeTrainProgram(this.spec(true), kl));
    const out = await s.run(this.pick(s, { ...this.runFeeds(data), ...this.wholeLoraFeeds(lora), ...lossFeeds }));
    const gradA = new Map<string, FloatArray>();
    const gradB = new Map<string, FloatArray>();
    for (let layer = 0; layer < this.config.numLayers; layer++) {
      for (const t of this.lora.targets) {
        gradA.set(loraKey(layer, t), out[loraGradOutput(t, "a", layer)]!.data as FloatArray);
        gradB.set(loraKey(layer, t), out[loraGradOutput(t, "b", layer)]!.data as FloatArray);
      }
    }
    return { loss: scalarOf(out.loss!), logprobs: Float64Array.from(out.logprobs!.data as FloatArray), gradA, gradB };
  }

  private async trainLayered(data: RunData, lora: LoraValues, lossFeeds: Record<string, ort.Tensor>, kl: boolean) {
    const c = this.config;
    const D = c.hiddenSize;
    const L = c.numLayers;
    const shape = [data.B, data.T, D];
    const fwd = await this.session("layer:fwd", () => layerForwardProgram(this.spec(true)));
    const train = await this.session("layer:train", () => layerTrainProgram(this.spec(true)));
    const head = await this.session(`head:train:${kl}`, () => headTrainProgram(this.spec(false), kl));
    const at = this.attention(data.T);

    // Forward, keeping each layer's input.
    const hs: (ort.Tensor | null)[] = [this.tensor(data.h0, shape)];
    for (let layer = 0; layer < L; layer++) {
      const feeds = { h: hs[layer]!, ...at, ...this.layerWeightFeeds(layer, false), ...this.layerLoraFeeds(lora, layer, false) };
      hs.push((await fwd.run(this.pick(fwd, feeds))).h_out!);
    }

    // Head and loss in row chunks (the loss is a weighted sum over tokens, so chunks add up).
    const hLast = hs[L]!.data as FloatArray;
    const N = data.rows.length;
    const dh = new this.Float(data.B * data.T * D);
    const logprobs = new Float64Array(N);
    let loss = 0;
    for (let s = 0; s < N; s += this.headRows) {
      const e = Math.min(N, s + this.headRows);
      const x = this.selectRows(hLast, data.rows, s, e);
      const chunk: Record<string, ort.Tensor> = {
        x: this.tensor(x, [e - s, D]),
        norm: this.weights.get("model.norm.weight")!,
        lm: this.weights.get(this.lmName)!,
        targets: new ort.Tensor("int64", data.targets.subarray(s, e), [e - s]),
        eps_low: lossFeeds.eps_low!,
        eps_high: lossFeeds.eps_high!,
      };
      for (const name of ["advantages", "old_logprobs", "weights", "ref_logprobs", "kl_weights"]) {
        const t = lossFeeds[name];
        if (t) chunk[name] = this.tensor((t.data as FloatArray).subarray(s, e), [e - s]);
      }
      const r = await head.run(this.pick(head, chunk));
      loss += scalarOf(r.loss!);
      logprobs.set(r.logprobs!.data as FloatArray, s);
      const dx = r.dx!.data as FloatArray;
      for (let i = s; i < e; i++) {
        const row = Number(data.rows[i]!);
        for (let d = 0; d < D; d++) dh[row * D + d]! += dx[(i - s) * D + d]!;
      }
    }

    // Backward, recomputing each layer's forward from its saved input.
    const gradA = new Map<string, FloatArray>();
    const gradB = new Map<string, FloatArray>();
    let grad = this.tensor(dh, shape);
    for (let layer = L - 1; layer >= 0; layer--) {
      const feeds = { h: hs[layer]!, dh: grad, ...at, ...this.layerWeightFeeds(layer, false), ...this.layerLoraFeeds(lora, layer, false) };
      const r = await train.run(this.pick(train, feeds));
      for (const t of this.lora.targets) {
        gradA.set(loraKey(layer, t), r[loraGradOutput(t, "a", null)]!.data as FloatArray);
        gradB.set(loraKey(layer, t), r[loraGradOutput(t, "b", null)]!.data as FloatArray);
      }
      grad = r.dh_in!;
      hs[layer + 1] = null; // release as we go
    }
    return { loss, logprobs, gradA, gradB };
  }

  /** Scatters a run's per-token values back to the items they belong to. */
  private spread(values: ArrayLike<number>, data: RunData, out: number[][]): void {
    data.items.forEach((idx, k) => {
      const start = data.offsets[k]!;
      const end = k + 1 < data.offsets.length ? data.offsets[k + 1]! : values.length;
      out[idx] = Array.from({ length: end - start }, (_, j) => values[start + j]!);
    });
  }
}

/** Tokens fed to the model: the prompt and all but the last response token (the response is not empty). */
function sequenceLength(it: ScoreItem): number {
  return it.promptIds.length + it.responseIds.length - 1;
}

function scalarOf(t: ort.Tensor): number {
  return Number((t.data as FloatArray)[0]);
}

/**
 * Sums a run's gradient into the step's. A step of one run takes the arrays as they are (a copy of
 * every gradient was ~12 ms of a SmolLM2 step); with more, the first is copied, since outputs of
 * one run may share a buffer and are then summed into in place.
 */
function addInto(acc: Map<string, FloatArray>, key: string, g: FloatArray, only: boolean): void {
  const prev = acc.get(key);
  if (!prev) acc.set(key, only ? g : g.slice());
  else for (let i = 0; i < g.length; i++) prev[i]! += g[i]!;
}

/** Estimated peak bytes of a training run of B × T tokens in each mode (see memory.ts). */
export function memoryEstimate(c: ModelConfig, opts: { maxTokens: number; batchTokens: number; float?: FloatType }): Record<EngineMode, number> {
  const bpf = opts.float === "float64" ? 8 : 4;
  const T = Math.min(opts.maxTokens, opts.batchTokens);
  const B = Math.max(1, Math.floor(opts.batchTokens / T));
  const headRows = Math.max(16, Math.floor(HEAD_CHUNK_BYTES / (c.vocabSize * bpf)));
  const weights = weightBytes(c, bpf);
  return { whole: weights + wholeTrainBytes(c, B, T, bpf), layered: weights + layeredTrainBytes(c, B, T, headRows, bpf) };
}

function chooseMode(c: ModelConfig, opts: EngineOptions, maxTokens: number, batchTokens: number): EngineMode {
  const requested = opts.mode ?? "auto";
  if (requested !== "auto") {
    if (requested !== "whole" && requested !== "layered") throw new Error(`unknown engine mode "${String(requested)}"`);
    return requested;
  }
  const budget = opts.memoryBudgetBytes ?? Math.min(8 * GiB, 0.75 * os.totalmem());
  const estimate = memoryEstimate(c, { maxTokens, batchTokens, ...(opts.float ? { float: opts.float } : {}) });
  return estimate.whole <= budget ? "whole" : "layered";
}

/** Metrics of a step from the new log-probs (ratio, clipping, KL), computed in float64. */
export function stepMetrics(items: TrainItem[], logprobs: number[][], loss: LossOptions): TokenStats {
  let tokens = 0;
  let ratioSum = 0;
  let clipped = 0;
  let lpSum = 0;
  let klSum = 0;
  let klTokens = 0;
  items.forEach((it, i) => {
    const lp = logprobs[i]!;
    lp.forEach((l, j) => {
      const ratio = Math.exp(l - it.oldLogprobs[j]!);
      const a = it.advantages[j]!;
      tokens++;
      ratioSum += ratio;
      lpSum += l;
      if ((a > 0 && ratio > 1 + loss.epsHigh) || (a < 0 && ratio < 1 - loss.epsLow)) clipped++;
      if (it.refLogprobs) {
        const r = it.refLogprobs[j]! - l;
        klSum += Math.exp(r) - r - 1;
        klTokens++;
      }
    });
  });
  return {
    tokens,
    samples: items.length,
    meanRatio: tokens ? ratioSum / tokens : 1,
    clipFraction: tokens ? clipped / tokens : 0,
    kl: klTokens ? klSum / klTokens : null,
    meanLogprob: tokens ? lpSum / tokens : 0,
  };
}

/** Weight count of a model (for FLOP estimates). */
export function parameterCount(c: ModelConfig): number {
  return weightBytes(c, 1);
}
