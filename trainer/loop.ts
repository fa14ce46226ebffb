// The continuous train loop: polls the store for judged main-line turns, steps the LoRA adapter
// on each batch, and writes every step as a new adapter version. It never talks to the serving
// path; the sidecar picks new versions up from the adapters directory.
//
// Crash safety: a step writes, in order, the optimizer state and metrics of the new version
// (outside the version directory), then the version directory (temporary name → rename), then the
// train_steps row. A restart resumes from the newest complete version and its optimizer state and
// takes "already trained on" from the manifests, so no sample is reused and none skipped.
//
// Which version a step grows (trainer/lineage.ts): the newest, unless a rollback (HEAD.json) names
// another or the sidecar's switchboard rejected it (trainer/verdicts.ts, looked at before every
// step): then the nearest version still trusted, the live one as a rule. When it rejected the last
// train.pauseAfterRejections versions in a row, training pauses itself (trainer/reject-pause.ts).
//
// Pausing (`<data>/train.paused`, core/train-pause.ts): looked at before every step; while it is
// there no step starts (the one in progress finishes), samples keep accumulating and are trained on
// after the resume. Retention (trainer/retention.ts): after each step, old versions go.
//
// Memory: at start the loop knows the base model only by its headers (name, hash, config,
// tokenizer: backend.identify), enough to check the adapters and build samples. The weights, the
// engine, and the adapter and optimizer state of the version it continues from are loaded when a
// batch is due, and let go after train.releaseAfterIdleS seconds with none (their memory handed
// back to the system); the next batch reads them again from the version on disk and its optimizer
// state, the same files a restart resumes from.
import fs from "node:fs";
import path from "node:path";
import type { LoraAdapter } from "../adapters/index.js";
import { createLogger, dataPaths, giveMemoryBackSettled, readTrainPause, Store, type Config, type Logger, type TrainStep } from "../core/index.js";
import { TARGET_MODULES, type PrunedVersion } from "../adapters/index.js";
import { modelSourceOf, wantsGguf, type LoraShape, type TrainBackend } from "./backend.js";
import { decideBatch, ReadyClock } from "./batching.js";
import type { Optimizer, TrainEngine } from "./compute.js";
import { crashPoint } from "./crash.js";
import { lineageLinks, newHead, recordObeyed, resolveTip } from "./lineage.js";
import { Retention, retainVersions } from "./retention.js";
import type { LoadedModel, ModelIdentity } from "./engine/model/types.js";
import { makeProbe, PROBE_FILE } from "./probe.js";
import { pauseOnRejections } from "./reject-pause.js";
import type { Progress } from "./progress.js";
import { StoreSampleSource, type ReadySample } from "./source.js";
import { fallbackOf, newStatus, writeStatus, type Fallback, type TrainStatus, type WeightsStatus } from "./status.js";
import { TrainerState } from "./state.js";
import { trainOnBatch, type StepSettings } from "./step.js";
import { NO_VERDICTS, readVerdictsOr, untrustedVersions, type Verdicts } from "./verdicts.js";
import { listAdapters, removeTemporaries, trainedCounts, versionName, writeAdapterDir, type AdaptersListing, type ListingReaders, type VersionEntry } from "./versions.js";

export interface TrainLoopOptions {
  /** Defaults to the real engine, model loader and adapter formats. */
  backend?: TrainBackend;
  /** Overrides train.model / serve.model. */
  model?: string | null;
  logger?: Logger;
  progress?: Progress | null;
  /** Called after each version is written. */
  onStep?: (step: TrainStep) => void;
  /** Test seam: how the adapters directory is listed (default listVersions), e.g. to count listings. */
  listVersions?: (adaptersDir: string) => VersionEntry[];
  /** Test seam: how PRUNED.jsonl is read (default readPruned), e.g. to count reads. */
  readPruned?: (adaptersDir: string) => Map<string, PrunedVersion>;
}

export interface TrainLoop {
  /** Resolves once the loop has stopped: after stop(), or with the error that ended it. */
  readonly done: Promise<void>;
  /** Finishes the step in progress (if any), writes it, and stops. */
  stop(): Promise<void>;
  status(): TrainStatus;
}

/** A sample that took part in this many failed steps is set aside until the next restart. */
const MAX_FAILURES = 3;
const TREND = 24;
const HEARTBEAT_MS = 30_000;

