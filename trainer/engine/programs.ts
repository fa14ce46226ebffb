// The ONNX programs the engine runs, assembled from decoder.ts. Every program takes frozen
// weights as graph inputs (PyTorch layout), so one copy of the weights in memory serves all
// programs and every layer; batch (B), sequence (T) and token-count (N) dims are symbolic, so a
// program is built once per engine, whatever the shapes.
//
// Two ways to run a step:
//  - "whole": one program for the model (layers + head + loss + backward). Fastest; keeps every
//    layer's activations alive at once.
//  - "layered": per-layer programs. The forward pass keeps only each layer's input; the backward
//    pass recomputes one layer's forward inside that layer's fwd+bwd program. About 1.3–1.5× the
//    compute, memory of one layer's activations.
import type { LoraTarget } from "../../adapters/index.js";
import { decoderLayer, headLogprobs, layerWeightShapes, loraDims, policyLoss, type AttentionInputs, type LayerLora, type LayerWeightKey, type LayerWeights, type LossInputs } from "./decoder.js";
import { Graph, gradients, toOnnxModel, type FloatType, type OnnxModel, type Value } from "./graph/index.js";
import type { ModelConfig } from "./model/types.js";

export interface ProgramSpec {
  config: ModelConfig;
  float: FloatType;
  /** LoRA targets, or null for a program without LoRA (scoring the base model). */
  lora: { targets: LoraTarget[]; rank: number } | null;
}

/** A serialized ONNX model with the names of the inputs it uses and its outputs. */
export type Program = OnnxModel;

function finish(g: Graph, name: string): Program {
  return toOnnxModel(g, name);
}

// ---- input names ---------------------------------------------------------------------------

/** Input name of a layer weight: `w.{key}` in a per-layer program, `L{i}.{key}` in the whole model. */
export const layerWeightInput = (key: LayerWeightKey, layer: number | null) => (layer === null ? `w.${key}` : `L${layer}.${key}`);
export const loraInput = (target: LoraTarget, part: "a" | "b", layer: number | null) =>
  layer === null ? `lora.${target}.${part}` : `L${layer}.lora.${target}.${part}`;
export const loraGradOutput = (target: LoraTarget, part: "a" | "b", layer: number | null) =>
  layer === null ? `grad.${target}.${part}` : `grad.L${layer}.${target}.${part}`;

/** alpha / rank, an input so one program serves adapters of any alpha. */
function scalingInput(g: Graph): Value {
  return g.input("lora_scaling", "float", []);
}

function attentionInputs(g: Graph, c: ModelConfig): AttentionInputs {
  return {
    cos: g.input("cos", "float", ["T", c.headDim]),
    sin: g.input("sin", "float", ["T", c.headDim]),
    mask: g.input("mask", "float", ["T", "T"]),
  };
}

function layerWeights(g: Graph, c: ModelConfig, layer: number | null): LayerWeights {
  const w: LayerWeights = {};
  for (const [key, shape] of layerWeightShapes(c)) w[key] = g.input(layerWeightInput(key, layer), "float", shape);
  return w;
}

function layerLora(g: Graph, spec: ProgramSpec, layer: number | null): { lora: LayerLora; trainable: [LoraTarget, "a" | "b", Value][] } {
  const lora: LayerLora = {};
  const trainable: [LoraTarget, "a" | "b", Value][] = [];
  if (!spec.lora) return { lora, trainable };
  const dims = loraDims(spec.config);
  for (const t of spec.lora.targets) {
    const a = g.input(loraInput(t, "a", layer), "float", [spec.lora.rank, dims[t].in]);
    const b = g.input(loraInput(t, "b", layer), "float", [dims[t].out, spec.lora.rank]);
    lora[t] = { a, b };
    trainable.push([t, "a", a], [t, "b", b]);
  }
  return { lora, trainable };
}

function headInputs(g: Graph, c: ModelConfig): { norm: Value; lm: Value; targets: Value } {
  return {
    norm: g.input("norm", "float", [c.hiddenSize]),
    lm: g.input("lm", "float", [c.vocabSize, c.hiddenSize]),
    targets: g.input("targets", "int64", ["N"]),
  };
}

function lossInputs(g: Graph, kl: boolean): LossInputs {
  const l: LossInputs = {
    advantages: g.input("advantages", "float", ["N"]),
    oldLogprobs: g.input("old_logprobs", "float", ["N"]),
    weights: g.input("weights", "float", ["N"]),
    epsLow: g.input("eps_low", "float", []),
    epsHigh: g.input("eps_high", "float", []),
  };
  if (kl) l.kl = { refLogprobs: g.input("ref_logprobs", "float", ["N"]), weights: g.input("kl_weights", "float", ["N"]) };
  return l;
}

// ---- per-layer programs --------------------------------------------------------------------

