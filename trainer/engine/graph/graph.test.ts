// Every differentiable op of the graph builder against central finite differences, in float64 on
// ONNX Runtime, plus the builder's shape errors and the pruning of unused nodes.
import * as ort from "onnxruntime-node";
import { describe, expect, it } from "vitest";
import { seededRandom } from "../../../adapters/index.js";
import { Graph, gradients, toOnnxModel, type Value } from "./index.js";

type Build = (g: Graph, xs: Value[]) => Value;

interface Case {
  name: string;
  shapes: number[][];
  build: Build;
  /** Input values are drawn from U(lo, hi). */
  range?: [number, number];
}

async function session(g: Graph): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(toOnnxModel(g).bytes, { graphOptimizationLevel: "basic", intraOpNumThreads: 1 });
}

/** Builds loss = Σ op(x…) ⊙ R and its gradients, then checks every input element by central differences. */
async function checkGradient(c: Case, seed = 1): Promise<number> {
  const rand = seededRandom(seed);
  const [lo, hi] = c.range ?? [-1, 1];
  const g = new Graph("float64");
  const xs = c.shapes.map((s, i) => g.input(`x${i}`, "float", s));
  const y = c.build(g, xs);
  const shapeY = y.shape.map((d) => {
    if (typeof d !== "number") throw new Error("test ops must have static output shapes");
    return d;
  });
  const R = g.constant(
    Array.from({ length: shapeY.reduce((a, b) => a * b, 1) }, () => rand() * 2 - 1),
    shapeY,
  );
  const loss = g.reduceSum(g.mul(y, R), shapeY.map((_, i) => i), false);
  const grads = gradients(g, [[loss, g.scalar(1)]], xs);
  g.output(loss, "loss");
  grads.forEach((gr, i) => g.output(gr, `g${i}`));
  const s = await session(g);

  const values = c.shapes.map((shape) => Float64Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => lo + (hi - lo) * rand()));
  const feeds = () => Object.fromEntries(values.map((v, i) => [`x${i}`, new ort.Tensor("float64", v, c.shapes[i]!)]));
  const out = await s.run(feeds());
  let worst = 0;
  const eps = 1e-6;
  for (let i = 0; i < values.length; i++) {
    const analytic = out[`g${i}`]!.data as Float64Array;
    expect(analytic.length).toBe(values[i]!.length);
    for (let k = 0; k < values[i]!.length; k++) {
      const keep = values[i]![k]!;
      values[i]![k] = keep + eps;
      const up = Number((await s.run(feeds())).loss!.data[0]);
      values[i]![k] = keep - eps;
      const down = Number((await s.run(feeds())).loss!.data[0]);
      values[i]![k] = keep;
      const fd = (up - down) / (2 * eps);
      const err = Math.abs(fd - analytic[k]!) / Math.max(1, Math.abs(fd));
      worst = Math.max(worst, err);
    }
  }
  await s.release();
  return worst;
}