export function stepSettings(config: Config): StepSettings {
  const t = config.train;
  return {
    mode: t.mode,
    epsLow: t.epsLow,
    epsHigh: t.epsHigh,
    klCoef: t.klCoef,
    gapClip: t.gapClip,
    wRl: t.wRl,
    wOpd: t.wOpd,
    teacher: t.teacher,
    oldLogprobs: t.oldLogprobs,
  };
}

export function peftModuleNames(shape: LoraShape): string[] {
  return shape.targets.map((t) => TARGET_MODULES[t].split(".").pop()!);
}

export async function defaultBackend(): Promise<TrainBackend> {
  const { realBackend } = await import("./real-backend.js");
  return realBackend;
}

export async function startTrainLoop(config: Config, opts: TrainLoopOptions = {}): Promise<TrainLoop> {
  const logger = opts.logger ?? createLogger("train", config.logLevel);
  const backend = opts.backend ?? (await defaultBackend());
  const source = modelSourceOf(config, opts.model);
  const adaptersDir = dataPaths(config.dataDir, config.adapters.dir).adapters;
  const state = TrainerState.forDataDir(config.dataDir);

  // The store lock on train_steps also keeps a second trainer off this data directory.
  const store = await Store.open({ dataDir: config.dataDir, writes: ["train_steps"], logger });
  let model: ModelIdentity | null = null;
  try {
    // Headers only: the weights are loaded when the first batch is due.
    model = await backend.identify(source);
    const loop = new ContinuousTrainer(config, backend, model, store, state, adaptersDir, logger, opts);
    await loop.resume();
    loop.run();
    return loop;
  } catch (err) {
    await store.close();
    // Say why in the status file (`clawloop status`, the dashboard); this process held the lock.
    try {
      const message = (err as Error).message;
      writeStatus(config.dataDir, { ...newStatus(config.train.mode, model?.name ?? null), state: "failed", lastError: { message, at: new Date().toISOString() } });
    } catch {
      // The error itself is what matters; it is thrown below.
    }
    throw err;
  }
}

/** The weights and the engine: loaded when a batch is due, let go when idle. */
interface Held {
  model: LoadedModel;
  engine: TrainEngine | null;
  /** The LoRA shape `engine` was built for. */
  engineShape: string | null;
}

/** The adapter and optimizer state of `latest` (or a fresh adapter when there is none). */
interface Trainable {
  adapter: LoraAdapter;
  optimizer: Optimizer;
}

const shapeKey = (s: LoraShape) => `${s.rank}/${s.alpha}/${[...s.targets].sort().join()}`;

class ContinuousTrainer implements TrainLoop {
  done!: Promise<void>;
  /** The LoRA shape of a new lineage (an existing one keeps its own). */
  private readonly shape: LoraShape;
  /** The weights and engine (null: not loaded). */
  private held: Held | null = null;
  /** Exactly what `latest` and its optimizer state on disk hold, or null: read them before the next step. */
  private trainable: Trainable | null = null;
  /** When the last step ended: the idle time that lets the weights go counts from here. */
  private lastBusy = Date.now();
  /** The version the next step continues from. */
  private latest: VersionEntry | null = null;
  /** The switchboard's verdicts as last read (trainer/verdicts.ts). */
  private verdicts: Verdicts = NO_VERDICTS;
  /** The highest version number in the directory (new versions take the next one). */
  private newestVersion = 0;
  private uses = new Map<string, number>();
  private failures = new Map<string, number>();
  private quarantined = new Set<string>();
  private clock = new ReadyClock();
  private sampleSource: StoreSampleSource;
  private stopping = false;
  private wake: (() => void) | null = null;
  private current: TrainStatus;
  private readonly settings: StepSettings;
  private readonly retention: Retention;
  private readonly readers: ListingReaders;

