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
import fs from "node:fs";
import path from "node:path";
import type { LoraAdapter } from "../adapters/index.js";
import { createLogger, dataPaths, readTrainPause, Store, type Config, type Logger, type TrainStep } from "../core/index.js";
import { readPruned, TARGET_MODULES } from "../adapters/index.js";
import { modelSourceOf, wantsGguf, type LoraShape, type TrainBackend } from "./backend.js";
import { decideBatch, ReadyClock } from "./batching.js";
import type { Optimizer, TrainEngine } from "./compute.js";
import { crashPoint } from "./crash.js";
import { lineageLinks, newHead, recordObeyed, resolveTip } from "./lineage.js";
import { Retention, retainVersions } from "./retention.js";
import type { LoadedModel } from "./engine/model/types.js";
import { makeProbe, PROBE_FILE } from "./probe.js";
import { pauseOnRejections } from "./reject-pause.js";
import type { Progress } from "./progress.js";
import { StoreSampleSource, type ReadySample } from "./source.js";
import { newStatus, writeStatus, type Fallback, type TrainStatus } from "./status.js";
import { TrainerState } from "./state.js";
import { trainOnBatch, type StepSettings } from "./step.js";
import { NO_VERDICTS, readVerdictsOr, untrustedVersions, type Verdicts } from "./verdicts.js";
import { listVersions, removeTemporaries, trainedCounts, versionName, writeAdapterDir, type VersionEntry } from "./versions.js";

