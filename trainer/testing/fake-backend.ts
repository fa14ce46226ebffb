// A small, deterministic stand-in for the compute engine, model and adapter formats, for tests of
// the train loop's bookkeeping (batching, versions, resume) that must not depend on ONNX Runtime
// timings. Real-model behaviour is tested with the real backend (trainer/real-backend.ts).
//
// The model is a character-level "tokenizer" with a ChatML-like template; the engine's log-prob of
// token x is −1 − 0.1·tanh(Σ B) − 0.001·(x mod 7), and its "gradient" for every LoRA entry depends
// on the batch's tokens and advantages, so any change in which samples a step sees, or in the
// optimizer's state, changes the adapter bytes.
import fs from "node:fs";
import path from "node:path";
import {
  createLoraAdapter,
  loraKey,
  readFloat32,
  readSafetensorsHeader,
  writeSafetensors,
  type LoraAdapter,
  type LoraConfig,
} from "../../adapters/index.js";
import type { ChatMessage } from "../../core/index.js";
import type { LoraShape, TrainBackend, TrainSettings } from "../backend.js";
import type { Gradients, Optimizer, ScoreItem, TrainEngine, TrainItem } from "../compute.js";
import { flattenContent } from "../hint.js";
import type { ChatTokenizer, LoadedModel, ModelConfig, ModelIdentity } from "../engine/model/types.js";

const BOS = 1;
const EOS = 2;
const ROLES: Record<string, number> = { system: 3, user: 4, assistant: 5, tool: 6 };

export const fakeTokenizer: ChatTokenizer = {
  bosTokenId: BOS,
  eosTokenIds: [EOS],
  encode: (text) => [...text].map((c) => 10 + (c.codePointAt(0)! % 1000)),
  decode: (ids) => ids.filter((i) => i >= 10).map((i) => String.fromCodePoint(i - 10)).join(""),
  renderChat(messages, opts) {
    const body = messages.map((m) => `<${m.role}>${text(m)}</s>`).join("");
    return body + (opts.addGenerationPrompt ? "<assistant>" : "");
  },
  encodeChat(messages, opts) {
    const ids: number[] = [];
    for (const m of messages) ids.push(BOS, ROLES[m.role] ?? 7, ...fakeTokenizer.encode(text(m)), EOS);
    if (opts.addGenerationPrompt) ids.push(BOS, ROLES.assistant!);
    return ids;
  },
};

function text(m: ChatMessage): string {
  const calls = (m.tool_calls ?? []).map((c) => `<call ${c.function.name} ${c.function.arguments}>`).join("");
  return flattenContent(m.content) + calls;
}

const LAYERS = 2;
const DIM = 4;

const FAKE_CONFIG: ModelConfig = {
  architecture: "llama",
  hiddenSize: DIM,
  intermediateSize: DIM * 2,
  numLayers: LAYERS,
  numHeads: 2,
  numKvHeads: 2,
  headDim: DIM / 2,
  vocabSize: 1024,
  rmsNormEps: 1e-5,
  ropeTheta: 10000,
  ropeScaling: null,
  maxPositionEmbeddings: 4096,
  tieWordEmbeddings: true,
  attentionBias: false,
  qkNorm: false,
};

export function fakeModel(source = "/models/fake.gguf"): LoadedModel {
  return {
    source,
    name: "fake-model",
    hash: "fakehash",
    config: FAKE_CONFIG,
    weights: {
      config: FAKE_CONFIG,
      names: () => [],
      tensor: (n) => {
        throw new Error(`fake model has no tensor ${n}`);
      },
      float32: (n) => {
        throw new Error(`fake model has no tensor ${n}`);
      },
    },
    tokenizer: fakeTokenizer,
    close() {},
  };
}

function loraConfig(shape: LoraShape): LoraConfig {
  const dims = Object.fromEntries(shape.targets.map((t) => [t, { in: DIM, out: DIM }]));
  return { ...shape, numLayers: LAYERS, dims, baseModel: "fake-model" };
}

function sumB(adapter: LoraAdapter | null): number {
  if (!adapter) return 0;
  let s = 0;
  for (const b of adapter.b.values()) for (const v of b) s += v;
  return s;
}

export interface FakeEngineCalls {
  score: { items: ScoreItem[]; withAdapter: boolean }[];
  trainStep: TrainItem[][];
}

export class FakeEngine implements TrainEngine {
  calls: FakeEngineCalls = { score: [], trainStep: [] };
  /** Test seam: make the next N trainStep calls throw. */
  failNext = 0;
  closed = false;
  /** Milliseconds each trainStep takes (lets tests kill a process mid-step). */
  constructor(private readonly stepDelayMs = 0) {}

  close(): void {
    this.closed = true;
  }

  async score(items: ScoreItem[], adapter: LoraAdapter | null): Promise<number[][]> {
    if (this.closed) throw new Error("engine is closed");
    this.calls.score.push({ items, withAdapter: adapter !== null });
    const shift = 0.1 * Math.tanh(sumB(adapter));
    return items.map((it) => it.responseIds.map((x) => -1 - shift - 0.001 * (x % 7)));
  }