  constructor(
    private readonly config: Config,
    private readonly backend: TrainBackend,
    private readonly model: ModelIdentity,
    private readonly store: Store,
    private readonly state: TrainerState,
    private readonly adaptersDir: string,
    private readonly logger: Logger,
    private readonly opts: TrainLoopOptions,
  ) {
    const t = config.train;
    this.readers = { listVersions: opts.listVersions, readPruned: opts.readPruned };
    this.shape = { rank: t.rank, alpha: t.alpha, targets: [...t.targets] };
    this.settings = stepSettings(config);
    this.sampleSource = new StoreSampleSource(store, { mode: t.mode, tokenizer: model.tokenizer, maxTokens: t.maxTokens, vocabSize: model.config.vocabSize });
    this.current = newStatus(t.mode, model.name);
    const a = config.adapters;
    this.retention = new Retention({
      adaptersDir,
      keep: a.keepVersions,
      graceMs: a.pruneGraceSec * 1000,
      logger,
      hooks: { beforeRename: () => crashPoint("prune-recorded"), beforeRemove: () => crashPoint("prune-renamed") },
    });
  }

  status(): TrainStatus {
    return structuredClone(this.current);
  }

  /**
   * Finds the version to continue from (the newest, or as HEAD.json and the switchboard's verdicts
   * say: trainer/lineage.ts), or none (a fresh adapter), and checks it was trained on this base
   * model. Its weights and optimizer state are read before the next step (prepare), or here for a
   * rollback. `verdicts` and `listing` (the adapters directory and its PRUNED.jsonl): as just read
   * (otherwise read here).
   */
  async resume(verdicts?: Verdicts, listed?: AdaptersListing): Promise<void> {
    fs.mkdirSync(this.adaptersDir, { recursive: true });
    const removed = removeTemporaries(this.adaptersDir);
    if (removed.length) this.logger.info({ removed }, "removed interrupted version writes");
    // Temporaries are not versions (listVersions passes them over): a listing made before is still the directory's.
    const listing = listed ?? this.listAdapters();
    const { versions } = listing;
    verdicts ??= await readVerdictsOr(this.store, this.adaptersDir, this.verdicts, this.logger, listing);
    // Versions deleted by retention still count: their samples are done, their numbers taken.
    const present = new Set(versions.map((v) => v.name));
    const pruned = new Map([...listing.pruned()].filter(([name]) => !present.has(name)));
    // Samples of versions abandoned by a rollback count as used: the rollback undid what they
    // taught on purpose, and training on them again would likely teach it again. So do those of
    // versions abandoned after a rejection: the samples may be what broke the step, and training
    // on them again could be rejected again.
    this.uses = trainedCounts([...versions.map((v) => v.manifest), ...pruned.values()]);
    this.newestVersion = [...pruned.values()].reduce((n, p) => Math.max(n, p.version), versions.at(-1)?.version ?? 0);
    const { tip, rolledBackTo, obey, problem, passedOver } = resolveTip(versions, this.adaptersDir, this.state.dir, { pruned, verdicts });
    if (problem) this.logger.warn(problem);
    if (rolledBackTo) this.logger.info({ version: rolledBackTo }, "continuing from a rolled-back version");
    let fallback: Fallback | undefined;
    if (passedOver) {
      const from = tip?.name ?? null;
      fallback = fallbackOf({ grewFrom: from, passedOver: passedOver.version, rejected: passedOver.rejected, at: new Date().toISOString() });
      const why = passedOver.rejected.map((r) => `${r.version} was rejected by the switchboard (${r.reason})`).join("; ");
      this.logger.warn(
        { passedOver: passedOver.version, rejected: passedOver.rejected, abandoned: passedOver.abandoned, continuingFrom: from },
        `not building on ${passedOver.version}: ${why}; ${from ? `continuing from ${from}` : "no version before it passed the check: starting a fresh adapter"}`,
      );
    }
    if (!tip) {
      if (obey) recordObeyed(this.state.dir, obey);
      this.trainable = null;
      this.latest = null;
      this.verdicts = verdicts;
      this.state.prune(0);
      this.publish({ state: "waiting", version: null, ...(fallback && { fallback }) });
      await this.retain();
      return;
    }
    const m = tip.manifest;
    if (m.baseModelHash !== this.model.hash) {
      throw new Error(
        `the adapters in ${this.adaptersDir} were trained on ${m.baseModel} (hash ${m.baseModelHash}), not on ` +
          `${this.model.name} (hash ${this.model.hash}); move them away or use another --data directory`,
      );
    }
    // A rollback is recorded as obeyed only once its version's files are read: read them now, not
    // when the next batch is due (otherwise they are read then, in prepare).
    const trainable = obey ? await this.readTrainable(tip) : null;
    // Only once read: a failed resume must not leave one version's weights under another's name,
    // nor a rollback marked obeyed whose version could not be read (it is tried again instead).
    if (obey) recordObeyed(this.state.dir, obey);
    this.trainable = trainable;
    this.latest = tip;
    this.verdicts = verdicts;
    // States of older versions go in retain(), which knows which of them are in use.
    this.state.prune(tip.version, Infinity);
    // The crash window between a version's rename and its train_steps row: put the row again (by id).
    const step = this.state.loadStep(tip.name);
    if (step) {
      this.store.put("train_steps", step);
      this.noteStep(step);
    }
    this.logger.info({ version: tip.name, step: m.step, trainedSamples: this.uses.size }, "resumed");
    this.publish({ state: "waiting", version: tip.name, ...(fallback && { fallback }) });
    await this.retain();
  }