const cases: Case[] = [
  { name: "add with broadcasting", shapes: [[2, 3, 4], [3, 1]], build: (g, [a, b]) => g.add(a!, b!) },
  { name: "sub with broadcasting", shapes: [[4], [2, 4]], build: (g, [a, b]) => g.sub(a!, b!) },
  { name: "mul with broadcasting", shapes: [[2, 1, 4], [3, 4]], build: (g, [a, b]) => g.mul(a!, b!) },
  { name: "div", shapes: [[2, 3], [2, 3]], build: (g, [a, b]) => g.div(a!, g.add(g.mul(b!, b!), g.scalar(0.5))) },
  { name: "neg, exp", shapes: [[5]], build: (g, [a]) => g.exp(g.neg(a!)) },
  { name: "log", shapes: [[5]], build: (g, [a]) => g.log(a!), range: [0.5, 2] },
  { name: "sqrt, reciprocal", shapes: [[5]], build: (g, [a]) => g.reciprocal(g.sqrt(a!)), range: [0.5, 2] },
  { name: "sigmoid, silu", shapes: [[2, 3]], build: (g, [a]) => g.add(g.sigmoid(a!), g.silu(a!)) },
  { name: "max and min", shapes: [[6], [6]], build: (g, [a, b]) => g.add(g.max(a!, b!), g.mul(g.min(a!, g.scalar(0.1)), b!)) },
  { name: "where", shapes: [[6], [6]], build: (g, [a, b]) => g.where(g.compare("Greater", a!, b!), g.mul(a!, a!), b!) },
  { name: "matmul 2-D", shapes: [[3, 4], [4, 5]], build: (g, [a, b]) => g.matmul(a!, b!) },
  { name: "matmul batched × 2-D", shapes: [[2, 3, 4], [4, 5]], build: (g, [a, b]) => g.matmul(a!, b!) },
  { name: "matmul broadcast batch", shapes: [[2, 3, 2, 4], [2, 1, 4, 3]], build: (g, [a, b]) => g.matmul(a!, b!) },
  { name: "linear (x Wᵀ)", shapes: [[2, 3, 4], [5, 4]], build: (g, [x, w]) => g.linear(x!, w!) },
  { name: "transpose", shapes: [[2, 3, 4]], build: (g, [a]) => g.mul(g.transpose(a!, [2, 0, 1]), g.transpose(a!, [2, 0, 1])) },
  { name: "reshape", shapes: [[2, 6]], build: (g, [a]) => g.mul(g.reshape(a!, [3, 4]), g.reshape(a!, [3, 4])) },
  { name: "reduceSum keepdims", shapes: [[2, 3, 4]], build: (g, [a]) => g.mul(g.reduceSum(a!, [1], true), a!) },
  { name: "reduceSum", shapes: [[2, 3, 4]], build: (g, [a]) => g.exp(g.reduceSum(a!, [0, 2], false)) },
  { name: "reduceMean", shapes: [[2, 3, 4]], build: (g, [a]) => g.exp(g.reduceMean(a!, [-1], false)) },
  { name: "reduceLogSumExp (last axis)", shapes: [[3, 5]], build: (g, [a]) => g.reduceLogSumExp(g.mul(a!, g.scalar(3)), [-1], false) },
  { name: "reduceLogSumExp (other axis)", shapes: [[3, 5]], build: (g, [a]) => g.reduceLogSumExp(a!, [0], true) },
  { name: "softmax", shapes: [[2, 5]], build: (g, [a]) => g.softmax(g.mul(a!, g.scalar(2))) },
  { name: "unsqueeze, expand", shapes: [[3], [2, 3]], build: (g, [a, b]) => g.mul(g.expandLike(g.unsqueeze(a!, [0]), b!), b!) },
  { name: "gather rows", shapes: [[5, 3]], build: (g, [a]) => g.gather(a!, g.int64s([4, 0, 4, 2])) },
  { name: "slice and concat", shapes: [[2, 6]], build: (g, [a]) => g.concat([g.neg(g.slice(a!, -1, 3, 6)), g.slice(a!, -1, 0, 3)], -1) },
  {
    name: "attention (2 query heads per key/value head, causal mask)",
    shapes: [[2, 6, 4], [2, 3, 4], [2, 3, 4]],
    build: (g, [q, k, v]) => g.attention(q!, k!, v!, g.constant([0, -1e9, -1e9, 0, 0, -1e9, 0, 0, 0], [3, 3]), 2),
    range: [-2, 2],
  },
  { name: "rmsNorm", shapes: [[3, 8], [8]], build: (g, [x, w]) => g.rmsNorm(x!, w!, 1e-5) },
  { name: "swiglu", shapes: [[3, 8], [3, 8]], build: (g, [gate, up]) => g.swiglu(gate!, up!), range: [-3, 3] },
];

describe("graph ops: gradients against central finite differences (float64)", () => {
  for (const c of cases) {
    it(c.name, async () => {
      const worst = await checkGradient(c);
      expect(worst).toBeLessThan(1e-7);
    });
  }
});

describe("graph builder", () => {
  it("rejects shapes that do not broadcast or multiply", () => {
    const g = new Graph("float32");
    const a = g.input("a", "float", ["T", 4]);
    const b = g.input("b", "float", [5, 4]);
    expect(() => g.add(a, b)).toThrow(/cannot broadcast/);
    expect(() => g.matmul(a, b)).toThrow(/inner dims/);
    expect(() => g.reshape(b, [3, 7])).toThrow(/sizes differ/);
  });

  it("rejects mixing float types", () => {
    const g = new Graph("float32");
    const a = g.input("a", "float", [2]);
    const i = g.input("i", "int64", [2]);
    expect(() => g.add(a, i)).toThrow(/expected float32/);
  });

  it("composes transposes, so (Wᵀ)ᵀ is W itself", () => {
    const g = new Graph("float32");
    const w = g.input("w", "float", [3, 4]);
    expect(g.transpose(g.transpose(w, [1, 0]), [1, 0])).toBe(w);
  });

  it("leaves nodes and inputs no output needs out of the model", () => {
    const g = new Graph("float32");
    const a = g.input("a", "float", [2]);
    const unused = g.input("unused", "float", [2]);
    g.exp(unused);
    g.output(g.neg(a), "y");
    const m = toOnnxModel(g);
    expect(m.inputs).toEqual(["a"]);
    expect(m.outputs).toEqual(["y"]);
  });

  it("differentiates only along paths from trainable inputs", () => {
    const g = new Graph("float64");
    const frozen = g.input("w", "float", [3, 3]);
    const x = g.input("x", "float", [2, 3]);
    const lora = g.input("a", "float", [3, 3]);
    const y = g.add(g.linear(x, frozen), g.linear(x, lora));
    const before = g.nodes.length;
    const [ga] = gradients(g, [[g.reduceSum(y, [0, 1], false), g.scalar(1)]], [lora]);
    expect(ga!.shape).toEqual([3, 3]);
    // Nothing flows to x or the frozen weight: no MatMul that multiplies by W is emitted.
    const backward = g.nodes.slice(before);
    expect(backward.some((n) => n.op === "MatMul" && n.inputs.includes(frozen))).toBe(false);
  });
});
