// A small tensor-graph builder that emits ONNX. Each op records its output shape (so mistakes
// surface while building, not inside ONNX Runtime) and, where it is differentiable, the rule that
// emits its backward nodes (see autodiff.ts). The whole graph computes in one float type:
// float32 for real work, float64 for gradient checks.
import {
  broadcastShapes,
  formatShape,
  matmulShape,
  normAxis,
  reshapeSpec,
  staticSize,
  type Dim,
  type Shape,
} from "./shape.js";

export type FloatType = "float32" | "float64";
export type DType = FloatType | "int64" | "bool";

export interface Value {
  readonly id: number;
  readonly name: string;
  readonly dtype: DType;
  readonly shape: Shape;
}

export type Attr =
  | { kind: "int"; value: number }
  | { kind: "ints"; value: number[] }
  | { kind: "float"; value: number }
  | { kind: "string"; value: string }
  | { kind: "tensor"; dtype: DType; dims: number[]; data: number[] };

/**
 * Emits gradients given the gradient of a node's (single) output: per input (positional), or, for
 * a composite op whose backward is written by hand, as (value, gradient) pairs for any values the
 * composite was built from. `needs` tells which inputs (positional) depend on a trainable input;
 * composites ask `live(v)` instead.
 */
export type GradRule = (gy: Value, needs: readonly boolean[], live: (v: Value) => boolean) => (Value | null)[] | { to: [Value, Value | null][] };

export interface Node {
  readonly op: string;
  readonly domain: string;
  readonly inputs: readonly Value[];
  readonly outputs: readonly Value[];
  readonly attrs: Readonly<Record<string, Attr>>;
  readonly grad: GradRule | null;
}

export interface Constant {
  value: Value;
  data: Float32Array | Float64Array | BigInt64Array | Uint8Array;
}

const int = (value: number): Attr => ({ kind: "int", value });
const ints = (value: number[]): Attr => ({ kind: "ints", value });

export class Graph {
  readonly nodes: Node[] = [];
  readonly inputs: Value[] = [];
  readonly outputs: { name: string; value: Value }[] = [];
  readonly constants: Constant[] = [];
  private nextId = 0;
  private readonly names = new Set<string>();
  private readonly producers = new Map<number, Node>();
  private readonly constCache = new Map<string, Value>();

  constructor(readonly float: FloatType) {}

  // ---- values -------------------------------------------------------------------------------

  private newValue(dtype: DType, shape: Shape, name?: string): Value {
    const id = this.nextId++;
    const n = name ?? `v${id}`;
    if (this.names.has(n)) throw new Error(`duplicate value name "${n}"`);
    this.names.add(n);
    return { id, name: n, dtype, shape: [...shape] };
  }

  /** A graph input. `dtype` "float" means the graph's float type. */
  input(name: string, dtype: DType | "float", shape: Shape): Value {
    const v = this.newValue(dtype === "float" ? this.float : dtype, shape, name);
    this.inputs.push(v);
    return v;
  }

  output(value: Value, name: string): void {
    if (this.outputs.some((o) => o.name === name)) throw new Error(`duplicate output "${name}"`);
    // Renaming goes through Identity, which ONNX Runtime removes when optimizing.
    const out = this.newValue(value.dtype, value.shape, name);
    this.addNode("Identity", [value], [out], {}, null);
    this.outputs.push({ name, value: out });
  }

  producer(v: Value): Node | undefined {
    return this.producers.get(v.id);
  }

  /** A constant tensor in the graph's float type (or int64 / bool). Small ones are shared. */
  constant(values: ArrayLike<number>, shape: number[], dtype: DType | "float" = "float"): Value {
    const dt = dtype === "float" ? this.float : dtype;
    const count = shape.reduce((a, b) => a * b, 1);
    if (values.length !== count) throw new Error(`constant of shape ${formatShape(shape)} needs ${count} values, got ${values.length}`);
    const key = count <= 64 ? `${dt}|${shape.join(",")}|${Array.from(values).join(",")}` : null;
    const cached = key ? this.constCache.get(key) : undefined;
    if (cached) return cached;
    const v = this.newValue(dt, shape);
    let data: Constant["data"];
    if (dt === "float32") data = Float32Array.from(values);
    else if (dt === "float64") data = Float64Array.from(values);
    else if (dt === "int64") data = BigInt64Array.from(Array.from(values, (x) => BigInt(x)));
    else data = Uint8Array.from(values);
    this.constants.push({ value: v, data });
    if (key) this.constCache.set(key, v);
    return v;
  }

