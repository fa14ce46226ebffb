// The hot-load switchboard: keeps the newest good adapter version live in the model server and
// routes every call for the base model to it.
//
// A new version directory (seen by the watcher) goes through, one at a time:
//   hashes (manifest sha256) → load under a new name → probe (a short generation) → log-prob check
//   (probe.json: the server's shift vs the engine's, adapters/drivers/probe.ts) → switch → unload old
// The switch is one assignment on the event loop: calls routed before it keep their lease on the
// old version and finish there; the old version is unloaded only once it has no call in flight,
// and the `adapters.keepLoaded` newest older versions stay loaded for an instant rollback.
// A version that fails a check is `rejected` (and unloaded); the live one stays live. A version
// that cannot be loaded yet (server unreachable; llama-server not restarted) stays `candidate` and
// is tried again every `adapters.retrySec`.
//
// Statuses in the `adapters` table, one row per version: candidate → live → retired, or rejected.
// Pinning (and rollback, which pins) freezes the live version: new versions wait as candidates
// until unpin. On start the live (or pinned) version of the table is loaded again; if its directory
// is gone meanwhile (pruned, moved away), its row is retired (not rejected) and unpinned.
//
// A row describes the version that had its name when the row was written, not whatever has the
// name now: a lineage started over (the adapters directory moved away, the data kept — what the
// trainer tells the user to do after a base-model change) writes v000001… again. A row whose
// manifest is not the one on disk (adapters sameVersion) is stale: the version on disk is a new
// candidate, a stale live or pinned row is not restored, and a copy of the old version still
// loaded under that name is forgotten rather than switched to.
import fs from "node:fs";
import path from "node:path";
import {
  compareProbe,
  DriverError,
  readProbeFile,
  readPruned,
  readVersionManifest,
  sameVersion,
  versionProblems,
  writeHead,
  type AdapterDriver,
  type ProbeComparison,
} from "../../adapters/index.js";
import type { AdapterStatus, AdapterVersion, Logger } from "../../core/index.js";
import type { Route, Switchboard, SwitchboardStatus } from "../switchboard.js";

const VERSION_DIR = /^v(\d{6})$/;

/** Where the switchboard records versions: the `adapters` table (a core Store, or the sidecar's store host). */
export interface AdapterTable {
  put(table: "adapters", row: AdapterVersion): unknown;
  list(table: "adapters"): Promise<AdapterVersion[]>;
}

export interface HotloadOptions {
  adaptersDir: string;
  store: AdapterTable;
  /** The driver, or a function that finds it once the upstream's kind is known (null: none yet). */
  driver: AdapterDriver | (() => AdapterDriver | null);
  keepLoaded: number;
  /** Run the probe and the log-prob check before a version goes live. */
  check: boolean;
  retryMs: number;
  logger: Logger;
}

interface Slot {
  version: string;
  servedName: string;
  /** What the upstream must receive as `model`. */
  requestModel: string;
  inflight: number;
  /** Unload once idle. */
  retiring: boolean;
}

export interface CheckReport {
  version: string;
  at: string;
  probe: { ok: boolean; latencyMs: number; error: string | null } | null;
  /** null: no probe.json, or the server cannot score. */
  logprobs: ProbeComparison | null;
  /** Why the log-prob comparison did not run, when it did not. */
  logprobsSkipped: string | null;
}

export interface RollbackReport {
  version: string;
  state: "pending" | "done" | "failed";
  /** Why it failed (the control API's error message). */
  reason: string | null;
  requestedAt: string;
  /** When it ended. */
  at: string | null;
}

export interface HotloadStatus extends SwitchboardStatus {
  mode: "hotload";
  kind: string | null;
  base: string | null;
  pinned: string | null;
  liveStep: number | null;
  loaded: { version: string; servedName: string; inflight: number; retiring: boolean }[];
  /** The newest version waiting to be loaded, and why it waits. */
  waiting: { version: string; reason: string } | null;
  lastRejection: { version: string; reason: string; at: string } | null;
  /** The last rollback asked for: `done` only once its version is live and HEAD.json names it. */
  lastRollback: RollbackReport | null;
  lastCheck: CheckReport | null;
  lastError: { message: string; at: string } | null;
  swaps: number;
}

