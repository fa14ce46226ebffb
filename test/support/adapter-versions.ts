// Writes adapter version directories through the trainer's own writer (trainer/versions.ts: files,
// manifest with sha256 of each, optional probe.json, written under a temporary name and renamed into
// place), for tests of the drivers and the hot-load switchboard.
import fs from "node:fs";
import path from "node:path";
import { createLoraAdapter, writeGgufLora, writePeftAdapter, type LoraAdapter } from "../../adapters/index.js";
import { versionName, writeAdapterDirSync, type ManifestFields } from "../../trainer/versions.js";

export { versionName };

export interface GgufBase {
  architecture: string;
  numHeads: number;
  numKvHeads: number;
}

export interface VersionSpec {
  /** The adapter (default: a tiny one-layer q-only adapter, enough for scripted servers). */
  adapter?: LoraAdapter;
  /** Write `adapter.gguf` for this base (llama.cpp-based servers). */
  gguf?: GgufBase;
  /** Write this adapter into adapter.gguf instead of `adapter` (a broken conversion). */
  ggufAdapter?: LoraAdapter;
  probe?: { promptIds: number[]; responseIds: number[]; base: number[]; version: number[] } | null;
  parent?: string | null;
  step?: number;
  /** Change a file after the manifest was written (a corrupted copy). */
  corrupt?: string;
}

export function tinyAdapter(seed = 1, bScale = 0.01): LoraAdapter {
  const adapter = createLoraAdapter({ rank: 4, alpha: 8, targets: ["q"], numLayers: 1, dims: { q: { in: 8, out: 8 } }, baseModel: "scripted-model" }, seed);
  for (const b of adapter.b.values()) for (let i = 0; i < b.length; i++) b[i] = bScale * Math.sin(seed + i);
  return adapter;
}

export function writeVersion(adaptersDir: string, n: number, spec: VersionSpec = {}): string {
  const name = versionName(n);
  const target = path.join(adaptersDir, name);
  const adapter = spec.adapter ?? tinyAdapter(n);
  const c = adapter.config;
  const fields: ManifestFields = {
    parent: spec.parent === undefined ? (n > 1 ? versionName(n - 1) : null) : spec.parent,
    baseModel: c.baseModel,
    baseModelHash: "test",
    step: spec.step ?? n,
    sampleCount: 1,
    sampleIds: [`sample-${n}`],
    rank: c.rank,
    alpha: c.alpha,
    targetModules: c.targets.map((t) => `${t}_proj`),
  };
  let tmp = "";
  // The product's writer (trainer/versions.ts): the same files, manifest, hashes and rename as the trainer's.
  writeAdapterDirSync(
    target,
    { version: n, name },
    fields,
    (dir) => {
      tmp = dir;
      writePeftAdapter(dir, adapter);
      if (spec.gguf) writeGgufLora(path.join(dir, "adapter.gguf"), spec.ggufAdapter ?? adapter, spec.gguf, { dtype: "F16" });
      if (spec.probe) fs.writeFileSync(path.join(dir, "probe.json"), JSON.stringify({ format: 1, ...spec.probe, source: "test" }));
    },
    // A deliberately broken copy, which the trainer never writes: one byte of a file flipped after
    // its hash went into the manifest, before the rename.
    spec.corrupt ? () => flipByte(path.join(tmp, spec.corrupt!)) : undefined,
  );
  return target;
}

function flipByte(file: string): void {
  const bytes = fs.readFileSync(file);
  bytes[bytes.length - 5] = bytes[bytes.length - 5]! ^ 0xff;
  fs.writeFileSync(file, bytes);
}
