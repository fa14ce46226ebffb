// matrixProducts on small hand-built graphs whose products are known: symbols sized from the
// inputs and inferred at a Reshape, broadcast batch dims, constant operands, pruned nodes.
import { describe, expect, it } from "vitest";
import { Graph, matrixProducts } from "./index.js";

describe("matrixProducts", () => {
  it("sizes each live MatMul as 2·batch·M·N·K, with symbols from the inputs and from a Reshape", () => {
    const g = new Graph("float32");
    const x = g.input("x", "float", ["B", "T", 6]);
    const w = g.input("w", "float", [10, 6]);
    const y = g.linear(x, w); // [B, T, 10] = [B, T, 6] · [6, 10]
    const rows = g.reshape(y, ["rows", 10]); // rows = B·T, inferred here
    const gram = g.matmul(g.transpose(rows, [1, 0]), rows); // [10, 10] over K = B·T
    const heads = g.reshape(y, ["B", "T", 2, 5]);
    const batched = g.matmul(g.transpose(heads, [0, 2, 1, 3]), g.input("m", "float", [1, 5, 7])); // [B, 2, T, 7]
    const rot = g.matmul(batched, g.constant(Array.from({ length: 49 }, (_, i) => (i % 8 === 0 ? 1 : 0)), [7, 7]));
    g.matmul(rows, w); // built but feeds no output: not serialized, not counted
    g.output(gram, "gram");
    g.output(rot, "rot");

    const ps = matrixProducts(g, { B: 3, T: 4 });
    expect(ps.map((p) => [p.batch, p.m, p.n, p.k, p.constantOperand])).toEqual([
      [3, 4, 10, 6, false],
      [1, 10, 10, 12, false],
      [6, 4, 7, 5, false],
      [6, 4, 7, 7, true],
    ]);
    expect(ps.map((p) => p.flops)).toEqual([2 * 3 * 4 * 10 * 6, 2 * 10 * 10 * 12, 2 * 6 * 4 * 7 * 5, 2 * 6 * 4 * 7 * 7]);
    expect(ps.every((p, i) => i === 0 || p.index > ps[i - 1]!.index)).toBe(true);
  });

  it("refuses a symbol it cannot size, or one that takes two sizes", () => {
    const g = new Graph("float32");
    const x = g.input("x", "float", ["B", 4]);
    g.output(g.matmul(x, g.input("w", "float", [4, 2])), "y");
    expect(() => matrixProducts(g, {})).toThrow(/no size for symbol "B"/);

    const h = new Graph("float32");
    const a = h.input("a", "float", ["B", 6]);
    const r = h.reshape(a, ["R", 3]); // R = 2B
    h.output(h.matmul(r, h.input("b", "float", [3, "R"])), "y");
    expect(matrixProducts(h, { B: 2, R: 4 }).map((p) => p.flops)).toEqual([2 * 4 * 4 * 3]);
    expect(() => matrixProducts(h, { B: 2, R: 5 })).toThrow(/12 elements into \[R, 3\]/);
  });
});