  /**
   * Before each step: if the switchboard has rejected a version since the last look and that makes
   * the version this loop continues from untrusted (trainer/verdicts.ts), resumes from the nearest
   * trusted one and returns true.
   *
   * A version with no verdict yet is built on, and checked again here before the next step, rather
   * than waited for: the verdict may never come (no sidecar running, `clawloop train` alone; a
   * pinned version, while new ones wait; llama-server, which loads a version only after a restart;
   * the model server down), and the switchboard only ever checks the newest version, so the ones it
   * overtakes get none. Waiting would stall training in all of these; going on costs at most the
   * steps made on a version before its rejection is seen (abandoned then, like the rejected one).
   * `listing`: the adapters directory as read for this step.
   */
  private async followRejections(listing: AdaptersListing): Promise<boolean> {
    const verdicts = await readVerdictsOr(this.store, this.adaptersDir, this.verdicts, this.logger, listing);
    // Only a new rejection can take trust away (an acceptance only adds it).
    const news = [...verdicts.rejected.keys()].some((name) => !this.verdicts.rejected.has(name));
    if (news && this.latest) {
      const untrusted = untrustedVersions(lineageLinks(listing.versions, listing.pruned()), verdicts);
      if (untrusted.has(this.latest.name)) {
        await this.resume(verdicts, listing);
        return true;
      }
    }
    this.verdicts = verdicts;
    return false;
  }

  /** Pauses training when the switchboard rejected the last train.pauseAfterRejections versions (trainer/reject-pause.ts). */
  private pauseOnRejections(listing: AdaptersListing): boolean {
    const ctx = { dataDir: this.config.dataDir, adaptersDir: this.adaptersDir, stateDir: this.state.dir, pauseAfter: this.config.train.pauseAfterRejections, logger: this.logger };
    return pauseOnRejections(ctx, this.verdicts, listing) !== null;
  }

  /** The adapters directory and its PRUNED.jsonl, each read (at most) once for the checks of one step. */
  private listAdapters(): AdaptersListing {
    return listAdapters(this.adaptersDir, this.readers);
  }

  /** Old versions and optimizer states go (trainer/retention.ts); never throws. */
  private async retain(): Promise<void> {
    await retainVersions({ store: this.store, adaptersDir: this.adaptersDir, state: this.state, retention: this.retention, latest: this.latest, logger: this.logger });
  }

  /**
   * The model, engine, adapter and optimizer a step needs, loaded now where they are not in
   * memory. A failure lets go of whatever was loaded (the next due batch tries again).
   */
  private async prepare(): Promise<{ model: LoadedModel; engine: TrainEngine } & Trainable> {
    const started = performance.now();
    const cold = this.held === null;
    try {
      if (!this.held) {
        this.publishWeights("loading");
        const model = await this.backend.loadModel(this.model.source);
        if (model.hash !== this.model.hash) {
          model.close();
          throw new Error(
            `the base model ${this.model.source} changed since the trainer started (hash ${this.model.hash}, now ${model.hash}); ` +
              "restart the trainer to check the adapters against it",
          );
        }
        this.held = { model, engine: null, engineShape: null };
      }
      const held = this.held;
      this.trainable ??= await this.readTrainable(this.latest);
      const shape = this.trainable.adapter.config;
      if (!held.engine || held.engineShape !== shapeKey(shape)) {
        // A new lineage (after a rejection) may have another shape than the engine was built for.
        await held.engine?.close?.();
        held.engine = null;
        held.engine = await this.backend.createEngine(held.model, { rank: shape.rank, alpha: shape.alpha, targets: [...shape.targets] }, this.config.train, this.logger);
        held.engineShape = shapeKey(shape);
      }
      if (cold) {
        const weights = this.publishWeights("loaded");
        this.logger.info({ model: this.model.name, ms: Math.round(performance.now() - started), rssMb: weights.rssMb }, "base model loaded for training");
      }
      return { model: held.model, engine: held.engine, ...this.trainable };
    } catch (err) {
      await this.release("the load failed");
      throw err;
    }
  }

