// loadModel: a GGUF file or a Hugging Face folder → LoadedModel (config, weights in HF layout,
// tokenizer + chat template, name, content hash).
import fs from "node:fs";
import path from "node:path";
import { readGguf, readSafetensorsFolder } from "../../../adapters/index.js";
import { ggufModelConfig, parseHfConfig } from "./config.js";
import { hashWeightFiles } from "./hash.js";
import { tokenizerFromFolder, tokenizerFromGguf } from "./tokenizer.js";
import type { LoadedModel } from "./types.js";
import { GgufWeights, SafetensorsWeights } from "./weights.js";

export async function loadModel(source: string): Promise<LoadedModel> {
  const abs = path.resolve(source);
  let stat: fs.Stats;
  try {
    stat = fs.statSync(abs);
  } catch {
    throw new Error(`model not found: ${abs}`);
  }
  if (stat.isDirectory()) return loadFolder(abs);
  return loadGgufFile(abs);
}

function loadGgufFile(file: string): LoadedModel {
  const g = readGguf(file);
  const type = g.metadata.get("general.type");
  if (type === "adapter") throw new Error(`${file} is a LoRA adapter, not a base model`);
  const config = ggufModelConfig(g);
  const weights = new GgufWeights(g, config);
  const tokenizer = tokenizerFromGguf(g);
  return {
    source: file,
    name: path.basename(file).replace(/\.gguf$/i, ""),
    hash: hashWeightFiles([{ file, headerBytes: g.dataStart }]),
    weights,
    tokenizer,
    close: () => weights.release(),
  };
}

function loadFolder(dir: string): LoadedModel {
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
  const weights = new SafetensorsWeights(index.tensors, config);
  const tokenizer = tokenizerFromFolder(dir);
  const files = index.files.map((file) => {
    const len = Buffer.alloc(8);
    const fd = fs.openSync(file, "r");
    fs.readSync(fd, len, 0, 8, 0);
    fs.closeSync(fd);
    return { file, headerBytes: 8 + Number(len.readBigUInt64LE(0)) };
  });
  return {
    source: dir,
    name: typeof cfg._name_or_path === "string" && cfg._name_or_path ? path.basename(cfg._name_or_path) : path.basename(dir),
    hash: hashWeightFiles(files),
    weights,
    tokenizer,
    close: () => weights.release(),
  };
}
