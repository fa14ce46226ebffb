// flops.ts against the work in the engine's own graphs. The programs of programs.ts are built for a
// small model (nothing runs), and every matrix product ONNX Runtime is handed is sized from the
// builder's shapes: 2·batch·M·N·K per MatMul. The counts must equal forwardFlops / trainFlops
// exactly, for every LoRA target set and in both modes:
//  - whole: the training program's products are the step's useful work; those built before its
//    gradients() call are the forward pass.
//  - layered: L × the layer forward, plus L × the backward part of the layer fwd+bwd program, plus
//    the head. Left out, as overhead: the recomputed forward (the nodes that program builds before
//    its gradients() call) and, at layer 0, the products that only its input gradient dh_in needs
//    (the embeddings are frozen, so the step never uses it).
// Left out everywhere: RoPE's rotate_half, a product with a constant ±1 matrix (a permutation).
import onnxProto from "onnx-proto";
import { describe, expect, it, vi } from "vitest";
import type { LoraTarget } from "../../adapters/index.js";
import { forwardFlops, trainFlops, type FlopShape } from "./flops.js";
import { matrixProducts, type Graph, type MatrixProduct, type Node } from "./graph/index.js";
import {
  headScoreProgram,
  headTrainProgram,
  layerForwardProgram,
  layerTrainProgram,
  trunkProgram,
  wholeTrainProgram,
  type Program,
  type ProgramSpec,
} from "./programs.js";
import type { ModelConfig } from "./model/types.js";
import { tinyConfig } from "./testing/synthetic.js";

// programs.ts returns serialized models; the graph behind each, and where its backward starts,
// are taken on the way through (the real functions run unchanged).
const seen = vi.hoisted(() => ({ graph: null as unknown, backwardFrom: new WeakMap<object, number>() }));
vi.mock("./graph/index.js", async (importOriginal) => {
  const real = await importOriginal<typeof import("./graph/index.js")>();
  const gradients: typeof real.gradients = (g, seeds, wrt) => {
    if (seen.backwardFrom.has(g)) throw new Error("one gradients() call per program expected");
    seen.backwardFrom.set(g, g.nodes.length);
    return real.gradients(g, seeds, wrt);
  };
  const toOnnxModel: typeof real.toOnnxModel = (g, name) => {
    seen.graph = g;
    return real.toOnnxModel(g, name);
  };
  return { ...real, gradients, toOnnxModel };
});

const ALL: LoraTarget[] = ["q", "k", "v", "o", "gate", "up", "down"];
// Every dim distinct: D 24, F 40, q 48, kv 16, head 8, G 3, vocab 50, T 12 (G·T 36), B·T 24 ≠ N 9;
// rank 5 (5, 10, 15 stacked) matches none, so a product with a rank-sized dim is a LoRA product.
const SIZES = { B: 2, T: 12, N: 9 };
const RANK = 5;
const base = { hiddenSize: 24, intermediateSize: 40, numLayers: 3, numHeads: 6, numKvHeads: 2, headDim: 8, vocabSize: 50 };
const CONFIGS: Record<string, ModelConfig> = {
  "llama (GQA, tied)": tinyConfig(base),
  "qwen2 (q/k/v bias, untied)": tinyConfig({ ...base, architecture: "qwen2", attentionBias: true, tieWordEmbeddings: false }),
  "qwen3 (q/k norm, head dim ≠ D/H)": tinyConfig({ ...base, architecture: "qwen3", qkNorm: true, headDim: 12 }),
};
// All seven, and subsets whose first target sits at each point of the layer (how far layer 0's
// backward reaches depends on it).
const TARGET_SETS: LoraTarget[][] = [ALL, ["q", "v"], ["k"], ["v", "o", "up"], ["o"], ["gate", "up", "down"], ["down"]];

interface Built {
  graph: Graph;
  /** Index in graph.nodes of the first node its gradients() call built, or null without one. */
  backwardFrom: number | null;
  products: MatrixProduct[];
}