  /** The adapter and optimizer moments of version `tip` from disk (what a restart resumes from), or a fresh adapter. */
  private async readTrainable(tip: VersionEntry | null): Promise<Trainable> {
    const optimizer = this.backend.createOptimizer(this.config.train);
    if (!tip) return { adapter: this.backend.newAdapter(this.model, this.shape, this.config.train.seed), optimizer };
    const adapter = await this.backend.readAdapter(tip.dir, this.model);
    const c = adapter.config;
    const t = this.config.train;
    if (shapeKey(c) !== shapeKey(t)) {
      this.logger.warn(
        { adapter: { rank: c.rank, alpha: c.alpha, targets: c.targets }, config: { rank: t.rank, alpha: t.alpha, targets: t.targets } },
        "continuing the existing adapter with its own rank, alpha and targets (the configured ones apply to a new lineage)",
      );
    }
    const optim = this.state.loadOptimizer(tip.name);
    if (optim) optimizer.loadState(optim);
    else this.logger.warn({ version: tip.name }, "no optimizer state for the latest version; continuing with fresh moments");
    return { adapter, optimizer };
  }

  /**
   * Lets go of the engine, the weights, the adapter and the optimizer (all of it is on disk: the
   * version `latest` and its optimizer state) and, when there is a `why` to log, hands the memory
   * back to the system (not worth it when the process stops).
   */
  private async release(why: "idle" | "the load failed" | null): Promise<void> {
    this.trainable = null;
    if (!(await this.closeHeld())) {
      // A load that failed half way: say so.
      if (this.current.weights && this.current.weights.state !== "not loaded") this.publishWeights("not loaded");
      return;
    }
    // Here, where nothing refers to the engine and the weights any more (a variable holding them
    // would keep them through the collection).
    const freed = why ? await giveMemoryBackSettled() : null;
    const weights = this.publishWeights("not loaded");
    if (freed) {
      const idleS = Math.round((Date.now() - this.lastBusy) / 1000);
      this.logger.info({ why, idleS, rssBeforeMb: mb(freed.rssBefore), rssAfterMb: weights.rssMb, ...(freed.trimUnavailable && { trimUnavailable: freed.trimUnavailable }) }, "base model let go");
    }
  }

  /** Closes the engine and the model, if loaded; whether they were. */
  private async closeHeld(): Promise<boolean> {
    const held = this.held;
    this.held = null;
    if (!held) return false;
    try {
      await held.engine?.close?.();
    } finally {
      held.model.close();
    }
    return true;
  }

  /**
   * Lets the weights go once no step has been due for train.releaseAfterIdleS seconds (0: never).
   * Returns how long until then (ms), or null when nothing is held or waits to be let go.
   */
  private async releaseWhenIdle(now: number): Promise<number | null> {
    const after = this.config.train.releaseAfterIdleS * 1000;
    if ((!this.held && !this.trainable) || after <= 0) return null;
    const left = this.lastBusy + after - now;
    if (left > 0) return left;
    await this.release("idle");
    return null;
  }

  private publishWeights(state: WeightsStatus["state"]): WeightsStatus {
    const weights = { state, since: new Date().toISOString(), rssMb: mb(process.memoryUsage.rss()) };
    this.publish({ weights });
    return weights;
  }

  run(): void {
    this.publishWeights("not loaded");
    this.done = this.loop().finally(() => this.shutdown());
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.wake?.();
    await this.done.catch(() => undefined);
  }

