// The matrix products a built graph hands ONNX Runtime, with their sizes: every MatMul that some
// output depends on (what toOnnxModel serializes), once the symbolic dims (B, T, N) are given. It
// lets a FLOP formula (flops.ts) be checked against the graph itself rather than against itself.
import type { Graph, Node } from "./graph.js";
import { reachable } from "./onnx.js";
import { formatShape, type Shape } from "./shape.js";

export interface MatrixProduct {
  node: Node;
  /** Position in g.nodes, i.e. build order (nodes built before a gradients() call are its forward). */
  index: number;
  /** out [..batch, M, N] = a [..batch, M, K] · b [..batch, K, N]; batch is the broadcast leading dims' product. */
  batch: number;
  m: number;
  n: number;
  k: number;
  /** 2 per multiply-add: 2 · batch · M · N · K. */
  flops: number;
  /** An operand depends on no graph input (a constant, e.g. RoPE's ±1 rotation matrix). */
  constantOperand: boolean;
}

const product = (dims: readonly number[]) => dims.reduce((a, b) => a * b, 1);

/**
 * Concrete shapes of the values the graph's outputs depend on (by value id). `symbols` sizes the
 * symbols of the inputs; a symbol that only a Reshape introduces ("GT", "rows") is inferred there
 * from the element count and keeps that size wherever it appears. Every Reshape's element count
 * and every MatMul's inner dims are checked, so a symbol taking two sizes throws.
 */
export function concreteShapes(g: Graph, symbols: Readonly<Record<string, number>>): Map<number, number[]> {
  return shapesOf(reachable(g), symbols);
}

type Live = ReturnType<typeof reachable>;

/** concreteShapes of what reachable(g) found. */
function shapesOf(live: Live, symbols: Readonly<Record<string, number>>): Map<number, number[]> {
  const sizes = new Map(Object.entries(symbols));
  const shapes = new Map<number, number[]>();
  const resolve = (shape: Shape, what: string): number[] =>
    shape.map((d) => {
      if (typeof d === "number") return d;
      const n = sizes.get(d);
      if (n === undefined) throw new Error(`${what}: no size for symbol "${d}" in ${formatShape(shape)}`);
      return n;
    });
  for (const v of live.inputs) shapes.set(v.id, resolve(v.shape, `input ${v.name}`));
  for (const c of live.constants) shapes.set(c.value.id, resolve(c.value.shape, `constant ${c.value.name}`));
  for (const node of live.nodes) {
    // A Reshape's data operand: its element count sizes a symbol the Reshape introduces, and checks the rest.
    const source = node.op === "Reshape" ? shapes.get(node.inputs[0]!.id) : undefined;
    for (const out of node.outputs) {
      const unknown = out.shape.filter((d): d is string => typeof d === "string" && !sizes.has(d));
      if (unknown.length > 0) {
        if (!source || unknown.length !== 1) throw new Error(`${node.op} → ${out.name}: cannot size ${formatShape(out.shape)}`);
        const known = product(out.shape.map((d) => (d === unknown[0] ? 1 : typeof d === "number" ? d : sizes.get(d)!)));
        const inferred = product(source) / known;
        if (!Number.isInteger(inferred)) throw new Error(`Reshape → ${out.name}: ${product(source)} elements into ${formatShape(out.shape)}`);
        sizes.set(unknown[0]!, inferred);
      }
      const shape = resolve(out.shape, `${node.op} → ${out.name}`);
      if (source && product(source) !== product(shape)) {
        throw new Error(`Reshape → ${out.name}: ${product(source)} elements into ${formatShape(out.shape)} = ${formatShape(shape)}`);
      }
      shapes.set(out.id, shape);
    }
  }
  return shapes;
}

/** Every live MatMul (and Gemm, should one appear) in build order, sized for `symbols`. */
export function matrixProducts(g: Graph, symbols: Readonly<Record<string, number>>): MatrixProduct[] {
  const live = reachable(g);
  const shapes = shapesOf(live, symbols);
  const index = new Map(g.nodes.map((n, i) => [n, i]));
  // Values computed from constants alone (a constant, or its transpose).
  const constant = new Set(live.constants.map((c) => c.value.id));
  for (const node of live.nodes) {
    if (node.inputs.length > 0 && node.inputs.every((v) => constant.has(v.id))) for (const o of node.outputs) constant.add(o.id);
  }
  const out: MatrixProduct[] = [];
  for (const node of live.nodes) {
    if (node.op !== "MatMul" && node.op !== "Gemm") continue;
    const [a, b] = node.inputs.map((v) => shapes.get(v.id)!);
    const y = shapes.get(node.outputs[0]!.id)!;
    if (node.op === "Gemm" && ["transA", "transB"].some((t) => node.attrs[t])) throw new Error("Gemm with transposed operands is not sized here");
    const k = a![a!.length - 1]!;
    if (b![b!.length - 2] !== k) throw new Error(`MatMul ${formatShape(a!)} · ${formatShape(b!)}: inner dims differ`);
    const m = y[y.length - 2]!;
    const n = y[y.length - 1]!;
    const batch = product(y.slice(0, -2));
    out.push({
      node,
      index: index.get(node)!,
      batch,
      m,
      n,
      k,
      flops: 2 * batch * m * n * k,
      constantOperand: node.inputs.some((v) => constant.has(v.id)),
    });
  }
  return out;
}
