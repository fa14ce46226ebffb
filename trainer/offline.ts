// Offline training: samples from a JSONL file (see jsonl.ts) into one PEFT adapter folder, with
// the same sample building, advantages and step as the continuous loop.
import fs from "node:fs";
import path from "node:path";
import { createLogger, type AdapterManifest, type Config, type Logger, type Sample } from "../core/index.js";
import { modelSourceOf, wantsGguf, type TrainBackend } from "./backend.js";
import { parseSampleLines, type LineError } from "./jsonl.js";
import { defaultBackend, peftModuleNames, stepSettings } from "./loop.js";
import { makeProbe, PROBE_FILE } from "./probe.js";
import { buildSample, type SkipReason } from "./samples.js";
import { trainOnBatch, type StepOutcome } from "./step.js";
import { readManifest, writeAdapterDir } from "./versions.js";

export interface OfflineOptions {
  samplesFile: string;
  outDir: string;
  /** Overrides train.model / serve.model. */
  model?: string | null;
  /** Continue from this adapter folder instead of a fresh adapter. */
  from?: string | null;
  /** Optimizer steps; default: every usable sample `train.epochs` times, in batches of train.batchSize. */
  steps?: number | null;
  /** Replace a non-empty `outDir`. */
  force?: boolean;
  backend?: TrainBackend;
  logger?: Logger;
  onStep?: (index: number, outcome: StepOutcome) => void;
}

export interface OfflineResult {
  outDir: string;
  manifest: AdapterManifest;
  samples: number;
  lineErrors: LineError[];
  skipped: { line: number; id: string; reason: SkipReason; detail: string }[];
  steps: StepOutcome[];
}

/** The batches of an offline run: consecutive windows over the samples, wrapping around. */
export function offlineBatches<T>(samples: T[], batchSize: number, steps: number | null, epochs: number): T[][] {
  if (!samples.length) return [];
  const B = Math.min(batchSize, samples.length);
  if (steps === null) {
    const all = Array.from({ length: epochs }, () => samples).flat();
    const out: T[][] = [];
    for (let i = 0; i < all.length; i += B) out.push(all.slice(i, i + B));
    return out;
  }
  return Array.from({ length: steps }, (_, k) => Array.from({ length: B }, (_, j) => samples[(k * B + j) % samples.length]!));
}

export async function trainOffline(config: Config, opts: OfflineOptions): Promise<OfflineResult> {
  const logger = opts.logger ?? createLogger("train", config.logLevel);
  const t = config.train;
  if (opts.steps !== undefined && opts.steps !== null && (!Number.isInteger(opts.steps) || opts.steps < 1)) {
    throw new Error(`--steps must be a positive integer, got ${opts.steps}`);
  }
  const outDir = path.resolve(opts.outDir);
  checkOutDir(outDir, opts.force ?? false);

  let text: string;
  try {
    text = fs.readFileSync(opts.samplesFile, "utf8");
  } catch (err) {
    throw new Error(`cannot read samples file ${opts.samplesFile}: ${(err as Error).message}`);
  }
  const { exchanges, errors: lineErrors } = parseSampleLines(text);
  for (const e of lineErrors) logger.warn({ line: e.line }, `samples line ${e.line}: ${e.message}`);

  const backend = opts.backend ?? (await defaultBackend());
  const model = await backend.loadModel(modelSourceOf(config, opts.model));
  try {
    const skipped: OfflineResult["skipped"] = [];
    const samples: Sample[] = [];
    for (const ex of exchanges) {
      const r = buildSample(ex, { mode: t.mode, tokenizer: model.tokenizer, maxTokens: t.maxTokens, vocabSize: model.weights.config.vocabSize });
      if ("sample" in r) samples.push(r.sample);
      else {
        skipped.push({ line: ex.line, id: ex.id, reason: r.skip, detail: r.detail });
        logger.warn({ line: ex.line, reason: r.skip }, `samples line ${ex.line} skipped: ${r.detail}`);
      }
    }
    if (!samples.length) {
      throw new Error(
        `no usable samples in ${opts.samplesFile} for mode ${t.mode} (${lineErrors.length} bad lines, ${skipped.length} skipped)`,
      );
    }

    let parent: AdapterManifest | null = null;
    let adapter;
    if (opts.from) {
      parent = readManifest(opts.from);
      if (parent && parent.baseModelHash !== model.hash) {
        throw new Error(`${opts.from} was trained on ${parent.baseModel} (hash ${parent.baseModelHash}), not on ${model.name} (hash ${model.hash})`);
      }
      adapter = await backend.readAdapter(opts.from, model);
    } else {
      adapter = backend.newAdapter(model, { rank: t.rank, alpha: t.alpha, targets: [...t.targets] }, t.seed);
    }
    const shape = { rank: adapter.config.rank, alpha: adapter.config.alpha, targets: [...adapter.config.targets] };
    const engine = await backend.createEngine(model, shape, t, logger);
    try {
      const optimizer = backend.createOptimizer(t);
      const settings = stepSettings(config);
      const batches = offlineBatches(samples, t.batchSize, opts.steps ?? null, t.epochs);
      const outcomes: StepOutcome[] = [];
      for (const [k, batch] of batches.entries()) {
        const outcome = await trainOnBatch(engine, optimizer, adapter, batch, settings);
        outcomes.push(outcome);
        logger.info({ step: k + 1, of: batches.length, loss: outcome.loss, meanReward: outcome.meanReward, gradNorm: outcome.gradNorm }, "offline step");
        opts.onStep?.(k, outcome);
      }
      const used = [...new Set(batches.flat().map((s) => s.id))];
      const { probe } = await makeProbe(engine, adapter, batches.at(-1)!);
      const gguf = wantsGguf(t.gguf, model.source);
      // Only now, with the new adapter in hand, does a --force replace what was there: moved
      // aside first, put back if the write fails.
      const aside = checkOutDir(outDir, opts.force ?? false) ? `${outDir}.replaced-${process.pid}` : null;
      if (aside) fs.renameSync(outDir, aside);
      const manifest = await writeAdapterDir(
        outDir,
        { version: batches.length, name: path.basename(outDir) },
        {
          parent: parent?.name ?? (opts.from ? path.basename(path.resolve(opts.from)) : null),
          baseModel: model.name,
          baseModelHash: model.hash,
          step: (parent?.step ?? 0) + batches.length,
          sampleCount: used.length,
          sampleIds: used,
          rank: shape.rank,
          alpha: shape.alpha,
          targetModules: peftModuleNames(shape),
        },
        async (tmp) => {
          await backend.writeAdapter(tmp, adapter, model, { gguf });
          fs.writeFileSync(path.join(tmp, PROBE_FILE), JSON.stringify(probe) + "\n");
        },
      ).catch((err: unknown) => {
        if (aside) fs.renameSync(aside, outDir);
        throw err;
      });
      if (aside) fs.rmSync(aside, { recursive: true, force: true });
      return { outDir, manifest, samples: samples.length, lineErrors, skipped, steps: outcomes };
    } finally {
      await engine.close?.();
    }
  } finally {
    model.close();
  }
}

/** An absent or empty `outDir` is fine; a non-empty one needs `force`. Returns whether it exists. */
function checkOutDir(outDir: string, force: boolean): boolean {
  let entries: string[];
  try {
    entries = fs.readdirSync(outDir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return false;
    if (code === "ENOTDIR") throw new Error(`--out ${outDir} is a file, not a directory`);
    throw err;
  }
  if (entries.length && !force) throw new Error(`--out ${outDir} is not empty; pass --force to replace it`);
  return true;
}