  scalar(x: number): Value {
    return this.constant([x], []);
  }

  int64s(xs: number[]): Value {
    return this.constant(xs, [xs.length], "int64");
  }

  // ---- node emission ------------------------------------------------------------------------

  private addNode(op: string, inputs: Value[], outputs: Value[], attrs: Record<string, Attr>, grad: GradRule | null, domain = ""): Node {
    const node: Node = { op, domain, inputs, outputs, attrs, grad };
    this.nodes.push(node);
    for (const o of outputs) this.producers.set(o.id, node);
    return node;
  }

  /** Emits one single-output node and returns its output. */
  private emit(op: string, inputs: Value[], dtype: DType, shape: Shape, attrs: Record<string, Attr> = {}, grad: GradRule | null = null): Value {
    const out = this.newValue(dtype, shape);
    this.addNode(op, inputs, [out], attrs, grad);
    return out;
  }

  private requireFloat(op: string, ...vs: Value[]): void {
    for (const v of vs) {
      if (v.dtype !== this.float) throw new Error(`${op}: expected ${this.float}, got ${v.dtype} (${v.name})`);
    }
  }

  /** Sums a broadcast gradient back to the shape of the operand it came from. */
  unbroadcast(grad: Value, target: Value): Value {
    const lead = grad.shape.length - target.shape.length;
    const axes: number[] = [];
    for (let i = 0; i < grad.shape.length; i++) {
      if (i < lead) axes.push(i);
      else if (target.shape[i - lead] === 1 && grad.shape[i] !== 1) axes.push(i);
      else if (target.shape[i - lead] !== grad.shape[i]) {
        throw new Error(`unbroadcast: ${formatShape(grad.shape)} does not broadcast from ${formatShape(target.shape)}`);
      }
    }
    if (axes.length === 0) return grad;
    const summed = this.reduceSum(grad, axes, true);
    return lead > 0 ? this.reshapeLike(summed, target) : summed;
  }

  // ---- elementwise --------------------------------------------------------------------------

  add(a: Value, b: Value): Value {
    this.requireFloat("Add", a, b);
    return this.emit("Add", [a, b], a.dtype, broadcastShapes(a.shape, b.shape), {}, (gy, needs) => [
      needs[0] ? this.unbroadcast(gy, a) : null,
      needs[1] ? this.unbroadcast(gy, b) : null,
    ]);
  }

  sub(a: Value, b: Value): Value {
    this.requireFloat("Sub", a, b);
    return this.emit("Sub", [a, b], a.dtype, broadcastShapes(a.shape, b.shape), {}, (gy, needs) => [
      needs[0] ? this.unbroadcast(gy, a) : null,
      needs[1] ? this.unbroadcast(this.neg(gy), b) : null,
    ]);
  }

  mul(a: Value, b: Value): Value {
    this.requireFloat("Mul", a, b);
    return this.emit("Mul", [a, b], a.dtype, broadcastShapes(a.shape, b.shape), {}, (gy, needs) => [
      needs[0] ? this.unbroadcast(this.mul(gy, b), a) : null,
      needs[1] ? this.unbroadcast(this.mul(gy, a), b) : null,
    ]);
  }

  div(a: Value, b: Value): Value {
    this.requireFloat("Div", a, b);
    const y = this.emit("Div", [a, b], a.dtype, broadcastShapes(a.shape, b.shape), {}, (gy, needs) => [
      needs[0] ? this.unbroadcast(this.div(gy, b), a) : null,
      needs[1] ? this.unbroadcast(this.neg(this.div(this.mul(gy, y), b)), b) : null,
    ]);
    return y;
  }

  neg(x: Value): Value {
    this.requireFloat("Neg", x);
    return this.emit("Neg", [x], x.dtype, x.shape, {}, (gy) => [this.neg(gy)]);
  }

  exp(x: Value): Value {
    this.requireFloat("Exp", x);
    const y = this.emit("Exp", [x], x.dtype, x.shape, {}, (gy) => [this.mul(gy, y)]);
    return y;
  }

  log(x: Value): Value {
    this.requireFloat("Log", x);
    return this.emit("Log", [x], x.dtype, x.shape, {}, (gy) => [this.div(gy, x)]);
  }