  private async loop(): Promise<void> {
    const t = this.config.train;
    let backoffMs = 0;
    while (!this.stopping) {
      let sleepMs = t.pollMs;
      try {
        // A rollback by the sidecar: continue from the version it names.
        const head = newHead(this.adaptersDir, this.state.dir);
        if (head) await this.resume();
        if (this.retention.due()) await this.retain();
        const scan = await this.sampleSource.scan(this.uses, t.epochs, this.quarantined);
        // Samples of a failed step go to the back, so one bad sample does not hold up the others.
        const fails = (id: string) => this.failures.get(id) ?? 0;
        scan.ready.sort((a, b) => fails(a.sample.id) - fails(b.sample.id));
        const now = Date.now();
        this.clock.observe(scan.ready.map((r) => r.sample.id), now);
        const decision = decideBatch(scan.ready, (r) => this.clock.firstSeen(r.sample.id), now, {
          batchSize: t.batchSize,
          maxWaitMs: t.maxWaitSec * 1000,
        });
        // Paused: no step starts; the samples keep being counted and wait for the resume.
        const paused = readTrainPause(this.config.dataDir);
        this.publish({
          samplesWaiting: scan.ready.length,
          samplesSkipped: { ...scan.skipped, failed: this.quarantined.size },
          awaitingTurn: scan.awaitingTurn,
          paused,
          ...(paused ? { state: "paused" as const } : this.current.state === "paused" ? { state: "waiting" as const } : {}),
        });
        if (paused) {
          const untilRelease = await this.releaseWhenIdle(Date.now());
          await this.sleep(untilRelease === null ? sleepMs : Math.min(sleepMs, untilRelease));
          continue;
        }
        if (decision.batch) {
          // A rollback that landed while the samples were being read: follow it before stepping,
          // or this step would grow the abandoned version (and its samples would count as used).
          // (A head that resume() could not follow — it names no version — stays new: not again.)
          const late = newHead(this.adaptersDir, this.state.dir);
          if (late && !(head && late.seq === head.seq && late.version === head.version)) continue;
          // The adapters directory and PRUNED.jsonl, read once for the checks below (each used to read them again).
          const listing = this.listAdapters();
          // A version the switchboard rejected: do not grow it (or what was built on it) further.
          if (await this.followRejections(listing)) continue;
          // Rejected again and again: stop spending samples on versions that are not served, and say why.
          if (this.pauseOnRejections(listing)) continue;
          // A sample that was in a failed step is retried alone, so only the culprit of a failing
          // batch is ever set aside; the others train in batches without it.
          const failed = decision.batch.filter((r) => fails(r.sample.id) > 0);
          const batch = failed.length === 0 ? decision.batch : failed.length === decision.batch.length ? failed.slice(0, 1) : decision.batch.filter((r) => fails(r.sample.id) === 0);
          await this.step(batch);
          backoffMs = 0;
          continue;
        }
        if (decision.dueInMs !== null) sleepMs = Math.min(sleepMs, Math.max(1, decision.dueInMs));
        const untilRelease = await this.releaseWhenIdle(Date.now());
        if (untilRelease !== null) sleepMs = Math.min(sleepMs, Math.max(1, untilRelease));
        backoffMs = 0;
      } catch (err) {
        backoffMs = Math.min(Math.max(backoffMs * 2, 250), 60_000);
        sleepMs = backoffMs;
        this.logger.error({ err: (err as Error).message }, "train step failed");
        this.publish({ state: "waiting", lastError: { message: (err as Error).message, at: new Date().toISOString() } });
      }
      await this.sleep(sleepMs);
    }
  }

