// The train loop's real parts: the model loader, the ONNX Runtime engine with AdamW, and the PEFT
// and GGUF LoRA formats. Loaded lazily (ONNX Runtime is heavy), so bookkeeping code and tests
// that bring their own backend never pay for it.
import path from "node:path";
import { createLoraAdapter, readPeftAdapter, writeGgufLora, writePeftAdapter, type LoraAdapter } from "../adapters/index.js";
import { AdamW, Engine, identifyModel, loadModel, loraDims } from "./engine/index.js";
import type { ModelIdentity } from "./engine/model/types.js";
import type { LoraShape, TrainBackend } from "./backend.js";

export const GGUF_ADAPTER_FILE = "adapter.gguf";

function checkFits(adapter: LoraAdapter, model: ModelIdentity, where: string): void {
  const c = model.config;
  if (adapter.config.numLayers !== c.numLayers) {
    throw new Error(`${where}: the adapter has ${adapter.config.numLayers} layers, ${model.name} has ${c.numLayers}`);
  }
  const dims = loraDims(c);
  for (const t of adapter.config.targets) {
    const d = adapter.config.dims[t];
    if (!d || d.in !== dims[t].in || d.out !== dims[t].out) {
      throw new Error(`${where}: the adapter's ${t} projection is ${d?.in}→${d?.out}, ${model.name}'s is ${dims[t].in}→${dims[t].out}`);
    }
  }
}

export const realBackend: TrainBackend = {
  identify: identifyModel,
  loadModel,

  async createEngine(model, lora, train, logger) {
    return Engine.create({
      model,
      lora,
      executionProvider: train.executionProvider,
      maxTokens: train.maxTokens,
      ...(train.threads ? { threads: train.threads } : {}),
      onFallback: (message) => logger?.warn(message),
    });
  },

  createOptimizer(train) {
    return new AdamW({ lr: train.lr, weightDecay: train.weightDecay, maxGradNorm: train.maxGradNorm });
  },

  newAdapter(model: ModelIdentity, shape: LoraShape, seed: number): LoraAdapter {
    const dims = loraDims(model.config);
    return createLoraAdapter(
      {
        ...shape,
        targets: [...shape.targets],
        numLayers: model.config.numLayers,
        dims: Object.fromEntries(shape.targets.map((t) => [t, dims[t]])),
        baseModel: model.name,
      },
      seed,
    );
  },

  async readAdapter(dir, model) {
    const adapter = readPeftAdapter(dir);
    checkFits(adapter, model, dir);
    return adapter;
  },

  async writeAdapter(dir, adapter, model, opts) {
    // fp32, the trainer's master copy: a restart continues from exactly these values.
    writePeftAdapter(dir, adapter);
    if (opts.gguf) {
      const c = model.config;
      // f16 as llama.cpp's converter writes by default: half the size, well within its precision.
      writeGgufLora(path.join(dir, GGUF_ADAPTER_FILE), adapter, { architecture: c.architecture, numHeads: c.numHeads, numKvHeads: c.numKvHeads }, { dtype: "F16", name: `clawloop-${model.name}` });
    }
  },
};
