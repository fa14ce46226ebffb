// Reverse-mode differentiation over a built Graph. Backward nodes are emitted only for values
// that both depend on a trainable input and feed a seeded output, so frozen weights never get a
// gradient and nothing upstream of the first trainable input is differentiated.
import type { Graph, Node, Value } from "./graph.js";

/**
 * Gradients of Σ ⟨seed value, seed gradient⟩ with respect to each of `wrt`, emitted into `g`.
 * A seed is (output, its gradient): (loss, 1) for a loss, (h, dh) for a segment of a network.
 * Inputs that no seed depends on get zeros.
 */
export function gradients(g: Graph, seeds: ReadonlyArray<readonly [Value, Value]>, wrt: readonly Value[]): Value[] {
  const forward: readonly Node[] = g.nodes.slice();

  // Values that depend on some trainable input.
  const live = new Set<number>(wrt.map((v) => v.id));
  for (const node of forward) {
    if (node.inputs.some((v) => live.has(v.id))) for (const o of node.outputs) live.add(o.id);
  }

  const pending = new Map<number, Value[]>();
  const accumulate = (v: Value, grad: Value) => {
    if (grad.dtype !== v.dtype) throw new Error(`gradient of ${v.name} has dtype ${grad.dtype}, expected ${v.dtype}`);
    const list = pending.get(v.id);
    if (list) list.push(grad);
    else pending.set(v.id, [grad]);
  };
  const total = (v: Value): Value | null => {
    const list = pending.get(v.id);
    if (!list || list.length === 0) return null;
    let sum = list[0]!;
    for (let i = 1; i < list.length; i++) sum = g.add(sum, list[i]!);
    pending.set(v.id, [sum]);
    return sum;
  };

  for (const [value, grad] of seeds) accumulate(value, grad);

  for (let i = forward.length - 1; i >= 0; i--) {
    const node = forward[i]!;
    if (node.outputs.length !== 1) continue;
    const out = node.outputs[0]!;
    if (!live.has(out.id)) continue;
    const gy = total(out);
    if (!gy) continue;
    if (!node.grad) throw new Error(`no gradient rule for ${node.op} (on the path to ${out.name})`);
    const needs = node.inputs.map((v) => live.has(v.id));
    const grads = node.grad(gy, needs, (v) => live.has(v.id));
    if ("to" in grads) {
      // A composite: gradients go straight to the values it was built from, so the nodes inside
      // it are never differentiated one by one.
      for (const [value, gi] of grads.to) if (gi && live.has(value.id)) accumulate(value, gi);
      continue;
    }
    node.inputs.forEach((input, k) => {
      const gi = grads[k];
      if (needs[k] && gi) accumulate(input, gi);
    });
  }

  return wrt.map((v) => total(v) ?? g.zerosLike(v));
}