  sqrt(x: Value): Value {
    this.requireFloat("Sqrt", x);
    const y = this.emit("Sqrt", [x], x.dtype, x.shape, {}, (gy) => [this.div(this.mul(gy, this.scalar(0.5)), y)]);
    return y;
  }

  reciprocal(x: Value): Value {
    this.requireFloat("Reciprocal", x);
    const y = this.emit("Reciprocal", [x], x.dtype, x.shape, {}, (gy) => [this.neg(this.mul(gy, this.mul(y, y)))]);
    return y;
  }

  sigmoid(x: Value): Value {
    this.requireFloat("Sigmoid", x);
    const y = this.emit("Sigmoid", [x], x.dtype, x.shape, {}, (gy) => [
      this.mul(gy, this.mul(y, this.sub(this.scalar(1), y))),
    ]);
    return y;
  }

  /** Elementwise max; the gradient goes to `a` where a ≥ b, else to `b`. */
  max(a: Value, b: Value): Value {
    this.requireFloat("Max", a, b);
    return this.emit("Max", [a, b], a.dtype, broadcastShapes(a.shape, b.shape), {}, (gy, needs) => {
      const pick = this.compare("GreaterOrEqual", a, b);
      return this.routeGrad(gy, pick, a, b, needs);
    });
  }

  /** Elementwise min; the gradient goes to `a` where a ≤ b, else to `b`. */
  min(a: Value, b: Value): Value {
    this.requireFloat("Min", a, b);
    return this.emit("Min", [a, b], a.dtype, broadcastShapes(a.shape, b.shape), {}, (gy, needs) => {
      const pick = this.compare("LessOrEqual", a, b);
      return this.routeGrad(gy, pick, a, b, needs);
    });
  }

  private routeGrad(gy: Value, pickA: Value, a: Value, b: Value, needs: readonly boolean[]): (Value | null)[] {
    const zero = this.scalar(0);
    return [
      needs[0] ? this.unbroadcast(this.where(pickA, gy, zero), a) : null,
      needs[1] ? this.unbroadcast(this.where(pickA, zero, gy), b) : null,
    ];
  }

  compare(op: "Greater" | "GreaterOrEqual" | "Less" | "LessOrEqual" | "Equal", a: Value, b: Value): Value {
    return this.emit(op, [a, b], "bool", broadcastShapes(a.shape, b.shape));
  }

  where(cond: Value, a: Value, b: Value): Value {
    if (cond.dtype !== "bool") throw new Error("Where: condition must be bool");
    this.requireFloat("Where", a, b);
    const shape = broadcastShapes(cond.shape, broadcastShapes(a.shape, b.shape));
    return this.emit("Where", [cond, a, b], a.dtype, shape, {}, (gy, needs) => {
      const zero = this.scalar(0);
      return [
        null,
        needs[1] ? this.unbroadcast(this.where(cond, gy, zero), a) : null,
        needs[2] ? this.unbroadcast(this.where(cond, zero, gy), b) : null,
      ];
    });
  }

  // ---- linear algebra -----------------------------------------------------------------------

  matmul(a: Value, b: Value): Value {
    this.requireFloat("MatMul", a, b);
    const shape = matmulShape(a.shape, b.shape);
    return this.emit("MatMul", [a, b], a.dtype, shape, {}, (gy, needs) => {
      const ga = needs[0] ? this.unbroadcast(this.matmul(gy, this.transposeLast2(b)), a) : null;
      let gb: Value | null = null;
      if (needs[1]) {
        if (b.shape.length === 2 && a.shape.length > 2) {
          // A batched input against a 2-D weight: fold the batch into rows so dB is one GEMM
          // instead of a batched product followed by a sum.
          const k = a.shape[a.shape.length - 1]!;
          const n = gy.shape[gy.shape.length - 1]!;
          const a2 = this.reshape(a, ["rows", k]);
          const g2 = this.reshape(gy, ["rows", n]);
          gb = this.matmul(this.transpose(a2, [1, 0]), g2);
        } else {
          gb = this.unbroadcast(this.matmul(this.transposeLast2(a), gy), b);
        }
      }
      return [ga, gb];
    });
  }

  /** `x Wᵀ` for a PyTorch-layout weight W [out, in]; ONNX Runtime fuses the transpose into the GEMM. */
  linear(x: Value, w: Value): Value {
    return this.matmul(x, this.transpose(w, [1, 0]));
  }