export interface TrainLoopOptions {
  /** Defaults to the real engine, model loader and adapter formats. */
  backend?: TrainBackend;
  /** Overrides train.model / serve.model. */
  model?: string | null;
  logger?: Logger;
  progress?: Progress | null;
  /** Called after each version is written. */
  onStep?: (step: TrainStep) => void;
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
  let model: LoadedModel | null = null;
  let engine: TrainEngine | null = null;
  try {
    model = await backend.loadModel(source);
    const loop = new ContinuousTrainer(config, backend, model, store, state, adaptersDir, logger, opts);
    await loop.resume();
    engine = await backend.createEngine(model, loop.shape, config.train, logger);
    loop.engine = engine;
    loop.run();
    return loop;
  } catch (err) {
    await engine?.close?.();
    model?.close();
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

class ContinuousTrainer implements TrainLoop {
  engine: TrainEngine | null = null;
  shape: LoraShape;
  done!: Promise<void>;
  private adapter!: LoraAdapter;
  private optimizer!: Optimizer;
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

  constructor(
    private readonly config: Config,
    private readonly backend: TrainBackend,
    private readonly model: LoadedModel,
    private readonly store: Store,
    private readonly state: TrainerState,
    private readonly adaptersDir: string,
    private readonly logger: Logger,
    private readonly opts: TrainLoopOptions,
  ) {
    const t = config.train;
    this.shape = { rank: t.rank, alpha: t.alpha, targets: [...t.targets] };
    this.settings = stepSettings(config);
    this.sampleSource = new StoreSampleSource(store, { mode: t.mode, tokenizer: model.tokenizer, maxTokens: t.maxTokens, vocabSize: model.weights.config.vocabSize });
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
   * Loads the version to continue from (the newest, or as HEAD.json and the switchboard's verdicts
   * say: trainer/lineage.ts) and its optimizer state, or starts a fresh adapter. `verdicts`: as
   * just read (otherwise read here).
   */
  async resume(verdicts?: Verdicts): Promise<void> {
    fs.mkdirSync(this.adaptersDir, { recursive: true });
    const removed = removeTemporaries(this.adaptersDir);
    if (removed.length) this.logger.info({ removed }, "removed interrupted version writes");
    verdicts ??= await readVerdictsOr(this.store, this.adaptersDir, this.verdicts, this.logger);
    const versions = listVersions(this.adaptersDir);
    // Versions deleted by retention still count: their samples are done, their numbers taken.
    const present = new Set(versions.map((v) => v.name));
    const pruned = new Map([...readPruned(this.adaptersDir)].filter(([name]) => !present.has(name)));
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
      fallback = { grewFrom: from, passedOver: passedOver.version, rejected: passedOver.rejected, at: new Date().toISOString() };
      const why = passedOver.rejected.map((r) => `${r.version} was rejected by the switchboard (${r.reason})`).join("; ");
      this.logger.warn(
        { passedOver: passedOver.version, rejected: passedOver.rejected, abandoned: passedOver.abandoned, continuingFrom: from },
        `not building on ${passedOver.version}: ${why}; ${from ? `continuing from ${from}` : "no version before it passed the check: starting a fresh adapter"}`,
      );
    }
    const optimizer = this.backend.createOptimizer(this.config.train);
    if (!tip) {
      this.adapter = this.backend.newAdapter(this.model, this.shape, this.config.train.seed);
      if (obey) recordObeyed(this.state.dir, obey);
      this.optimizer = optimizer;
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
    const adapter = await this.backend.readAdapter(tip.dir, this.model);
    const c = adapter.config;
    const t = this.config.train;
    if (c.rank !== t.rank || c.alpha !== t.alpha || [...c.targets].sort().join() !== [...t.targets].sort().join()) {
      this.logger.warn(
        { adapter: { rank: c.rank, alpha: c.alpha, targets: c.targets }, config: { rank: t.rank, alpha: t.alpha, targets: t.targets } },
        "continuing the existing adapter with its own rank, alpha and targets (the configured ones apply to a new lineage)",
      );
    }
    const optim = this.state.loadOptimizer(tip.name);
    if (optim) optimizer.loadState(optim);
    else this.logger.warn({ version: tip.name }, "no optimizer state for the latest version; continuing with fresh moments");
    // Only once everything loaded: a failed resume must not leave one version's weights under another's name,
    // nor a rollback marked obeyed whose version could not be read (it is tried again instead).
    if (obey) recordObeyed(this.state.dir, obey);
    this.adapter = adapter;
    this.optimizer = optimizer;
    this.shape = { rank: c.rank, alpha: c.alpha, targets: [...c.targets] };
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
   */
  private async followRejections(): Promise<boolean> {
    const verdicts = await readVerdictsOr(this.store, this.adaptersDir, this.verdicts, this.logger);
    // Only a new rejection can take trust away (an acceptance only adds it).
    const news = [...verdicts.rejected.keys()].some((name) => !this.verdicts.rejected.has(name));
    if (news && this.latest) {
      const versions = listVersions(this.adaptersDir);
      const untrusted = untrustedVersions(lineageLinks(versions, readPruned(this.adaptersDir)), verdicts);
      if (untrusted.has(this.latest.name)) {
        await this.resume(verdicts);
        return true;
      }
    }
    this.verdicts = verdicts;
    return false;
  }

  /** Pauses training when the switchboard rejected the last train.pauseAfterRejections versions (trainer/reject-pause.ts). */
  private pauseOnRejections(): boolean {
    const ctx = { dataDir: this.config.dataDir, adaptersDir: this.adaptersDir, stateDir: this.state.dir, pauseAfter: this.config.train.pauseAfterRejections, logger: this.logger };
    return pauseOnRejections(ctx, this.verdicts) !== null;
  }

  /** Old versions and optimizer states go (trainer/retention.ts); never throws. */
  private async retain(): Promise<void> {
    await retainVersions({ store: this.store, adaptersDir: this.adaptersDir, state: this.state, retention: this.retention, latest: this.latest, logger: this.logger });
  }

  run(): void {
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
          await this.sleep(sleepMs);
          continue;
        }
        if (decision.batch) {
          // A rollback that landed while the samples were being read: follow it before stepping,
          // or this step would grow the abandoned version (and its samples would count as used).
          // (A head that resume() could not follow — it names no version — stays new: not again.)
          const late = newHead(this.adaptersDir, this.state.dir);
          if (late && !(head && late.seq === head.seq && late.version === head.version)) continue;
          // A version the switchboard rejected: do not grow it (or what was built on it) further.
          if (await this.followRejections()) continue;
          // Rejected again and again: stop spending samples on versions that are not served, and say why.
          if (this.pauseOnRejections()) continue;
          // A sample that was in a failed step is retried alone, so only the culprit of a failing
          // batch is ever set aside; the others train in batches without it.
          const failed = decision.batch.filter((r) => fails(r.sample.id) > 0);
          const batch = failed.length === 0 ? decision.batch : failed.length === decision.batch.length ? failed.slice(0, 1) : decision.batch.filter((r) => fails(r.sample.id) === 0);
          await this.step(batch);
          backoffMs = 0;
          continue;
        }
        if (decision.dueInMs !== null) sleepMs = Math.min(sleepMs, Math.max(1, decision.dueInMs));
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
    this.publish({ state: "training" });
    const started = performance.now();
    crashPoint("step-start");
    try {
      const outcome = await trainOnBatch(this.engine!, this.optimizer, this.adapter, samples, this.settings);
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
      const { probe, klToBase } = await makeProbe(this.engine!, this.adapter, samples);
      // The row describes the version this step made: its distance from the base, after the step.
      row.klToBase = klToBase;
      const gguf = wantsGguf(this.config.train.gguf, this.model.source);
      row.durationMs = performance.now() - started;
      row.createdAt = new Date().toISOString();
      // The optimizer state must exist whenever the version does: write it first.
      this.state.save(name, this.optimizer.saveState(), row);
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
          rank: this.shape.rank,
          alpha: this.shape.alpha,
          targetModules: peftModuleNames(this.shape),
        },
        async (tmp) => {
          await this.backend.writeAdapter(tmp, this.adapter, this.model, { gguf });
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
    this.publish({ state: "stopped" });
    this.opts.progress?.close();
    await this.engine?.close?.();
    this.model.close();
    await this.store.close();
  }
}
