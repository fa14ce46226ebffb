// The graph builder, its reverse-mode differentiator and ONNX serialization.
export { Graph, type Value, type DType, type FloatType, type Node, type Attr } from "./graph.js";
export { gradients } from "./autodiff.js";
export { toOnnxModel, OPSET, type OnnxModel } from "./onnx.js";
export { matrixProducts, concreteShapes, type MatrixProduct } from "./products.js";
export type { Dim, Shape } from "./shape.js";