  async trainStep(items: TrainItem[], adapter: LoraAdapter): Promise<{ loss: number; gradients: Gradients; metrics: { tokens: number } }> {
    if (this.closed) throw new Error("engine is closed");
    this.calls.trainStep.push(items);
    if (this.failNext > 0) {
      this.failNext--;
      throw new Error("fake engine failure");
    }
    if (this.stepDelayMs) await new Promise((r) => setTimeout(r, this.stepDelayMs));
    let signal = 0;
    let tokens = 0;
    for (const it of items) {
      for (let t = 0; t < it.responseIds.length; t++) signal += it.advantages[t]! * (1 + (it.responseIds[t]! % 13) / 13);
      for (const id of it.promptIds) signal += (id % 5) * 1e-4;
      tokens += it.promptIds.length + it.responseIds.length;
    }
    signal /= items.length;
    const a = new Map<string, Float32Array>();
    const b = new Map<string, Float32Array>();
    for (const [k, v] of adapter.a) a.set(k, v.map((_, i) => 1e-3 * Math.sin(i + signal)));
    for (const [k, v] of adapter.b) b.set(k, v.map((_, i) => -signal * (1 + (i % 3)) * 0.01));
    return { loss: -signal, gradients: { a, b }, metrics: { tokens } };
  }
}

/** SGD with momentum: enough state that losing or reusing it changes the result. */
export class FakeOptimizer implements Optimizer {
  private momentum = new Map<string, Float32Array>();
  private t = 0;
  constructor(private readonly lr: number) {}

  step(adapter: LoraAdapter, g: Gradients): { gradNorm: number } {
    this.t++;
    let sq = 0;
    for (const [kind, grads, params] of [["a", g.a, adapter.a], ["b", g.b, adapter.b]] as const) {
      for (const [k, grad] of grads) {
        const key = `${kind}:${k}`;
        const m = this.momentum.get(key) ?? new Float32Array(grad.length);
        const p = params.get(k)!;
        for (let i = 0; i < grad.length; i++) {
          sq += grad[i]! * grad[i]!;
          m[i] = 0.9 * m[i]! + grad[i]!;
          p[i] = p[i]! - this.lr * m[i]!;
        }
        this.momentum.set(key, m);
      }
    }
    return { gradNorm: Math.sqrt(sq) };
  }

  saveState(): Uint8Array {
    const obj = { t: this.t, m: Object.fromEntries([...this.momentum].map(([k, v]) => [k, Array.from(v)])) };
    return new TextEncoder().encode(JSON.stringify(obj));
  }

  loadState(bytes: Uint8Array): void {
    const obj = JSON.parse(new TextDecoder().decode(bytes)) as { t: number; m: Record<string, number[]> };
    this.t = obj.t;
    this.momentum = new Map(Object.entries(obj.m).map(([k, v]) => [k, Float32Array.from(v)]));
  }
}

export interface FakeBackendOptions {
  stepDelayMs?: number;
  model?: LoadedModel;
}

/** What the train loop asked of the backend, to check when it holds the model. */
export interface FakeBackendCounts {
  identify: number;
  loadModel: number;
  /** model.close() calls. */
  closeModel: number;
  createEngine: number;
  closeEngine: number;
}

export function fakeBackend(opts: FakeBackendOptions = {}): TrainBackend & { engine: FakeEngine | null; counts: FakeBackendCounts } {
  const counts: FakeBackendCounts = { identify: 0, loadModel: 0, closeModel: 0, createEngine: 0, closeEngine: 0 };
  const backend = {
    engine: null as FakeEngine | null,
    counts,
    async identify(source: string): Promise<ModelIdentity> {
      counts.identify++;
      const { weights: _weights, close: _close, ...identity } = opts.model ?? fakeModel(source);
      return identity;
    },
    async loadModel(source: string): Promise<LoadedModel> {
      counts.loadModel++;
      const model = opts.model ?? fakeModel(source);
      return {
        ...model,
        close: () => {
          counts.closeModel++;
          model.close();
        },
      };
    },
    async createEngine() {
      counts.createEngine++;
      const engine = new FakeEngine(opts.stepDelayMs ?? 0);
      const close = engine.close.bind(engine);
      engine.close = () => {
        counts.closeEngine++;
        close();
      };
      backend.engine = engine;
      return engine;
    },
    createOptimizer(train: TrainSettings) {
      return new FakeOptimizer(train.lr);
    },
    newAdapter(_model: ModelIdentity, shape: LoraShape, seed: number) {
      return createLoraAdapter(loraConfig(shape), seed);
    },
    async readAdapter(dir: string) {
      const cfg = JSON.parse(fs.readFileSync(path.join(dir, "adapter_config.json"), "utf8")) as LoraShape;
      const header = readSafetensorsHeader(path.join(dir, "adapter_model.safetensors"));
      const adapter = createLoraAdapter(loraConfig(cfg), 0);
      for (const [name, entry] of header.tensors) {
        const [kind, key] = name.split("/") as ["a" | "b", string];
        adapter[kind].set(key, readFloat32(entry));
      }
      return adapter;
    },
    async writeAdapter(dir: string, adapter: LoraAdapter, _model: ModelIdentity, o: { gguf: boolean }) {
      const { rank, alpha, targets } = adapter.config;
      fs.writeFileSync(path.join(dir, "adapter_config.json"), JSON.stringify({ rank, alpha, targets }));
      const tensors = [];
      for (let layer = 0; layer < adapter.config.numLayers; layer++) {
        for (const t of adapter.config.targets) {
          const k = loraKey(layer, t);
          tensors.push({ name: `a/${k}`, shape: [adapter.a.get(k)!.length], data: adapter.a.get(k)! });
          tensors.push({ name: `b/${k}`, shape: [adapter.b.get(k)!.length], data: adapter.b.get(k)! });
        }
      }
      writeSafetensors(path.join(dir, "adapter_model.safetensors"), tensors);
      if (o.gguf) fs.writeFileSync(path.join(dir, "adapter.gguf"), "fake gguf");
    },
  };
  return backend;
}