function build(make: () => Program): Built {
  seen.graph = null;
  const program = make();
  const graph = seen.graph as Graph | null;
  if (!graph) throw new Error("the program was not built through toOnnxModel");
  const products = matrixProducts(graph, SIZES);
  // The products counted are the MatMuls that were serialized, no more and no fewer.
  const model = onnxProto.onnx.ModelProto.decode(program.bytes);
  const serialized = model.graph!.node!.filter((n) => n.opType === "MatMul" || n.opType === "Gemm").map((n) => n.output![0]!);
  expect(products.map((p) => p.node.outputs[0]!.name)).toEqual(serialized);
  return { graph, backwardFrom: seen.backwardFrom.get(graph) ?? null, products };
}

const sum = (ps: MatrixProduct[]) => ps.reduce((s, p) => s + p.flops, 0);
/** The work flops.ts counts: every product but rotate_half's. */
const useful = (ps: MatrixProduct[]) => sum(ps.filter((p) => !p.constantOperand));

/** Useful flops by kind, to show which term is off when a total is. */
function byKind(c: ModelConfig, ps: MatrixProduct[]): { lora: number; head: number; rest: number } {
  const out = { lora: 0, head: 0, rest: 0 };
  for (const p of ps) {
    if (p.constantOperand) continue;
    const dims = [p.m, p.n, p.k];
    if (dims.some((d) => d % RANK === 0 && d <= 3 * RANK)) out.lora += p.flops;
    else if (dims.includes(c.vocabSize)) out.head += p.flops;
    else out.rest += p.flops;
  }
  return out;
}

/** The same split from flops.ts: LoRA = f(rank) − f(rank 0), head = f(N) − f(N = 0). */
function kindsOf(f: (c: ModelConfig, s: FlopShape) => number, c: ModelConfig, s: FlopShape): { lora: number; head: number; rest: number } {
  const total = f(c, s);
  const lora = total - f(c, { ...s, rank: 0 });
  const head = total - f(c, { ...s, headRows: 0 });
  return { lora, head, rest: total - lora - head };
}

/** Nodes that any of `values` depends on. */
function upstream(g: Graph, values: { id: number }[]): Set<Node> {
  const needed = new Set(values.map((v) => v.id));
  const nodes = new Set<Node>();
  for (let i = g.nodes.length - 1; i >= 0; i--) {
    const n = g.nodes[i]!;
    if (!n.outputs.some((o) => needed.has(o.id))) continue;
    nodes.add(n);
    for (const v of n.inputs) needed.add(v.id);
  }
  return nodes;
}

/** Nodes that depend on the graph input `name`. */
function downstream(g: Graph, name: string): Set<Node> {
  const input = g.inputs.find((v) => v.name === name);
  if (!input) throw new Error(`no input ${name}`);
  const live = new Set([input.id]);
  const nodes = new Set<Node>();
  for (const n of g.nodes) {
    if (!n.inputs.some((v) => live.has(v.id))) continue;
    nodes.add(n);
    for (const o of n.outputs) live.add(o.id);
  }
  return nodes;
}

function shapeFor(targets: LoraTarget[]): FlopShape {
  return { batch: SIZES.B, tokens: SIZES.T, headRows: SIZES.N, rank: RANK, loraTargets: targets };
}

