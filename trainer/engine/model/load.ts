// loadModel: a GGUF file or a Hugging Face folder → LoadedModel (config, weights in HF layout,
// tokenizer + chat template, name, content hash). identifyModel: the same without the weights
// (headers, tokenizer and hash only), for checking adapters against a model before it is needed.
import fs from "node:fs";
import path from "node:path";
import { readGguf, readSafetensorsFolder, type GgufFile, type SafetensorsEntry } from "../../../adapters/index.js";
import { ggufModelConfig, parseHfConfig } from "./config.js";
import { hashWeightFiles } from "./hash.js";
import { tokenizerFromFolder, tokenizerFromGguf } from "./tokenizer.js";
import type { LoadedModel, ModelIdentity } from "./types.js";
import { GgufWeights, SafetensorsWeights } from "./weights.js";

export async function loadModel(source: string): Promise<LoadedModel> {
  const opened = open(source);
  const { config } = opened.identity;
  const weights = opened.kind === "gguf" ? new GgufWeights(opened.gguf, config) : new SafetensorsWeights(opened.tensors, config);
  return { ...opened.identity, weights, close: () => weights.release() };
}

/** Name, hash, config and tokenizer of a base model, read from its headers: no weight is read. */
export async function identifyModel(source: string): Promise<ModelIdentity> {
  return open(source).identity;
}

type Opened = { identity: ModelIdentity } & ({ kind: "gguf"; gguf: GgufFile } | { kind: "folder"; tensors: Map<string, SafetensorsEntry> });

function open(source: string): Opened {
  const abs = path.resolve(source);
  let stat: fs.Stats;
  try {
    stat = fs.statSync(abs);
  } catch {
    throw new Error(`model not found: ${abs}`);
  }
  if (stat.isDirectory()) return openFolder(abs);
  return openGgufFile(abs);
}

function openGgufFile(file: string): Opened {
  const g = readGguf(file);
  const type = g.metadata.get("general.type");
  if (type === "adapter") throw new Error(`${file} is a LoRA adapter, not a base model`);
  const config = ggufModelConfig(g);
  const tokenizer = tokenizerFromGguf(g);
  return {
    kind: "gguf",
    gguf: g,
    identity: {
      source: file,
      name: path.basename(file).replace(/\.gguf$/i, ""),
      hash: hashWeightFiles([{ file, headerBytes: g.dataStart }]),
      config,
      tokenizer,
    },
  };
}

function openFolder(dir: string): Opened {
  const cfgFile = path.join(dir, "config.json");
  if (!fs.existsSync(cfgFile)) throw new Error(`${dir}: no config.json (not a Hugging Face model folder)`);
  let cfg: Record<string, unknown>;
  try {
    cfg = JSON.parse(fs.readFileSync(cfgFile, "utf8"));
  } catch (e) {
    throw new Error(`${cfgFile}: not valid JSON (${(e as Error).message})`);
  }
  const index = readSafetensorsFolder(dir);
  const config = parseHfConfig(cfg, index.tensors.has("lm_head.weight"));
  for (const required of ["model.embed_tokens.weight", "model.norm.weight", "model.layers.0.self_attn.q_proj.weight"])
    if (!index.tensors.has(required)) throw new Error(`${dir}: the checkpoint has no "${required}"`);
  const tokenizer = tokenizerFromFolder(dir);
  const files = index.files.map((file) => {
    const len = Buffer.alloc(8);
    const fd = fs.openSync(file, "r");
    fs.readSync(fd, len, 0, 8, 0);
    fs.closeSync(fd);
    return { file, headerBytes: 8 + Number(len.readBigUInt64LE(0)) };
  });
  return {
    kind: "folder",
    tensors: index.tensors,
    identity: {
      source: dir,
      name: typeof cfg._name_or_path === "string" && cfg._name_or_path ? path.basename(cfg._name_or_path) : path.basename(dir),
      hash: hashWeightFiles(files),
      config,
      tokenizer,
    },
  };
}