  private transposeLast2(x: Value): Value {
    const r = x.shape.length;
    const perm = [...Array(r).keys()];
    perm[r - 2] = r - 1;
    perm[r - 1] = r - 2;
    return this.transpose(x, perm);
  }

  transpose(x: Value, perm: number[]): Value {
    if (perm.length !== x.shape.length) throw new Error(`Transpose: perm ${perm} for rank ${x.shape.length}`);
    // Transposing a transpose composes into one (or none): keeps backward graphs free of
    // round-trip copies such as (Wᵀ)ᵀ.
    const prev = this.producer(x);
    if (prev && prev.op === "Transpose") {
      const inner = prev.attrs.perm as { kind: "ints"; value: number[] };
      const composed = perm.map((p) => inner.value[p]!);
      const source = prev.inputs[0]!;
      if (composed.every((p, i) => p === i)) return source;
      return this.transpose(source, composed);
    }
    if (perm.every((p, i) => p === i)) return x;
    const shape = perm.map((p) => x.shape[p]!);
    const inverse = new Array<number>(perm.length);
    perm.forEach((p, i) => (inverse[p] = i));
    return this.emit("Transpose", [x], x.dtype, shape, { perm: ints(perm) }, (gy) => [this.transpose(gy, inverse)]);
  }

  /** Reshape to dims that may name symbols; see reshapeSpec for what can be expressed statically. */
  reshape(x: Value, dims: Dim[]): Value {
    const known = staticSize(x.shape);
    const target = staticSize(dims);
    if (known !== null && target !== null && known !== target) {
      throw new Error(`reshape ${formatShape(x.shape)} → ${formatShape(dims)}: sizes differ`);
    }
    const spec = this.int64s(reshapeSpec(x.shape, dims));
    return this.emit("Reshape", [x, spec], x.dtype, dims, {}, (gy) => [this.reshapeLike(gy, x)]);
  }

  /** Reshape to the runtime shape of `like`. */
  reshapeLike(x: Value, like: Value): Value {
    return this.emit("Reshape", [x, this.shapeOf(like)], x.dtype, like.shape, {}, (gy) => [this.reshapeLike(gy, x)]);
  }

  shapeOf(x: Value): Value {
    return this.emit("Shape", [x], "int64", [x.shape.length]);
  }

  // ---- reductions ---------------------------------------------------------------------------

  private reducedShape(x: Value, axes: number[], keepdims: boolean): { axes: number[]; shape: Dim[] } {
    const norm = axes.map((a) => normAxis(a, x.shape.length));
    const shape: Dim[] = [];
    x.shape.forEach((d, i) => {
      if (!norm.includes(i)) shape.push(d);
      else if (keepdims) shape.push(1);
    });
    return { axes: norm, shape };
  }

  /** Broadcasts a reduced gradient back over the reduced axes. */
  private expandBack(gy: Value, x: Value, axes: number[], keepdims: boolean): Value {
    const kept = keepdims ? gy : this.unsqueeze(gy, axes);
    return this.expandLike(kept, x);
  }

  reduceSum(x: Value, axes: number[], keepdims: boolean): Value {
    this.requireFloat("ReduceSum", x);
    const r = this.reducedShape(x, axes, keepdims);
    return this.emit("ReduceSum", [x, this.int64s(r.axes)], x.dtype, r.shape, { keepdims: int(keepdims ? 1 : 0) }, (gy) => [
      this.expandBack(gy, x, r.axes, keepdims),
    ]);
  }

  reduceMean(x: Value, axes: number[], keepdims: boolean): Value {
    this.requireFloat("ReduceMean", x);
    const r = this.reducedShape(x, axes, keepdims);
    const count = staticSize(r.axes.map((a) => x.shape[a]!));
    if (count === null) throw new Error(`ReduceMean over symbolic dims of ${formatShape(x.shape)}`);
    return this.emit("ReduceMean", [x], x.dtype, r.shape, { axes: ints(r.axes), keepdims: int(keepdims ? 1 : 0) }, (gy) => [
      this.expandBack(this.mul(gy, this.scalar(1 / count)), x, r.axes, keepdims),
    ]);
  }

