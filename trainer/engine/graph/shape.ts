// Static shape bookkeeping for the graph builder. A dimension is a number or a named symbol
// ("B", "T", "N") that stays symbolic in the ONNX graph, so one session serves every batch size
// and sequence length. Symbols compare by name: two "T"s are the same size.

export type Dim = number | string;
export type Shape = readonly Dim[];

export function formatShape(s: Shape): string {
  return `[${s.join(", ")}]`;
}

/** Numpy-style broadcasting; symbolic dims must match exactly (or meet a 1). */
export function broadcastShapes(a: Shape, b: Shape): Dim[] {
  const rank = Math.max(a.length, b.length);
  const out: Dim[] = [];
  for (let i = 0; i < rank; i++) {
    const da = a[a.length - rank + i] ?? 1;
    const db = b[b.length - rank + i] ?? 1;
    if (da === db || db === 1) out.push(da);
    else if (da === 1) out.push(db);
    else throw new Error(`cannot broadcast ${formatShape(a)} with ${formatShape(b)}`);
  }
  return out;
}

/** Shape of ONNX MatMul (numpy matmul semantics, ranks ≥ 2). */
export function matmulShape(a: Shape, b: Shape): Dim[] {
  if (a.length < 2 || b.length < 2) throw new Error(`MatMul needs rank ≥ 2, got ${formatShape(a)} @ ${formatShape(b)}`);
  const k1 = a[a.length - 1]!;
  const k2 = b[b.length - 2]!;
  if (k1 !== k2) throw new Error(`MatMul inner dims differ: ${formatShape(a)} @ ${formatShape(b)}`);
  const batch = broadcastShapes(a.slice(0, -2), b.slice(0, -2));
  return [...batch, a[a.length - 2]!, b[b.length - 1]!];
}

export function normAxis(axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) throw new Error(`axis ${axis} out of range for rank ${rank}`);
  return a;
}

/** Product of dims, or null when any is symbolic. */
export function staticSize(dims: Shape): number | null {
  let n = 1;
  for (const d of dims) {
    if (typeof d !== "number") return null;
    n *= d;
  }
  return n;
}

/**
 * The `shape` operand of ONNX Reshape for a target shape: numbers as they are, a symbol that sits
 * at the same position in the input as 0 ("copy"), and at most one other symbol as -1 ("infer").
 */
export function reshapeSpec(from: Shape, to: Shape): number[] {
  let inferred = false;
  return to.map((d, i) => {
    if (typeof d === "number") return d;
    if (from[i] === d) return 0;
    if (inferred) throw new Error(`reshape ${formatShape(from)} → ${formatShape(to)} needs more than one inferred dim`);
    inferred = true;
    return -1;
  });
}