/** h [B,T,D] → h_out: one layer's forward. */
export function layerForwardProgram(spec: ProgramSpec): Program {
  const g = new Graph(spec.float);
  const c = spec.config;
  const h = g.input("h", "float", ["B", "T", c.hiddenSize]);
  const at = attentionInputs(g, c);
  const { lora } = layerLora(g, spec, null);
  const out = decoderLayer(g, c, h, at, layerWeights(g, c, null), lora, scalingInput(g));
  g.output(out, "h_out");
  return finish(g, "layer_forward");
}

/** (h, dh_out) → dh_in and the layer's LoRA gradients, recomputing the layer's forward. */
export function layerTrainProgram(spec: ProgramSpec): Program {
  if (!spec.lora) throw new Error("a training program needs LoRA targets");
  const g = new Graph(spec.float);
  const c = spec.config;
  const h = g.input("h", "float", ["B", "T", c.hiddenSize]);
  const at = attentionInputs(g, c);
  const { lora, trainable } = layerLora(g, spec, null);
  const out = decoderLayer(g, c, h, at, layerWeights(g, c, null), lora, scalingInput(g));
  const dOut = g.input("dh", "float", ["B", "T", c.hiddenSize]);
  const grads = gradients(g, [[out, dOut]], [h, ...trainable.map((t) => t[2])]);
  g.output(grads[0]!, "dh_in");
  trainable.forEach(([t, part], i) => g.output(grads[i + 1]!, loraGradOutput(t, part, null)));
  return finish(g, "layer_train");
}

/** x [N,D] (last layer's output at the predicting positions) → log-probs of the targets. */
export function headScoreProgram(spec: ProgramSpec): Program {
  const g = new Graph(spec.float);
  const c = spec.config;
  const x = g.input("x", "float", ["N", c.hiddenSize]);
  const { norm, lm, targets } = headInputs(g, c);
  g.output(headLogprobs(g, c, x, norm, lm, targets), "logprobs");
  return finish(g, "head_score");
}

/** x → log-probs, the loss and its gradient with respect to x. */
export function headTrainProgram(spec: ProgramSpec, kl: boolean): Program {
  const g = new Graph(spec.float);
  const c = spec.config;
  const x = g.input("x", "float", ["N", c.hiddenSize]);
  const { norm, lm, targets } = headInputs(g, c);
  const lp = headLogprobs(g, c, x, norm, lm, targets);
  const loss = policyLoss(g, lp, lossInputs(g, kl));
  const [dx] = gradients(g, [[loss, g.scalar(1)]], [x]);
  g.output(lp, "logprobs");
  g.output(loss, "loss");
  g.output(dx!, "dx");
  return finish(g, "head_train");
}

// ---- whole-model programs ------------------------------------------------------------------

type TrainableLora = { layer: number; target: LoraTarget; part: "a" | "b"; value: Value }[];

/** Embeddings h0 [B,T,D] through every layer; returns the rows [N] of the flattened [B·T] output. */
function trunk(g: Graph, spec: ProgramSpec, scaling: Value): { x: Value; trainable: TrainableLora } {
  const c = spec.config;
  let h = g.input("h0", "float", ["B", "T", c.hiddenSize]);
  const at = attentionInputs(g, c);
  const trainable: TrainableLora = [];
  for (let layer = 0; layer < c.numLayers; layer++) {
    const { lora, trainable: t } = layerLora(g, spec, layer);
    for (const [target, part, value] of t) trainable.push({ layer, target, part, value });
    h = decoderLayer(g, c, h, at, layerWeights(g, c, layer), lora, scaling);
  }
  const rows = g.input("rows", "int64", ["N"]);
  return { x: g.gather(g.reshape(h, ["BT", c.hiddenSize]), rows), trainable };
}

/** h0 → the last layer's output at the N predicting positions (the head runs separately, in chunks). */
export function trunkProgram(spec: ProgramSpec): Program {
  const g = new Graph(spec.float);
  g.output(trunk(g, spec, scalingInput(g)).x, "x");
  return finish(g, "trunk");
}

/** The whole training step in one program: forward, loss, and every LoRA gradient. */
export function wholeTrainProgram(spec: ProgramSpec, kl: boolean): Program {
  if (!spec.lora) throw new Error("a training program needs LoRA targets");
  const g = new Graph(spec.float);
  const { x, trainable } = trunk(g, spec, scalingInput(g));
  const { norm, lm, targets } = headInputs(g, spec.config);
  const lp = headLogprobs(g, spec.config, x, norm, lm, targets);
  const loss = policyLoss(g, lp, lossInputs(g, kl));
  const grads = gradients(g, [[loss, g.scalar(1)]], trainable.map((t) => t.value));
  g.output(lp, "logprobs");
  g.output(loss, "loss");
  trainable.forEach((t, i) => g.output(grads[i]!, loraGradOutput(t.target, t.part, t.layer)));
  return finish(g, "model_train");
}