  /** log Σ exp(x) over the axes, computed stably by ONNX Runtime; the gradient is softmax(x). */
  reduceLogSumExp(x: Value, axes: number[], keepdims: boolean): Value {
    this.requireFloat("ReduceLogSumExp", x);
    const r = this.reducedShape(x, axes, keepdims);
    const y = this.emit("ReduceLogSumExp", [x], x.dtype, r.shape, { axes: ints(r.axes), keepdims: int(keepdims ? 1 : 0) }, (gy) => {
      const last = x.shape.length - 1;
      const yk = keepdims ? y : this.unsqueeze(y, r.axes);
      const p = r.axes.length === 1 && r.axes[0] === last ? this.softmax(x) : this.exp(this.sub(x, yk));
      const gk = keepdims ? gy : this.unsqueeze(gy, r.axes);
      return [this.mul(gk, p)];
    });
    return y;
  }

  /** Softmax over the last axis. */
  softmax(x: Value): Value {
    this.requireFloat("Softmax", x);
    const y = this.emit("Softmax", [x], x.dtype, x.shape, { axis: int(-1) }, (gy) => {
      const dot = this.reduceSum(this.mul(gy, y), [-1], true);
      return [this.mul(y, this.sub(gy, dot))];
    });
    return y;
  }

  /**
   * Attention with an additive mask: softmax(q kᵀ + mask) v. q is [..., G·T, d] with G query heads
   * per key/value head stacked as row blocks, k and v are [..., T, d], and the mask [T, T] is added
   * to each block. The backward is written out with the identity FlashAttention uses,
   * dS = P ⊙ (dP − rowsum(dO ⊙ O)): the row sums run over the head dim of the output rather than
   * over dP ⊙ P, so the T × T matrices take two passes where the generic Softmax rule takes four.
   */
  attention(q: Value, k: Value, v: Value, mask: Value, groups: number): Value {
    this.requireFloat("Attention", q, k, v, mask);
    const T = k.shape[k.shape.length - 2]!;
    const scores = this.matmul(q, this.transposeLast2(k));
    const blocks = this.reshape(scores, [...scores.shape.slice(0, -2), groups, T, T]);
    const p = this.reshape(this.softmax(this.add(blocks, mask)), [...scores.shape]);
    const out = this.emit("MatMul", [p, v], q.dtype, matmulShape(p.shape, v.shape), {}, (gy, _needs, live) => {
      if (live(mask)) throw new Error("Attention: no gradient for the mask");
      const to: [Value, Value | null][] = [];
      if (live(q) || live(k)) {
        const dp = this.matmul(gy, this.transposeLast2(v));
        const rowDot = this.reduceSum(this.mul(gy, out), [-1], true);
        const ds = this.mul(p, this.sub(dp, rowDot));
        if (live(q)) to.push([q, this.unbroadcast(this.matmul(ds, k), q)]);
        if (live(k)) to.push([k, this.unbroadcast(this.matmul(this.transposeLast2(ds), q), k)]);
      }
      if (live(v)) to.push([v, this.unbroadcast(this.matmul(this.transposeLast2(p), gy), v)]);
      return { to };
    });
    return out;
  }

  // ---- shape ops ----------------------------------------------------------------------------

  unsqueeze(x: Value, axes: number[]): Value {
    const rank = x.shape.length + axes.length;
    const norm = axes.map((a) => normAxis(a, rank)).sort((a, b) => a - b);
    const shape: Dim[] = [];
    let src = 0;
    for (let i = 0; i < rank; i++) shape.push(norm.includes(i) ? 1 : x.shape[src++]!);
    return this.emit("Unsqueeze", [x, this.int64s(norm)], x.dtype, shape, {}, (gy) => [this.reshapeLike(gy, x)]);
  }

  expandLike(x: Value, like: Value): Value {
    const shape = broadcastShapes(x.shape, like.shape);
    return this.emit("Expand", [x, this.shapeOf(like)], x.dtype, shape, {}, (gy) => [this.unbroadcast(gy, x)]);
  }

  /** Rows of `data` (axis 0) picked by integer `indices`. */
  gather(data: Value, indices: Value): Value {
    if (indices.dtype !== "int64") throw new Error("Gather: indices must be int64");
    const shape = [...indices.shape, ...data.shape.slice(1)];
    return this.emit("Gather", [data, indices], data.dtype, shape, { axis: int(0) }, (gy) => {
      if (indices.shape.length !== 1) throw new Error("Gather gradient supports 1-D indices");
      const zeros = this.zerosLike(data);
      const idx = this.unsqueeze(indices, [-1]);
      return [this.emit("ScatterND", [zeros, idx, gy], data.dtype, data.shape, { reduction: { kind: "string", value: "add" } }), null];
    });
  }