export class AdapterApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** Thrown inside processing to reject a version with a reason. */
class Rejection extends Error {}

/** How an attempt to make a version live ended. */
type BringLive = "live" | "waiting" | "rejected" | "gone";

export class HotloadSwitchboard implements Switchboard {
  private live: Slot | null = null;
  private pinned: string | null = null;
  private readonly slots = new Map<string, Slot>();
  private readonly byRequestModel = new Map<string, Slot>();
  private readonly rows = new Map<string, AdapterVersion>();
  private base: string | null = null;
  private queue: Promise<unknown> = Promise.resolve();
  private retryTimer: NodeJS.Timeout | null = null;
  private restoreTarget: string | null = null;
  private waiting: { version: string; reason: string } | null = null;
  private lastRejection: HotloadStatus["lastRejection"] = null;
  private lastRollback: RollbackReport | null = null;
  private lastCheck: CheckReport | null = null;
  private lastError: HotloadStatus["lastError"] = null;
  private swaps = 0;
  private closed = false;
  private readonly swapListeners = new Set<(version: string) => void>();

  constructor(private readonly opts: HotloadOptions) {}

  // ---------------------------------------------------------------- the hot path

  route(requestedModel: string): Route {
    const explicit = this.byRequestModel.get(requestedModel);
    const slot = explicit ?? (this.live && this.isBase(requestedModel) ? this.live : null);
    if (!slot) return { model: requestedModel, adapter: null, release: () => undefined };
    slot.inflight++;
    let released = false;
    return {
      model: slot.requestModel,
      adapter: slot.version,
      release: () => {
        if (released) return;
        released = true;
        slot.inflight--;
        if (slot.retiring && slot.inflight === 0) this.enqueue(() => this.unloadSlot(slot));
      },
    };
  }

  /** Calls for the base model (or any model when the base is not known yet) go to the live version. */
  private isBase(model: string): boolean {
    if (!this.base || !model) return true;
    const strip = (m: string) => m.replace(/:latest$/, "");
    return strip(model) === strip(this.base);
  }

  status(): HotloadStatus {
    const driver = this.driverOrNull();
    const liveRow = this.live ? this.rows.get(this.live.version) : null;
    return {
      mode: "hotload",
      kind: driver?.kind ?? null,
      base: this.base,
      live: this.live?.version ?? null,
      pinned: this.pinned,
      liveStep: liveRow?.manifest.step ?? null,
      inflight: [...this.slots.values()].reduce((n, s) => n + s.inflight, 0),
      loaded: [...this.slots.values()].map((s) => ({ version: s.version, servedName: s.servedName, inflight: s.inflight, retiring: s.retiring })),
      waiting: this.waiting,
      lastRejection: this.lastRejection,
      lastRollback: this.lastRollback,
      lastCheck: this.lastCheck,
      lastError: this.lastError,
      swaps: this.swaps,
    };
  }

  /** Calls `fn(version)` after every switch (tests, benchmarks). Returns the unsubscribe. */
  onSwap(fn: (version: string) => void): () => void {
    this.swapListeners.add(fn);
    return () => this.swapListeners.delete(fn);
  }

  // ---------------------------------------------------------------- start, stop, scan

  /** Reads the table, re-loads the live/pinned version, and looks at the directory. */
  async start(): Promise<void> {
    fs.mkdirSync(this.opts.adaptersDir, { recursive: true });
    try {
      for (const row of await this.opts.store.list("adapters")) this.rows.set(row.id, row);
    } catch (err) {
      this.noteError(`could not read the adapters table: ${(err as Error).message}`);
    }
    const rows = [...this.rows.values()];
    this.pinned = rows.find((r) => r.pinned)?.id ?? null;
    this.restoreTarget = this.pinned ?? rows.filter((r) => r.status === "live").sort((a, b) => b.version - a.version)[0]?.id ?? null;
    this.retryTimer = setInterval(() => this.kick(), this.opts.retryMs);
    this.retryTimer.unref();
    // Not awaited: the sidecar serves (the base) while the live version is re-loaded; see idle().
    this.kick();
  }