describe("flops.ts against the products in the engine's graphs", () => {
  for (const [name, c] of Object.entries(CONFIGS)) {
    describe(name, () => {
      const headSpec: ProgramSpec = { config: c, float: "float32", lora: null };

      for (const targets of TARGET_SETS) {
        const label = targets.length === ALL.length ? "all seven targets" : `targets ${targets.join(", ")}`;
        const spec: ProgramSpec = { config: c, float: "float32", lora: { targets, rank: RANK } };
        const s = shapeFor(targets);
        const L = c.numLayers;

        it(`whole mode, ${label}: the training program's products are trainFlops, its forward part forwardFlops`, () => {
          for (const kl of [false, true]) {
            const train = build(() => wholeTrainProgram(spec, kl));
            expect(train.backwardFrom).not.toBeNull();
            expect(useful(train.products)).toBe(trainFlops(c, s));
            expect(byKind(c, train.products)).toEqual(kindsOf(trainFlops, c, s));
            const forward = train.products.filter((p) => p.index < train.backwardFrom!);
            expect(useful(forward)).toBe(forwardFlops(c, s));
          }
        });

        it(`scoring, ${label}: trunk + head, or L × layer forward + head, is forwardFlops`, () => {
          const headScore = build(() => headScoreProgram(headSpec));
          const trunk = build(() => trunkProgram(spec));
          const layer = build(() => layerForwardProgram(spec));
          expect(trunk.backwardFrom).toBeNull();
          expect(useful(trunk.products) + useful(headScore.products)).toBe(forwardFlops(c, s));
          expect(L * useful(layer.products) + useful(headScore.products)).toBe(forwardFlops(c, s));
          expect({
            lora: byKind(c, trunk.products).lora,
            head: byKind(c, headScore.products).head,
            rest: byKind(c, trunk.products).rest,
          }).toEqual(kindsOf(forwardFlops, c, s));
        });

        it(`layered mode, ${label}: forward + backward + head is trainFlops; recomputation and layer 0's dh_in are the overhead`, () => {
          const forward = build(() => layerForwardProgram(spec));
          const train = build(() => layerTrainProgram(spec));
          const headTrain = build(() => headTrainProgram(headSpec, false));
          const from = train.backwardFrom!;
          const recompute = train.products.filter((p) => p.index < from);
          const backward = train.products.filter((p) => p.index >= from);
          // "Built before gradients()" is the forward: exactly the products that do not read the
          // incoming gradient dh.
          const afterDh = downstream(train.graph, "dh");
          for (const p of train.products) expect(afterDh.has(p.node)).toBe(p.index >= from);
          // The recomputed forward is the layer forward, less what the backward does not read.
          expect(useful(recompute)).toBeGreaterThan(0);
          expect(useful(recompute)).toBeLessThanOrEqual(useful(forward.products));
          // Products only dh_in needs; at layer 0 nothing reads it.
          const forGrads = upstream(train.graph, train.graph.outputs.filter((o) => o.name !== "dh_in").map((o) => o.value));
          const onlyDhIn = backward.filter((p) => !forGrads.has(p.node));
          expect(useful(onlyDhIn)).toBeGreaterThan(0);
          const step = L * useful(forward.products) + L * useful(backward) - useful(onlyDhIn) + useful(headTrain.products);
          expect(step).toBe(trainFlops(c, s));
        });
      }

      it("rotate_half is the only product left out: [.., head dim] × [head dim, head dim] with a constant", () => {
        const train = build(() => wholeTrainProgram({ config: c, float: "float32", lora: { targets: ALL, rank: RANK } }, false));
        const rotations = train.products.filter((p) => p.constantOperand);
        for (const p of rotations) expect([p.n, p.k]).toEqual([c.headDim, c.headDim]);
        // q and k in every layer, forward and backward (with all targets, layer 0's q and k need gradients).
        expect(rotations).toHaveLength(4 * c.numLayers);
        const perTokenLayer = 2 * (c.numHeads + c.numKvHeads) * c.headDim * c.headDim;
        expect(sum(rotations)).toBe(2 * c.numLayers * SIZES.B * SIZES.T * perTokenLayer);
      });
    });
  }

  it("a count of targets is accepted only where it says which: 0 or all 7", () => {
    const c = CONFIGS["llama (GQA, tied)"]!;
    expect(trainFlops(c, { ...shapeFor(ALL), loraTargets: 7 })).toBe(trainFlops(c, shapeFor(ALL)));
    expect(forwardFlops(c, { ...shapeFor(ALL), loraTargets: 0 })).toBe(forwardFlops(c, shapeFor([])));
    expect(() => trainFlops(c, { ...shapeFor(ALL), loraTargets: 2 })).toThrow(/pass the list of targets/);
    expect(() => forwardFlops(c, { ...shapeFor(ALL), loraTargets: ["q", "x" as LoraTarget] })).toThrow(/unknown LoRA target "x"/);
    expect(() => trainFlops(c, shapeFor([]))).toThrow(/needs LoRA targets/);
  });
});