  zerosLike(x: Value): Value {
    const value: Attr = { kind: "tensor", dtype: x.dtype, dims: [1], data: [0] };
    return this.emit("ConstantOfShape", [this.shapeOf(x)], x.dtype, x.shape, { value });
  }

  /** x[..., start:end, ...] along one axis with a static size. */
  slice(x: Value, axis: number, start: number, end: number): Value {
    const a = normAxis(axis, x.shape.length);
    const size = x.shape[a];
    if (typeof size !== "number" || start < 0 || end > size || start >= end) {
      throw new Error(`slice [${start}:${end}] of axis ${axis} in ${formatShape(x.shape)}`);
    }
    const shape = [...x.shape];
    shape[a] = end - start;
    return this.emit("Slice", [x, this.int64s([start]), this.int64s([end]), this.int64s([a])], x.dtype, shape, {}, (gy) => {
      const pads = new Array<number>(2 * x.shape.length).fill(0);
      pads[a] = start;
      pads[x.shape.length + a] = size - end;
      return [this.emit("Pad", [gy, this.int64s(pads)], gy.dtype, x.shape)];
    });
  }

  concat(xs: Value[], axis: number): Value {
    const first = xs[0];
    if (!first) throw new Error("Concat of nothing");
    const a = normAxis(axis, first.shape.length);
    const sizes = xs.map((x) => x.shape[a]);
    if (!sizes.every((s): s is number => typeof s === "number")) throw new Error("Concat along a symbolic axis");
    const shape = [...first.shape];
    shape[a] = sizes.reduce((s, n) => s + n, 0);
    return this.emit("Concat", xs, first.dtype, shape, { axis: int(a) }, (gy, needs) => {
      let at = 0;
      return xs.map((_, i) => {
        const from = at;
        at += sizes[i]!;
        return needs[i] ? this.slice(gy, a, from, at) : null;
      });
    });
  }

  // ---- composite layers ---------------------------------------------------------------------

  /**
   * RMSNorm over the last axis: y = x · r · w with r = 1/√(mean(x²) + eps). Its backward is written
   * out (dx = r · (g·w − x̂ · mean(g·w·x̂)), x̂ = x·r), which takes half the passes over [.., D] that
   * differentiating the pieces one by one would.
   */
  rmsNorm(x: Value, w: Value, eps: number): Value {
    this.requireFloat("RMSNorm", x, w);
    const ms = this.reduceMean(this.mul(x, x), [-1], true);
    const r = this.reciprocal(this.sqrt(this.add(ms, this.scalar(eps))));
    const xn = this.mul(x, r);
    return this.emit("Mul", [xn, w], x.dtype, broadcastShapes(xn.shape, w.shape), {}, (gy, _needs, live) => {
      const to: [Value, Value | null][] = [];
      if (live(x)) {
        const gw = this.mul(gy, w);
        const dot = this.reduceMean(this.mul(gw, xn), [-1], true);
        to.push([x, this.mul(this.sub(gw, this.mul(xn, dot)), r)]);
      }
      if (live(w)) to.push([w, this.unbroadcast(this.mul(gy, xn), w)]);
      return { to };
    });
  }

  silu(x: Value): Value {
    return this.mul(x, this.sigmoid(x));
  }

  /**
   * SwiGLU: silu(gate) · up, with the backward written out:
   * d_up = g · silu(gate), d_gate = g · up · σ · (1 + gate · (1 − σ)).
   */
  swiglu(gate: Value, up: Value): Value {
    this.requireFloat("SwiGLU", gate, up);
    const sig = this.sigmoid(gate);
    const act = this.mul(gate, sig);
    return this.emit("Mul", [act, up], gate.dtype, broadcastShapes(act.shape, up.shape), {}, (gy, _needs, live) => {
      const to: [Value, Value | null][] = [];
      if (live(up)) to.push([up, this.unbroadcast(this.mul(gy, act), up)]);
      if (live(gate)) {
        // σ + silu·(1 − σ) = σ + silu − silu·σ
        const slope = this.add(sig, this.sub(act, this.mul(act, sig)));
        to.push([gate, this.unbroadcast(this.mul(this.mul(gy, up), slope), gate)]);
      }
      return { to };
    });
  }
}