  /** Something changed in the directory (or a retry is due): process what is pending. */
  kick(): void {
    if (this.closed) return;
    this.enqueue(() => this.advance());
  }

  /** Resolves once every queued operation has finished. */
  async idle(): Promise<void> {
    let seen: Promise<unknown>;
    do {
      seen = this.queue;
      await seen.catch(() => undefined);
    } while (seen !== this.queue);
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.retryTimer) clearInterval(this.retryTimer);
    await this.idle();
  }

  private enqueue<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch((err: unknown) => this.noteError((err as Error).message));
    return run;
  }

  private driverOrNull(): AdapterDriver | null {
    return typeof this.opts.driver === "function" ? this.opts.driver() : this.opts.driver;
  }

  private noteError(message: string): void {
    this.lastError = { message, at: new Date().toISOString() };
    this.opts.logger.warn({ err: message }, "hot-load");
  }

  /** Complete version directories, oldest first. */
  private scan(): { name: string; version: number; dir: string }[] {
    let names: string[];
    try {
      names = fs.readdirSync(this.opts.adaptersDir);
    } catch {
      return [];
    }
    const out: { name: string; version: number; dir: string }[] = [];
    for (const name of names) {
      const m = VERSION_DIR.exec(name);
      const dir = path.join(this.opts.adaptersDir, name);
      if (m && fs.existsSync(path.join(dir, "manifest.json"))) out.push({ name, version: Number(m[1]), dir });
    }
    return out.sort((a, b) => a.version - b.version);
  }

  // ---------------------------------------------------------------- rows

  private putRow(name: string, patch: Partial<AdapterVersion> & { status?: AdapterStatus }): AdapterVersion | null {
    let row = this.rows.get(name);
    if (!row) {
      const dir = path.join(this.opts.adaptersDir, name);
      const manifest = readVersionManifest(dir);
      if (!manifest) return null;
      row = {
        id: name,
        version: Number(name.slice(1)),
        dir,
        manifest,
        status: "candidate",
        statusReason: null,
        pinned: false,
        loadedAt: null,
        liveAt: null,
        retiredAt: null,
      };
    }
    const next = { ...row, ...patch };
    this.rows.set(name, next);
    const failed = (err: unknown) => this.noteError(`could not record ${name}: ${(err as Error).message}`);
    try {
      // A store host answers with a promise; core's Store returns at once.
      const r = this.opts.store.put("adapters", next);
      if (r instanceof Promise) r.catch(failed);
    } catch (err) {
      failed(err);
    }
    return next;
  }

  /**
   * When the row of `name` describes another version than the one on disk now (see the top of this
   * file), replaces it with a fresh candidate row and forgets what the switchboard held of the old
   * version: restoring it, its pin, a loaded copy (bringLive then replaces the server's copy).
   */
  private forgetIfStale(name: string): void {
    const row = this.rows.get(name);
    const manifest = readVersionManifest(path.join(this.opts.adaptersDir, name));
    if (!row || !manifest || sameVersion(row.manifest, manifest)) return;
    this.opts.logger.warn(
      { version: name, written: manifest.createdAt, known: { written: row.manifest.createdAt, status: row.status } },
      `${name} on disk is a new version (written ${manifest.createdAt}), not the one the store knew (written ${row.manifest.createdAt}): treated as new`,
    );
    if (this.restoreTarget === name) this.restoreTarget = null;
    if (this.pinned === name) this.pinned = null;
    if (this.waiting?.version === name) this.waiting = null;
    const slot = this.slots.get(name);
    if (slot) {
      // Calls still in flight on the old copy finish only if the new version is not loaded first.
      this.slots.delete(name);
      if (this.byRequestModel.get(slot.requestModel) === slot) this.byRequestModel.delete(slot.requestModel);
      if (this.live === slot) this.live = null;
    }
    this.rows.delete(name);
    this.putRow(name, {});
  }

  // ---------------------------------------------------------------- processing

  private async advance(): Promise<void> {
    const driver = this.driverOrNull();
    if (!driver) {
      const newest = this.scan().at(-1);
      if (newest) this.waiting = { version: newest.name, reason: "the upstream's kind is not known yet (or it cannot serve adapters)" };
      return;
    }
    if (!this.base) {
      try {
        this.base = await driver.baseModel();
      } catch (err) {
        this.waiting = { version: this.scan().at(-1)?.name ?? "-", reason: `base model unknown: ${(err as Error).message}` };
        this.noteError((err as Error).message);
        return;
      }
    }
    await this.reconcile(driver);
    const all = this.scan();
    for (const v of all) this.forgetIfStale(v.name);
    if (this.restoreTarget) {
      const target = this.restoreTarget;
      const outcome = await this.bringLive(driver, target, { restore: true });
      if (outcome === "waiting") return;
      // Restored, or its files went bad or away while we were down (then the base serves until the next version).
      this.restoreTarget = null;
      if (outcome !== "live" && this.pinned === target) {
        this.pinned = null;
        this.putRow(target, { pinned: false });
      }
    }
    for (const v of all) if (!this.rows.has(v.name)) this.putRow(v.name, {});
    // Only newer versions replace the live one, unless its directory no longer holds it (the
    // lineage started over while it was live): numbers of another lineage say nothing. (A live
    // version whose directory holds another version now was forgotten above.)
    const liveVersion = this.live && all.some((v) => v.name === this.live!.version) ? Number(this.live.version.slice(1)) : 0;
    const pending = all.filter((v) => v.version > liveVersion && this.rows.get(v.name)?.status === "candidate");
    const newest = pending.at(-1);
    if (!newest) {
      this.waiting = null;
      return;
    }
    if (this.pinned) {
      this.waiting = { version: newest.name, reason: `pinned to ${this.pinned}; unpin to go on` };
      this.putRow(newest.name, { statusReason: this.waiting.reason });
      return;
    }
    // Only the newest goes live; older candidates were overtaken before they were tried.
    for (const v of pending.slice(0, -1)) {
      this.putRow(v.name, { status: "retired", statusReason: `superseded by ${newest.name} before it was loaded`, retiredAt: new Date().toISOString() });
    }
    await this.bringLive(driver, newest.name, {});
  }

  /**
   * A model server that restarted has lost the adapters it had loaded: forget them, route calls to
   * the base meanwhile, and load the live version again. (Calls routed to it between the restart and
   * this check — at most `adapters.retrySec` — fail with the server's "no such model".)
   */
  private async reconcile(driver: AdapterDriver): Promise<void> {
    if (!this.slots.size || !driver.capabilities.runtimeLoad) return;
    let names: string[] | null;
    try {
      names = await driver.loaded();
    } catch {
      return; // unreachable now: nothing to compare with
    }
    if (!names) return;
    const have = new Set(names);
    for (const slot of [...this.slots.values()]) {
      if (have.has(slot.servedName)) continue;
      this.slots.delete(slot.version);
      if (this.byRequestModel.get(slot.requestModel) === slot) this.byRequestModel.delete(slot.requestModel);
      if (this.live === slot) {
        this.live = null;
        this.restoreTarget = slot.version;
        this.noteError(`the server no longer has ${slot.version} (${slot.servedName}) loaded — restarted? loading it again`);
      }
    }
  }

  /**
   * Loads (unless loaded), checks and switches to `name`. `waiting`: to be retried; `gone`: its
   * directory no longer holds it (retired, see retireGone).
   */
  private async bringLive(driver: AdapterDriver, name: string, how: { restore?: boolean; pin?: boolean }): Promise<BringLive> {
    const dir = path.join(this.opts.adaptersDir, name);
    const base = this.base!;
    let slot = this.slots.get(name) ?? null;
    try {
      if (!slot) {
        if (!fs.existsSync(path.join(dir, "manifest.json"))) {
          this.retireGone(name);
          return "gone";
        }
        const problems = versionProblems(dir, driver.capabilities.format);
        if (problems.length) throw new Rejection(problems.join("; "));
        let probeFile;
        try {
          probeFile = readProbeFile(dir);
        } catch (err) {
          throw new Rejection((err as Error).message);
        }
        this.putRow(name, {});
        const servedName = driver.servedName(name, base);
        try {
          // The server has this name but we did not load it: it holds someone else's weights (a
          // previous run's, another data directory's, a sidecar that crashed), and "already loaded"
          // would serve those under this version. Unload it first.
          if (driver.capabilities.runtimeLoad && (await driver.loaded())?.includes(servedName)) await driver.unload(servedName);
          await driver.load(servedName, dir);
        } catch (err) {
          const e = err as DriverError;
          // The server refused these files: the version is bad. Anything else may pass: try again later.
          if (e instanceof DriverError && e.status !== null && e.status >= 400 && e.status < 500 && !e.permanent) throw new Rejection(e.message);
          this.waiting = { version: name, reason: e.message };
          this.putRow(name, { statusReason: `waiting: ${e.message}` });
          this.noteError(e.message);
          return "waiting";
        }
        slot = { version: name, servedName, requestModel: driver.requestModel(servedName, base), inflight: 0, retiring: false };
        this.slots.set(name, slot);
        this.putRow(name, { loadedAt: new Date().toISOString() });
        if (this.opts.check) await this.check(driver, slot, probeFile ?? null, base);
      } else if (this.opts.check) {
        const probe = await driver.probe(slot.requestModel);
        if (!probe.ok) throw new Rejection(`probe under ${slot.requestModel} failed: ${probe.error}`);
      }
    } catch (err) {
      if (!(err instanceof Rejection)) throw err;
      await this.reject(name, err.message, slot);
      return "rejected";
    }
    this.switchTo(slot, how);
    return "live";
  }

  /**
   * A version to re-load (or roll back to) whose directory is gone: pruned, moved or deleted by the
   * user while the sidecar was down. Nothing says it was bad, so it is retired, not rejected (the
   * trainer reads a rejection as a verdict on the version and on what was built on it).
   */
  private retireGone(name: string): void {
    const reason = `its directory is gone (no ${path.join(this.opts.adaptersDir, name, "manifest.json")}): pruned or moved away`;
    if (this.waiting?.version === name) this.waiting = null;
    this.putRow(name, { status: "retired", statusReason: reason, retiredAt: new Date().toISOString() });
    this.opts.logger.warn({ version: name, reason }, "adapter version retired");
  }

  private async check(driver: AdapterDriver, slot: Slot, probeFile: ReturnType<typeof readProbeFile>, base: string): Promise<void> {
    const report: CheckReport = { version: slot.version, at: new Date().toISOString(), probe: null, logprobs: null, logprobsSkipped: null };
    this.lastCheck = report;
    const probe = await driver.probe(slot.requestModel);
    report.probe = { ok: probe.ok, latencyMs: Math.round(probe.latencyMs), error: probe.error };
    if (!probe.ok) throw new Rejection(`probe under ${slot.requestModel} failed: ${probe.error}`);
    if (!probeFile) {
      report.logprobsSkipped = "the version has no probe.json";
      return;
    }
    if (!driver.capabilities.score) {
      report.logprobsSkipped = `${driver.kind} cannot score given tokens; checked by the probe only`;
      return;
    }
    let server: { base: number[]; version: number[] };
    try {
      const b = await driver.score(base, probeFile.promptIds, probeFile.responseIds);
      const v = await driver.score(slot.requestModel, probeFile.promptIds, probeFile.responseIds);
      if (!b || !v) {
        report.logprobsSkipped = "the server returned no log-probs";
        return;
      }
      server = { base: b, version: v };
    } catch (err) {
      throw new Rejection(`scoring the probe failed: ${(err as Error).message}`);
    }
    report.logprobs = compareProbe(probeFile, server);
    if (!report.logprobs.ok) throw new Rejection(`log-prob check failed: ${report.logprobs.reason}`);
  }

  private async reject(name: string, reason: string, slot: Slot | null): Promise<void> {
    const at = new Date().toISOString();
    this.lastRejection = { version: name, reason, at };
    if (this.waiting?.version === name) this.waiting = null;
    this.putRow(name, { status: "rejected", statusReason: reason });
    this.opts.logger.warn({ version: name, reason }, "adapter version rejected");
    if (slot && slot !== this.live) {
      slot.retiring = true;
      if (slot.inflight === 0) await this.unloadSlot(slot);
    }
  }

  private switchTo(slot: Slot, how: { restore?: boolean; pin?: boolean }): void {
    const now = new Date().toISOString();
    const old = this.live;
    slot.retiring = false;
    this.byRequestModel.set(slot.requestModel, slot);
    // The switch: from here on, new calls get `slot`; calls already routed keep the old one.
    this.live = slot;
    if (this.waiting?.version === slot.version) this.waiting = null;
    this.putRow(slot.version, { status: "live", statusReason: how.restore ? "re-loaded after a restart" : null, liveAt: now, retiredAt: null });
    if (old && old !== slot) {
      this.putRow(old.version, { status: "retired", statusReason: `replaced by ${slot.version}`, retiredAt: now });
      this.swaps++;
    }
    this.opts.logger.info({ version: slot.version, servedAs: slot.requestModel, previous: old?.version ?? null }, "adapter version live");
    for (const fn of this.swapListeners) fn(slot.version);
    this.trim();
  }

  /** Marks loaded versions beyond `keepLoaded` (besides live and pinned) for unloading once idle. */
  private trim(): void {
    const others = [...this.slots.values()]
      .filter((s) => s !== this.live && s.version !== this.pinned)
      .sort((a, b) => (a.version < b.version ? 1 : -1));
    for (const s of others.slice(this.opts.keepLoaded)) {
      s.retiring = true;
      // Unrouted at once: an explicit request for it goes to the base from now on.
      if (s.inflight === 0) this.enqueue(() => this.unloadSlot(s));
    }
  }

  private async unloadSlot(slot: Slot): Promise<void> {
    if (!slot.retiring || slot.inflight > 0 || this.slots.get(slot.version) !== slot) return;
    this.slots.delete(slot.version);
    if (this.byRequestModel.get(slot.requestModel) === slot) this.byRequestModel.delete(slot.requestModel);
    try {
      await this.driverOrNull()?.unload(slot.servedName);
      this.opts.logger.info({ version: slot.version }, "adapter version unloaded");
    } catch (err) {
      this.noteError(`unloading ${slot.version}: ${(err as Error).message}`);
    }
  }

  // ---------------------------------------------------------------- rollback, pin, unpin

  /**
   * The adapters API's listing: newest first. Versions whose directory is gone (deleted by the
   * trainer's retention, adapters.keepVersions) are left out; their rows stay in the table.
   */
  versions(): { live: string | null; pinned: string | null; versions: AdapterVersion[] } {
    const present = new Set<string>();
    for (const v of this.scan()) {
      present.add(v.name);
      if (!this.rows.has(v.name)) this.putRow(v.name, {});
    }
    const shown = (r: AdapterVersion) => present.has(r.id) || r.id === this.live?.version || r.id === this.pinned;
    const versions = [...this.rows.values()].filter(shown).sort((a, b) => b.version - a.version);
    return { live: this.live?.version ?? null, pinned: this.pinned, versions };
  }

  private target(name: string): AdapterVersion {
    if (!VERSION_DIR.test(name)) throw new AdapterApiError(400, `"${name}" is not a version name (v000003)`);
    if (!fs.existsSync(path.join(this.opts.adaptersDir, name, "manifest.json"))) {
      const pruned = readPruned(this.opts.adaptersDir).get(name);
      if (pruned) {
        throw new AdapterApiError(404, `${name} was pruned at ${pruned.prunedAt} (adapters.keepVersions keeps the newest versions and the live and pinned ones); \`clawloop adapters list\` shows those that remain`);
      }
      throw new AdapterApiError(404, `no adapter version ${name} in ${this.opts.adaptersDir}`);
    }
    this.forgetIfStale(name);
    const row = this.rows.get(name) ?? this.putRow(name, {});
    if (!row) throw new AdapterApiError(404, `no adapter version ${name} in ${this.opts.adaptersDir}`);
    if (row.status === "rejected") throw new AdapterApiError(409, `${name} was rejected (${row.statusReason ?? "no reason recorded"}); it cannot go live`);
    return row;
  }

  private requireDriver(): AdapterDriver {
    const driver = this.driverOrNull();
    if (!driver) throw new AdapterApiError(503, "the upstream's kind is not known yet, or it cannot serve adapters");
    return driver;
  }

  /**
   * Makes `name` live and pinned; versions newer than it are retired, and the trainer continues from
   * it. Done (status `lastRollback`) only once `name` is live and HEAD.json names it; when its files
   * cannot be read, or it cannot be loaded, nothing changes: the live version keeps serving.
   */
  rollback(name: string): Promise<{ live: string | null; pinned: string | null }> {
    const report: RollbackReport = { version: name, state: "pending", reason: null, requestedAt: new Date().toISOString(), at: null };
    this.lastRollback = report;
    const end = (state: "done" | "failed", reason: string | null) => {
      report.state = state;
      report.reason = reason;
      report.at = new Date().toISOString();
      if (state === "failed") this.opts.logger.warn({ version: name, reason }, "rollback failed");
    };
    return this.enqueue(async () => {
      try {
        const result = await this.rollBack(name);
        end("done", null);
        return result;
      } catch (err) {
        end("failed", (err as Error).message);
        throw err;
      }
    });
  }

  private async rollBack(name: string): Promise<{ live: string | null; pinned: string | null }> {
    this.target(name);
    // The trainer continues from these files: a copy still loaded in the server (kept for an
    // instant rollback) says nothing about whether they can still be read.
    const problems = versionProblems(path.join(this.opts.adaptersDir, name), this.requireDriver().capabilities.format);
    if (problems.length) {
      throw new AdapterApiError(409, `rollback to ${name} failed: its files cannot be read (${problems.join("; ")}); ${this.live?.version ?? "the base model"} keeps serving`);
    }
    await this.pinTo(name, "rollback");
    const now = new Date().toISOString();
    for (const row of [...this.rows.values()]) {
      if (row.version > Number(name.slice(1)) && row.status !== "rejected" && row.status !== "retired") {
        this.putRow(row.id, { status: "retired", statusReason: `rolled back to ${name}`, retiredAt: now });
      } else if (row.version > Number(name.slice(1)) && row.status === "retired" && !row.statusReason?.startsWith("rolled back")) {
        this.putRow(row.id, { statusReason: `rolled back to ${name}` });
      }
    }
    writeHead(this.opts.adaptersDir, name, `rollback to ${name}`);
    return { live: this.live?.version ?? null, pinned: this.pinned };
  }

  /** Makes `name` live and keeps it live: new versions wait until unpin. */
  pin(name: string): Promise<{ live: string | null; pinned: string | null }> {
    return this.enqueue(async () => {
      this.target(name);
      await this.pinTo(name, "pin");
      return { live: this.live?.version ?? null, pinned: this.pinned };
    });
  }

  unpin(): Promise<{ live: string | null; pinned: string | null }> {
    const result = this.enqueue(async () => {
      if (this.pinned) this.putRow(this.pinned, { pinned: false });
      this.pinned = null;
      return { live: this.live?.version ?? null, pinned: this.pinned };
    });
    // Then go on with the newest candidate, if there is one.
    this.kick();
    return result;
  }

  private async pinTo(name: string, why: "pin" | "rollback"): Promise<void> {
    const driver = this.requireDriver();
    if (!this.base) this.base = await driver.baseModel();
    if (this.live?.version !== name) {
      const outcome = await this.bringLive(driver, name, { pin: true });
      if (outcome !== "live") {
        const row = this.rows.get(name);
        const status = { rejected: 409, gone: 404, waiting: 503 }[outcome];
        throw new AdapterApiError(status, `${why} to ${name} failed: ${row?.statusReason ?? this.lastError?.message ?? "unknown reason"}`);
      }
    }
    if (this.pinned && this.pinned !== name) this.putRow(this.pinned, { pinned: false });
    this.pinned = name;
    this.putRow(name, { pinned: true });
    this.trim();
  }
}