  private async step(batch: ReadySample[]): Promise<void> {
    const samples = batch.map((r) => r.sample);
    const ids = samples.map((s) => s.id);
    const version = this.newestVersion + 1;
    const name = versionName(version);
    const stepNo = (this.latest?.manifest.step ?? 0) + 1;
    // Outside the try below: a failed load is not the samples' fault.
    const { model, engine, adapter, optimizer } = await this.prepare();
    this.publish({ state: "training" });
    const started = performance.now();
    crashPoint("step-start");
    try {
      const outcome = await trainOnBatch(engine, optimizer, adapter, samples, this.settings);
      const row: TrainStep = {
        id: name,
        step: stepNo,
        version: name,
        mode: this.config.train.mode,
        loss: outcome.loss,
        lossRl: outcome.lossRl,
        lossOpd: outcome.lossOpd,
        klToBase: null,
        meanReward: outcome.meanReward,
        meanAbsAdvantage: outcome.meanAbsAdvantage,
        gradNorm: outcome.gradNorm,
        tokens: outcome.tokens,
        samples: outcome.samples,
        sampleIds: ids,
        lr: this.config.train.lr,
        durationMs: 0,
        behaviourMismatch: outcome.behaviourMismatch,
        createdAt: "",
      };
      const { probe, klToBase } = await makeProbe(engine, adapter, samples);
      // The row describes the version this step made: its distance from the base, after the step.
      row.klToBase = klToBase;
      const gguf = wantsGguf(this.config.train.gguf, this.model.source);
      const shape = adapter.config;
      row.durationMs = performance.now() - started;
      row.createdAt = new Date().toISOString();
      // The optimizer state must exist whenever the version does: write it first.
      this.state.save(name, optimizer.saveState(), row);
      const dir = path.join(this.adaptersDir, name);
      const manifest = await writeAdapterDir(
        dir,
        { version, name },
        {
          parent: this.latest?.name ?? null,
          baseModel: this.model.name,
          baseModelHash: this.model.hash,
          step: stepNo,
          sampleCount: ids.length,
          sampleIds: ids,
          rank: shape.rank,
          alpha: shape.alpha,
          targetModules: peftModuleNames(shape),
        },
        async (tmp) => {
          await this.backend.writeAdapter(tmp, adapter, model, { gguf });
          fs.writeFileSync(path.join(tmp, PROBE_FILE), JSON.stringify(probe) + "\n");
        },
        () => crashPoint("before-version"),
      );
      crashPoint("after-version");
      this.store.put("train_steps", row);
      this.latest = { version, name, dir, manifest };
      this.newestVersion = version;
      for (const id of ids) {
        this.uses.set(id, (this.uses.get(id) ?? 0) + 1);
        this.failures.delete(id);
      }
      this.sampleSource.forget(ids.filter((id) => (this.uses.get(id) ?? 0) >= this.config.train.epochs));
      this.noteStep(row);
      this.publish({ state: "waiting", version: name, lastError: null });
      this.opts.onStep?.(row);
      await this.retain();
    } catch (err) {
      // The adapter and optimizer may be ahead of what is on disk: go back to the last version.
      this.trainable = null;
      for (const id of ids) {
        const n = (this.failures.get(id) ?? 0) + 1;
        this.failures.set(id, n);
        if (n >= MAX_FAILURES) {
          this.quarantined.add(id);
          this.logger.error({ sample: id }, `sample set aside after ${n} failed steps (retried after a restart)`);
        }
      }
      await this.resume().catch((e: unknown) => this.logger.error({ err: (e as Error).message }, "could not reload the last version"));
      throw err;
    } finally {
      this.lastBusy = Date.now();
    }
  }

  private noteStep(row: TrainStep): void {
    this.current.rewardTrend = [...this.current.rewardTrend, row.meanReward].slice(-TREND);
    this.current.lastStep = {
      version: row.version,
      step: row.step,
      loss: row.loss,
      meanReward: row.meanReward,
      samples: row.samples,
      durationMs: row.durationMs,
      at: row.createdAt,
    };
  }

  private publish(patch: Partial<TrainStatus>): void {
    const next = { ...this.current, ...patch };
    const changed = JSON.stringify({ ...next, updatedAt: "" }) !== JSON.stringify({ ...this.current, updatedAt: "" });
    // Polls that change nothing rewrite the file only as a heartbeat.
    if (!changed && Date.now() - Date.parse(this.current.updatedAt) < HEARTBEAT_MS) return;
    this.current = { ...next, updatedAt: new Date().toISOString() };
    try {
      writeStatus(this.config.dataDir, this.current);
    } catch (err) {
      this.logger.warn({ err: (err as Error).message }, "could not write the status file");
    }
    this.opts.progress?.update(this.current);
  }

  private sleep(ms: number): Promise<void> {
    if (this.stopping) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wake = () => {
        this.wake = null;
        done();
      };
    });
  }

  private async shutdown(): Promise<void> {
    // The process ends or moves on: no collection or trim.
    await this.release(null).catch((err: unknown) => this.logger.warn({ err: (err as Error).message }, "could not close the engine"));
    this.publish({ state: "stopped", weights: null });
    this.opts.progress?.close();
    await this.store.close();
  }
}

const mb = (bytes: number) => Math.round(bytes / 2 ** 20);
