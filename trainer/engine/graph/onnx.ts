// Serializes a Graph to an ONNX ModelProto with onnx-proto.
import onnxProto, { type onnx as OnnxTypes } from "onnx-proto";
import type { Attr, DType, Graph, Node, Value } from "./graph.js";

const { onnx } = onnxProto;

/** Opset 17: ReduceSum takes axes as an input, the other reductions as an attribute. */
export const OPSET = 17;

const ELEM_TYPE: Record<DType, number> = {
  float32: onnx.TensorProto.DataType.FLOAT,
  float64: onnx.TensorProto.DataType.DOUBLE,
  int64: onnx.TensorProto.DataType.INT64,
  bool: onnx.TensorProto.DataType.BOOL,
};

function bytesOf(data: ArrayBufferView): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

function valueInfo(v: Value, name = v.name): OnnxTypes.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType: ELEM_TYPE[v.dtype],
        shape: { dim: v.shape.map((d) => (typeof d === "number" ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

function tensorAttr(a: Extract<Attr, { kind: "tensor" }>): OnnxTypes.ITensorProto {
  let raw: ArrayBufferView;
  if (a.dtype === "float32") raw = Float32Array.from(a.data);
  else if (a.dtype === "float64") raw = Float64Array.from(a.data);
  else if (a.dtype === "int64") raw = BigInt64Array.from(a.data.map((x) => BigInt(x)));
  else raw = Uint8Array.from(a.data);
  return { dims: a.dims, dataType: ELEM_TYPE[a.dtype], rawData: bytesOf(raw) };
}

function attribute(name: string, a: Attr): OnnxTypes.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  switch (a.kind) {
    case "int":
      return { name, type: T.INT, i: a.value };
    case "ints":
      return { name, type: T.INTS, ints: a.value };
    case "float":
      return { name, type: T.FLOAT, f: a.value };
    case "string":
      return { name, type: T.STRING, s: new TextEncoder().encode(a.value) };
    case "tensor":
      return { name, type: T.TENSOR, t: tensorAttr(a) };
  }
}

/** Nodes and constants that some output depends on, in build (topological) order: what gets serialized. */
export function reachable(g: Graph): { nodes: Node[]; constants: Graph["constants"]; inputs: Value[] } {
  const needed = new Set<number>(g.outputs.map((o) => o.value.id));
  const keep: Node[] = [];
  for (let i = g.nodes.length - 1; i >= 0; i--) {
    const n = g.nodes[i]!;
    if (!n.outputs.some((o) => needed.has(o.id))) continue;
    keep.push(n);
    for (const v of n.inputs) needed.add(v.id);
  }
  return {
    nodes: keep.reverse(),
    constants: g.constants.filter((c) => needed.has(c.value.id)),
    inputs: g.inputs.filter((v) => needed.has(v.id)),
  };
}

export interface OnnxModel {
  bytes: Uint8Array;
  /** Inputs some output depends on (unused ones are left out of the model). */
  inputs: string[];
  outputs: string[];
}

export function toOnnxModel(g: Graph, name = "clawloop"): OnnxModel {
  if (g.outputs.length === 0) throw new Error("graph has no outputs");
  const live = reachable(g);
  const graph: OnnxTypes.IGraphProto = {
    name,
    input: live.inputs.map((v) => valueInfo(v)),
    output: g.outputs.map((o) => valueInfo(o.value, o.name)),
    initializer: live.constants.map((c) => ({
      name: c.value.name,
      dims: c.value.shape as number[],
      dataType: ELEM_TYPE[c.value.dtype],
      rawData: bytesOf(c.data),
    })),
    node: live.nodes.map((n, i) => ({
      name: `${n.op}_${i}`,
      opType: n.op,
      domain: n.domain,
      input: n.inputs.map((v) => v.name),
      output: n.outputs.map((v) => v.name),
      attribute: Object.entries(n.attrs).map(([k, a]) => attribute(k, a)),
    })),
  };
  const bytes = onnx.ModelProto.encode({
    irVersion: 8,
    producerName: "clawloop",
    opsetImport: [{ domain: "", version: OPSET }],
    graph,
  }).finish();
  return { bytes, inputs: live.inputs.map((v) => v.name), outputs: g.outputs.map((o) => o.name) };
}
