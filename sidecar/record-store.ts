// Where the sidecar writes: the store, run apart from the proxy so that building rows, masking, the
// append-only log and LanceDB's batch writes never hold up the proxy's event loop.
//
//   process (default)  a child process: LanceDB's memory and any native crash stay out of the proxy;
//                      the child exits when the sidecar goes away, and is restarted if it dies.
//   worker             a worker thread in the sidecar's process.
//   main               the proxy's own thread (used with test seams: functions cannot cross over).
//
// A write resolves once the row is in the log, so "answered" still implies "recorded". Requests the
// store did not answer before it stopped are resent to the next one (reads are idempotent, rows
// are replaced by id), so callers only ever see a delay.
import { fork, type ChildProcess } from "node:child_process";
import os from "node:os";
import path from "node:path";
import v8 from "node:v8";
import { fileURLToPath, pathToFileURL } from "node:url";
import { Worker } from "node:worker_threads";
import { dataPaths, Store, type Filter, type Logger, type QueryOptions, type StoreHealth, type StoreOptions, type TableName, type Tables } from "../core/index.js";
import type { SecretMasker } from "./privacy.js";
import { CallJournal, type JournalIO } from "./journal.js";
import { buildTurn, CachedMasker, refOf, refOfJob, type TurnJob, type TurnRef } from "./turns.js";

export type StoreHost = "process" | "worker" | "main";

export interface RecordStore {
  readonly host: StoreHost;
  /** Answered calls in the proxy's journal, not yet in the store host's log (sidecar/journal.ts). */
  readonly journaled: number;
  /** Builds the turn's row (masking secrets) and writes it; resolves once it is in the log. */
  putTurn(job: TurnJob): Promise<TurnRef>;
  /** Inserts or replaces a row by id; resolves once it is in the log. */
  put<T extends TableName>(table: T, row: Tables[T]): Promise<void>;
  list<T extends TableName>(table: T, q?: QueryOptions<T>): Promise<Tables[T][]>;
  /** Only these fields (and `id`) of the matching rows: no documents decoded, none cross over. */
  listFields<T extends TableName, K extends keyof Tables[T] & string>(table: T, fields: readonly K[], q?: QueryOptions<T>): Promise<Pick<Tables[T], K | ("id" & keyof Tables[T])>[]>;
  get<T extends TableName>(table: T, id: string): Promise<Tables[T] | null>;
  count<T extends TableName>(table: T, where?: Filter<T>): Promise<number>;
  /** The turn with the highest seq among those matching (looked up where the store runs, so the
   *  proxy never receives whole rows for it). */
  lastTurn(where: Filter<"turns">): Promise<TurnRef | null>;
  /** The latest known health (refreshed a few times a second). */
  health(): StoreHealth;
  refreshHealth(): Promise<StoreHealth>;
  /** Memory of a separate store host (null when the store runs on the proxy's thread). */
  memory(): Promise<NodeJS.MemoryUsage | null>;
  flush(): Promise<void>;
  close(): Promise<void>;
}

export interface RecordStoreOptions {
  dataDir: string;
  maskSecrets: boolean;
  secretPatterns: string[];
  logger: Logger;
  logLevel: string;
  /** Extra store options; function seams (`beforeLanceWrite`, `io`) force the main thread. */
  store?: Partial<Omit<StoreOptions, "dataDir" | "writes" | "logger">>;
  host?: StoreHost;
  /**
   * How much lower (nice) the CPU priority of a store host in a process of its own is than the
   * proxy's. Answers wait on the journal, not on the store, so when the machine is busy (a burst of
   * calls, a model server on the same cores) the store's catching up yields to the proxy; past the
   * journal's bound answers wait for it again, which frees the CPU it needs. Default 0.
   */
  hostNice?: number;
  /**
   * How long a store host in a process or thread of its own may take to report ready (it opens
   * LanceDB) before it is stopped: the open fails, or a restart is tried again later, each try
   * given twice as long as the last (up to 16×). Default 60 s (`sidecar.storeStartTimeoutMs`).
   */
  startTimeoutMs?: number;
  /**
   * How long a store host may take to close (moving its log into LanceDB) before it is stopped,
   * when the sidecar closes it or goes away. Default HOST_CLOSE_DEADLINE_MS.
   */
  closeTimeoutMs?: number;
  /** Also write the `adapters` table (the hot-loading switchboard records through this store). */
  adapters?: boolean;
  /**
   * A store host in a process or thread of its own: journal each turn in the proxy and answer
   * without waiting for the host (sidecar/journal.ts). Default on; `io` and `maxBacklogBytes` (how far
   * the host may lag behind before answers wait for it again) are test seams.
   */
  journal?: boolean | { io?: JournalIO; maxBacklogBytes?: number };
}

/** Rows per LanceDB batch: bounds how long one batch keeps the store thread busy. */
const FLUSH_BATCH = 64;
/**
 * A LanceDB write costs a few milliseconds of CPU however few rows it carries (a new fragment and
 * version): at a call every few seconds, writing once a second instead of four times costs a
 * fraction. Rows are safe in the log meanwhile, and this sidecar's own reads see them.
 */
const FLUSH_INTERVAL_MS = 1_000;

/**
 * How long a store host may take to close before it is stopped (by the sidecar), or exits on its
 * own (a child process whose sidecar went away). Nothing is lost by cutting the close short: every
 * call the proxy answered is in its journal until the host's log has it, the log is moved into
 * LanceDB by the next open, and the next sidecar start replays the journal. What is at stake is a
 * host that lingers holding the table locks, so that the next sidecar cannot start.
 */
export const HOST_CLOSE_DEADLINE_MS = 10_000;
/** After a clean close, how long a store process gets to exit on its own before it is killed. */
const HOST_EXIT_GRACE_MS = 2_000;
/** How long a store host may take to open (a starved machine is slow; a hung LanceDB is not). */
export const HOST_START_DEADLINE_MS = 60_000;

/** The tables a sidecar's store host writes. */
export function recordTables(adapters: boolean): TableName[] {
  return adapters ? ["turns", "next_states", "adapters"] : ["turns", "next_states"];
}

export async function openRecordStore(opts: RecordStoreOptions): Promise<RecordStore> {
  const seams = opts.store?.beforeLanceWrite !== undefined || opts.store?.io !== undefined;
  const host = seams ? "main" : (opts.host ?? "process");
  if (host === "main") {
    const store = await Store.open({
      flushBatch: FLUSH_BATCH,
      flushIntervalMs: FLUSH_INTERVAL_MS,
      ...opts.store,
      dataDir: opts.dataDir,
      writes: recordTables(opts.adapters ?? false),
      logger: opts.logger,
    });
    return new InlineRecordStore(store, new CachedMasker(opts.maskSecrets, opts.secretPatterns));
  }
  return RemoteRecordStore.open(opts, host);
}

/** The fields of a turn the rest of the sidecar needs (no request or response is read for them). */
const REF_FIELDS = ["sessionId", "runId", "callId", "seq", "turnType", "status"] as const;

/** The turn with the highest seq among those matching `where`. */
export async function lastTurn(store: Store, where: Filter<"turns">): Promise<TurnRef | null> {
  let best: TurnRef | null = null;
  for (const t of await store.listFields("turns", REF_FIELDS, { where })) if (!best || t.seq > best.seq) best = t;
  return best;
}

/**
 * Writes turn rows where the store runs. A job without its place in the session (seq null) is
 * numbered next after the session's last turn, which takes a read; so that a later job (the same
 * turn numbered, or the session's next one) never overtakes it, puts wait in line behind such a job.
 * Such a job that is `resent` may have been numbered and written already (by a store host that died
 * before acknowledging it, or before a sidecar that died heard of it): it keeps the number it has, or
 * it would be numbered after itself, leaving a gap where it was.
 */
export class TurnWriter {
  private line: Promise<unknown> = Promise.resolve();
  private waiting = 0;

  constructor(
    private readonly store: Store,
    private readonly masker: SecretMasker,
  ) {}

  /** `resent`: the job may have been written before (a host restart, the journal's replay). */
  put(job: TurnJob, resent = false): Promise<TurnRef> {
    if (job.seq !== null && this.waiting === 0) {
      // A row that cannot be built rejects, as from the queued path, instead of throwing.
      try {
        return Promise.resolve(this.write({ ...job, seq: job.seq }, resent));
      } catch (err) {
        return Promise.reject(err);
      }
    }
    this.waiting++;
    const done = this.line.then(async () => {
      try {
        let seq = job.seq;
        if (seq === null && resent) seq = await this.seqOf(job.turnId);
        seq ??= ((await lastTurn(this.store, { sessionId: job.sessionId }))?.seq ?? -1) + 1;
        return this.write({ ...job, seq }, resent);
      } finally {
        this.waiting--;
      }
    });
    this.line = done.catch(() => undefined);
    return done;
  }

  /** The seq of the turn's row, if the store has one. */
  private async seqOf(turnId: string): Promise<number | null> {
    const [row] = await this.store.listFields("turns", ["seq"], { where: { id: turnId }, limit: 1 });
    return row?.seq ?? null;
  }

  private write(job: TurnJob & { seq: number }, resent: boolean): TurnRef {
    const turn = buildTurn(job, this.masker);
    this.store.put("turns", turn, { insert: !resent && !job.replaces });
    return refOf(turn);
  }
}

export class InlineRecordStore implements RecordStore {
  readonly host = "main" as const;
  /** Rows go to the store's log directly: nothing is journaled. */
  readonly journaled = 0;
  private readonly turns: TurnWriter;

  constructor(
    readonly store: Store,
    masker: SecretMasker,
  ) {
    this.turns = new TurnWriter(store, masker);
  }

  putTurn(job: TurnJob): Promise<TurnRef> {
    return this.turns.put(job);
  }

  async put<T extends TableName>(table: T, row: Tables[T]): Promise<void> {
    this.store.put(table, row);
  }

  list<T extends TableName>(table: T, q?: QueryOptions<T>): Promise<Tables[T][]> {
    return this.store.list(table, q);
  }

  listFields<T extends TableName, K extends keyof Tables[T] & string>(table: T, fields: readonly K[], q?: QueryOptions<T>): Promise<Pick<Tables[T], K | ("id" & keyof Tables[T])>[]> {
    return this.store.listFields(table, fields, q);
  }

  get<T extends TableName>(table: T, id: string): Promise<Tables[T] | null> {
    return this.store.get(table, id);
  }

  count<T extends TableName>(table: T, where?: Filter<T>): Promise<number> {
    return this.store.count(table, where);
  }

  lastTurn(where: Filter<"turns">): Promise<TurnRef | null> {
    return lastTurn(this.store, where);
  }

  health(): StoreHealth {
    return this.store.health();
  }

  async refreshHealth(): Promise<StoreHealth> {
    return this.store.health();
  }

  async memory(): Promise<NodeJS.MemoryUsage | null> {
    return null;
  }

  flush(): Promise<void> {
    return this.store.flush();
  }

  close(): Promise<void> {
    return this.store.close();
  }
}

// ---------------------------------------------------------------------------------------------
// The store in a child process or a worker thread

/**
 * Token ids and log-probs cross to the store host as typed arrays: copied as bytes, where a
 * ~10k-element number array (an agent's prompt) costs ~1 ms to serialize and again to read back.
 */
interface WireIds {
  promptTokenIds: Int32Array | null;
  completionTokenIds: Int32Array | null;
  completionLogprobs: Float64Array | null;
}

function toWire(job: TurnJob): TurnJob {
  const a = job.assembled;
  if (!a) return job;
  const ids: WireIds = {
    promptTokenIds: a.promptTokenIds && new Int32Array(a.promptTokenIds),
    completionTokenIds: a.completionTokenIds && new Int32Array(a.completionTokenIds),
    completionLogprobs: a.completionLogprobs && new Float64Array(a.completionLogprobs),
  };
  return { ...job, assembled: { ...a, ...(ids as unknown as Pick<NonNullable<TurnJob["assembled"]>, keyof WireIds>) } };
}

/** A job as it crosses to the store host and sits in the journal: one v8-serialized buffer. */
export function encodeJob(job: TurnJob): Buffer {
  return v8.serialize(toWire(job));
}

export function decodeJob(bytes: Uint8Array): TurnJob {
  return fromWire(v8.deserialize(bytes) as TurnJob);
}

/** The job as the proxy made it, in the store host. */
function fromWire(job: TurnJob): TurnJob {
  const a = job.assembled as (NonNullable<TurnJob["assembled"]> & Partial<Record<keyof WireIds, ArrayLike<number> | null>>) | null;
  if (!a) return job;
  // A plain loop: Array.from goes through the iterator protocol, ~10× slower on typed arrays.
  const plain = (v: ArrayLike<number> | null | undefined) => {
    if (!v) return null;
    const out = new Array<number>(v.length);
    for (let i = 0; i < v.length; i++) out[i] = v[i]!;
    return out;
  };
  return { ...job, assembled: { ...a, promptTokenIds: plain(a.promptTokenIds), completionTokenIds: plain(a.completionTokenIds), completionLogprobs: plain(a.completionLogprobs) } };
}

/** Sent to the store host at start (worker data, or an environment variable for a process). */
export interface StoreWorkerData {
  dataDir: string;
  maskSecrets: boolean;
  secretPatterns: string[];
  logLevel: string;
  adapters: boolean;
  store: Partial<Omit<StoreOptions, "dataDir" | "writes" | "logger" | "io" | "beforeLanceWrite">>;
  /** A child process whose sidecar went away exits this long after, closed or not. */
  exitDeadlineMs: number;
}

export const STORE_DATA_ENV = "CLAWLOOP_SIDECAR_STORE_DATA";

export type StoreRequest =
  /** `resent`: a restarted host may already hold the row, so it is merged by id, never appended. */
  | { id: number; op: "putTurn"; bytes: Uint8Array; resent?: boolean }
  | { id: number; op: "put"; table: TableName; row: unknown }
  | { id: number; op: "list"; table: TableName; q?: QueryOptions<TableName> }
  | { id: number; op: "listFields"; table: TableName; fields: string[]; q?: QueryOptions<TableName> }
  | { id: number; op: "get"; table: TableName; key: string }
  | { id: number; op: "count"; table: TableName; where?: Filter<TableName> }
  | { id: number; op: "lastTurn"; where: Filter<"turns"> }
  | { id: number; op: "health" }
  | { id: number; op: "memory" }
  | { id: number; op: "flush" }
  | { id: number; op: "close" };

export type StoreMessage =
  | { type: "ready"; health: StoreHealth }
  | { type: "failed"; error: string }
  | { type: "health"; health: StoreHealth }
  | { type: "reply"; id: number; ok: true; value: unknown }
  | { type: "reply"; id: number; ok: false; error: string };

type Payload = StoreRequest extends infer R ? (R extends { id: number } ? Omit<R, "id"> : never) : never;

interface Pending {
  payload: Payload;
  /** The store host it was posted to (0: none yet, no host was ready). */
  gen: number;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
}

/** Everything but `close` is resent to a restarted store host (reads are idempotent; writes replace by id). */
const RESENDABLE = new Set(["putTurn", "put", "list", "listFields", "get", "count", "lastTurn", "health", "memory", "flush"]);

/** A store host: a child process or a worker thread, behind the same few operations. */
interface Channel {
  post(m: StoreRequest | (StoreRequest & { resent: true })): void;
  on(event: "message", fn: (m: StoreMessage) => void): void;
  on(event: "exit", fn: (code: number | null, signal?: NodeJS.Signals | null) => void): void;
  on(event: "error", fn: (err: Error) => void): void;
  /** Stops the host at once. */
  kill(): Promise<void>;
  /** Lets a host that has closed its store end on its own (its exit handlers run), killing it past `graceMs`. */
  stop(graceMs: number): Promise<void>;
}

/** The store host's entry: TypeScript through tsx (a dev dependency) when running from source. */
function entry(): { file: string; fromSource: boolean } {
  const here = fileURLToPath(import.meta.url);
  const fromSource = here.endsWith(".ts");
  return { file: path.join(path.dirname(here), fromSource ? "store-worker.ts" : "store-worker.js"), fromSource };
}

/**
 * Memory settings of the store process, measured with bench:proxy (10,000 OpenClaw-sized turns):
 * - glibc's per-thread malloc arenas (LanceDB's runtime runs many threads) held ~50 MB that two
 *   arenas do not;
 * - a fixed mmap threshold: glibc otherwise raises it to the size of any large block it frees, after
 *   which every ~50 KB message buffer comes from the main heap, which fragments and only grows
 *   (~5 MB per 1,000 turns); with blocks of 64 KB and more mapped and unmapped on their own, and
 *   free memory at the top of the heap returned past 128 KB, the store stayed ~40 MB smaller and no
 *   longer grew with the turns, at no measurable CPU cost;
 * - a small young generation suits a process whose garbage is one message deep, and an old
 *   generation that grows by 30% (not up to 4×) between full collections kept its V8 heap at ~30 MB
 *   instead of 50–70 (its live data is ~20 MB) at no CPU cost bench:proxy could tell from noise.
 * (`--optimize-for-size` took as much off but cost ~45% more CPU per row: not used.)
 */
const STORE_EXEC_ARGV = ["--max-semi-space-size=2", "--heap-growing-percent=30"];
const STORE_MALLOC_ENV = { MALLOC_ARENA_MAX: "2", MALLOC_MMAP_THRESHOLD_: "65536", MALLOC_TRIM_THRESHOLD_: "131072" };
/** The same young generation for a store thread (semi-spaces of 2 MB: V8 sizes it at three of them). */
const STORE_THREAD_LIMITS = { maxYoungGenerationSizeMb: 6 };

function processChannel(data: StoreWorkerData, nice: number, logger: Logger): Channel {
  const { file, fromSource } = entry();
  const child: ChildProcess = fork(file, [], {
    execArgv: [...(fromSource ? ["--import", "tsx"] : []), ...STORE_EXEC_ARGV],
    serialization: "advanced",
    env: { ...STORE_MALLOC_ENV, ...process.env, [STORE_DATA_ENV]: JSON.stringify(data) },
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  if (nice > 0 && child.pid !== undefined) {
    try {
      os.setPriority(child.pid, Math.min(19, os.getPriority() + nice));
    } catch (err) {
      logger.warn({ err: String(err) }, "could not lower the store process's priority; it runs at the proxy's");
    }
  }
  const exited = () => child.exitCode !== null || child.signalCode !== null;
  const kill = () =>
    new Promise<void>((resolve) => {
      if (exited()) return resolve();
      child.once("exit", () => resolve());
      child.kill("SIGKILL");
    });
  return {
    post: (m) => {
      if (child.connected) child.send(m);
    },
    on: ((event: string, fn: (...args: unknown[]) => void) => void child.on(event, fn)) as Channel["on"],
    kill,
    // The host leaves when its channel closes (store-worker.ts), after closing its store: here that
    // is done already, so it only has to exit.
    stop: async (graceMs) => {
      if (exited()) return;
      const gone = new Promise<boolean>((resolve) => child.once("exit", () => resolve(true)));
      if (child.connected) child.disconnect();
      let timer: NodeJS.Timeout | undefined;
      const inTime = await Promise.race([gone, new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), graceMs)))]);
      clearTimeout(timer);
      if (!inTime) await kill();
    },
  };
}

function threadChannel(data: StoreWorkerData): Channel {
  const { file, fromSource } = entry();
  const worker = fromSource
    ? new Worker(`import("tsx/esm/api").then((m) => m.tsImport(${JSON.stringify(pathToFileURL(file).href)}, ${JSON.stringify(import.meta.url)}));`, {
        eval: true,
        workerData: data,
        name: "clawloop-store",
        resourceLimits: STORE_THREAD_LIMITS,
      })
    : new Worker(file, { workerData: data, name: "clawloop-store", resourceLimits: STORE_THREAD_LIMITS });
  return {
    post: (m) => worker.postMessage(m),
    on: ((event: string, fn: (...args: unknown[]) => void) => void worker.on(event, fn)) as Channel["on"],
    kill: async () => {
      await worker.terminate();
    },
    stop: async () => {
      await worker.terminate();
    },
  };
}

/**
 * Journaled calls the store host may lag behind by before answers wait for it again: a burst of 64
 * OpenClaw-sized calls (~90 KB each with their ids) fits; a sustained overload does not grow the
 * proxy's memory much past it (bench:proxy, 10,000 unpaced 44 KB calls: with 16 MB the proxy ended
 * at 234 MB RSS, unbounded at 1.7 GB).
 */
const MAX_BACKLOG_BYTES = 8 * 1024 * 1024;

export class RemoteRecordStore implements RecordStore {
  private channel!: Channel;
  /** The current host reported ready (requests are posted to it only then). */
  private ready = false;
  private readonly journal: CallJournal | null;
  /** Bytes of journaled calls sent to the host and not yet acknowledged. */
  private backlogBytes = 0;
  private readonly maxBacklogBytes: number;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private latest: StoreHealth;
  private closing = false;
  private closed: Promise<void> | null = null;
  private restarts = 0;
  /** Starts in a row that failed (a host that exited, failed or timed out while opening). */
  private failedStarts = 0;
  private restartTimer: NodeJS.Timeout | null = null;
  private gen = 0;

  private constructor(
    private readonly opts: RecordStoreOptions,
    readonly host: "process" | "worker",
  ) {
    this.latest = { ok: true, lance: "ok", log: "ok", lastError: null, tables: {} };
    const j = opts.journal ?? true;
    this.journal = j
      ? CallJournal.open({ dir: dataPaths(opts.dataDir).journal, logger: opts.logger, fsync: opts.store?.fsync, io: typeof j === "object" ? j.io : undefined })
      : null;
    this.maxBacklogBytes = (typeof j === "object" ? j.maxBacklogBytes : undefined) ?? MAX_BACKLOG_BYTES;
  }

  static async open(opts: RecordStoreOptions, host: "process" | "worker"): Promise<RemoteRecordStore> {
    const s = new RemoteRecordStore(opts, host);
    try {
      await s.start();
    } catch (err) {
      // The host is stopped already; what the journal holds stays for the next start.
      s.closing = true;
      s.journal?.close();
      throw err;
    }
    await s.replayJournal();
    return s;
  }

  /**
   * Turns a sidecar that stopped had answered and journaled, sent to the store host again before
   * anything else (it replaces rows by id: a turn that had made it is not recorded twice).
   */
  private async replayJournal(): Promise<void> {
    const j = this.journal;
    if (!j) return;
    for (const segment of j.leftover) {
      const { entries, torn } = j.readLeftover(segment);
      const results = await Promise.allSettled(entries.map((bytes) => this.call<TurnRef>({ op: "putTurn", bytes, resent: true })));
      const failed = results.filter((r) => r.status === "rejected");
      for (const f of failed.slice(0, 3)) this.opts.logger.error({ err: String((f as PromiseRejectedResult).reason) }, "a journaled turn could not be stored");
      this.opts.logger.info({ segment, turns: entries.length - failed.length, failed: failed.length, torn }, "turns from the call journal sent to the store");
      j.dropLeftover(segment);
    }
  }

  /**
   * Starts a store host and resolves once it reports ready; rejects, with the host stopped, if it
   * fails, exits or does not report ready in time. A host that stops after that is restarted.
   */
  private start(): Promise<void> {
    const data: StoreWorkerData = {
      dataDir: this.opts.dataDir,
      maskSecrets: this.opts.maskSecrets,
      secretPatterns: this.opts.secretPatterns,
      logLevel: this.opts.logLevel,
      adapters: this.opts.adapters ?? false,
      store: { flushBatch: FLUSH_BATCH, flushIntervalMs: FLUSH_INTERVAL_MS, ...this.opts.store },
      exitDeadlineMs: this.opts.closeTimeoutMs ?? HOST_CLOSE_DEADLINE_MS,
    };
    const channel = this.host === "process" ? processChannel(data, this.opts.hostNice ?? 0, this.opts.logger) : threadChannel(data);
    this.channel = channel;
    this.ready = false;
    const gen = ++this.gen;
    // A host that was merely slow (a starved machine) gets longer on each try after a timeout.
    const timeoutMs = (this.opts.startTimeoutMs ?? HOST_START_DEADLINE_MS) * 2 ** Math.min(this.failedStarts, 4);
    return new Promise<void>((resolve, reject) => {
      let ready = false;
      let settled = false;
      const fail = (err: Error) => {
        if (settled) return;
        settled = true;
        clearTimeout(deadline);
        void channel.kill().then(() => reject(err));
      };
      const deadline = setTimeout(
        () =>
          fail(
            new Error(
              `the store ${this.host} did not report ready within ${timeoutMs / 1000} s (opening LanceDB in ${this.opts.dataDir}); ` +
                "is another sidecar using this data directory, or is the machine overloaded?",
            ),
          ),
        timeoutMs,
      );
      channel.on("message", (m: StoreMessage) => {
        if (m.type === "ready") {
          if (settled) return;
          settled = ready = true;
          clearTimeout(deadline);
          this.ready = true;
          this.failedStarts = 0;
          this.latest = m.health;
          // Requests the last host never acknowledged, and those made while none was ready.
          for (const [id, p] of this.pending) {
            if (p.gen === gen) continue;
            if (RESENDABLE.has(p.payload.op)) {
              const resent = p.gen !== 0;
              p.gen = gen;
              channel.post({ id, ...p.payload, ...(resent ? { resent } : {}) } as StoreRequest);
            } else {
              this.pending.delete(id);
              p.reject(new Error("the store restarted"));
            }
          }
          resolve();
        } else if (m.type === "failed") {
          fail(new Error(m.error));
        } else if (m.type === "health") {
          this.latest = m.health;
        } else {
          const p = this.pending.get(m.id);
          if (!p) return;
          this.pending.delete(m.id);
          if (m.ok) p.resolve(m.value);
          else p.reject(new Error(m.error));
        }
      });
      channel.on("error", (err: Error) => {
        this.opts.logger.error({ err: String(err) }, `store ${this.host} failed`);
        fail(err);
      });
      channel.on("exit", (code: number | null, signal?: NodeJS.Signals | null) => {
        if (!ready) {
          fail(new Error(`the store ${this.host} exited while starting (${code})`));
          return;
        }
        if (this.closing) {
          this.opts.logger.debug({ code, signal: signal ?? null }, `store ${this.host} ended`);
          return;
        }
        this.ready = false;
        this.restartLater(`store ${this.host} exited (${code})`);
      });
    });
  }

  /**
   * Starts the store host again after a backoff, and again after that for as long as starting fails
   * (the journal keeps taking calls meanwhile; health says why the store is not ok).
   */
  private restartLater(reason: string): void {
    this.restarts++;
    const delay = Math.min(5_000, 100 * 2 ** Math.min(this.restarts, 6));
    this.latest = { ...this.latest, ok: false, lastError: `${reason}; restarting it` };
    this.opts.logger.error({ reason, delay }, `store ${this.host} stopped; restarting it (writes not acknowledged are resent)`);
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null;
      if (this.closing) return;
      this.start().catch((err: unknown) => {
        if (this.closing) return;
        this.failedStarts++;
        this.restartLater(`store ${this.host} restart failed: ${err instanceof Error ? err.message : String(err)}`);
      });
    }, delay);
    this.restartTimer.unref();
  }

  /** How often a store host was started again (after it stopped, or after a restart that failed). */
  get restartCount(): number {
    return this.restarts;
  }

  /**
   * Stops the store host as a crash would; it is started again and the writes it had not
   * acknowledged are resent (rows are replaced by id, so a repeat is harmless).
   */
  async restart(): Promise<void> {
    await this.channel.kill();
  }

  /** Posted to the host if one is ready; otherwise kept, and posted to the next one once it is. */
  private call<T>(payload: Payload): Promise<T> {
    if (this.closing && payload.op !== "close") return Promise.reject(new Error("store is closed"));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { payload, gen: this.ready ? this.gen : 0, resolve: resolve as (v: unknown) => void, reject });
      if (this.ready) this.channel.post({ id, ...payload } as StoreRequest);
    });
  }

  /**
   * Resolves once the turn is in the journal (at once), or, when the journal cannot be written, once
   * the store host has it in its log.
   */
  putTurn(job: TurnJob): Promise<TurnRef> {
    const bytes = encodeJob(job);
    const segment = this.journal?.append(bytes) ?? null;
    const stored = this.call<TurnRef>({ op: "putTurn", bytes });
    if (segment === null) return stored;
    const journal = this.journal!;
    this.backlogBytes += bytes.length;
    const settle = () => {
      this.backlogBytes -= bytes.length;
      journal.finished(segment);
    };
    stored.then(settle, (err: unknown) => {
      // Closed before the host had it: the journal keeps it for the next start.
      if (this.closing) return;
      settle();
      this.opts.logger.error({ err: String(err), turnId: job.turnId }, "the store host could not record an answered call");
    });
    // A host that falls behind for good (more calls than it can store, sustained) slows the answers
    // down to its pace again, as without a journal, instead of the backlog growing in memory.
    if (this.backlogBytes > this.maxBacklogBytes) return stored;
    return Promise.resolve(refOfJob(job));
  }

  /** Answered calls journaled but not yet in the store host's log. */
  get journaled(): number {
    return this.journal?.unfinished ?? 0;
  }

  put<T extends TableName>(table: T, row: Tables[T]): Promise<void> {
    return this.call<void>({ op: "put", table, row });
  }

  list<T extends TableName>(table: T, q?: QueryOptions<T>): Promise<Tables[T][]> {
    return this.call<Tables[T][]>({ op: "list", table, q: q as QueryOptions<TableName> | undefined });
  }

  listFields<T extends TableName, K extends keyof Tables[T] & string>(table: T, fields: readonly K[], q?: QueryOptions<T>): Promise<Pick<Tables[T], K | ("id" & keyof Tables[T])>[]> {
    return this.call({ op: "listFields", table, fields: [...fields], q: q as QueryOptions<TableName> | undefined });
  }

  get<T extends TableName>(table: T, key: string): Promise<Tables[T] | null> {
    return this.call<Tables[T] | null>({ op: "get", table, key });
  }

  count<T extends TableName>(table: T, where?: Filter<T>): Promise<number> {
    return this.call<number>({ op: "count", table, where: where as Filter<TableName> | undefined });
  }

  lastTurn(where: Filter<"turns">): Promise<TurnRef | null> {
    return this.call<TurnRef | null>({ op: "lastTurn", where });
  }

  health(): StoreHealth {
    return this.latest;
  }

  /** While no host is ready, the latest known health (not ok, with the reason) at once. */
  async refreshHealth(): Promise<StoreHealth> {
    if (!this.ready) return this.latest;
    this.latest = await this.call<StoreHealth>({ op: "health" });
    return this.latest;
  }

  memory(): Promise<NodeJS.MemoryUsage | null> {
    if (!this.ready) return Promise.reject(new Error(`the store ${this.host} is not running`));
    return this.call<NodeJS.MemoryUsage>({ op: "memory" });
  }

  flush(): Promise<void> {
    return this.call<void>({ op: "flush" });
  }

  /**
   * Asks the host to close (its log moved into LanceDB) for up to `closeTimeoutMs`, then stops it.
   * Requests still unanswered are rejected; answered calls the host did not have stay journaled.
   */
  close(): Promise<void> {
    this.closed ??= this.shutDown();
    return this.closed;
  }

  private async shutDown(): Promise<void> {
    this.closing = true;
    let graceful = false;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    try {
      if (this.ready) {
        const ms = this.opts.closeTimeoutMs ?? HOST_CLOSE_DEADLINE_MS;
        let timer: NodeJS.Timeout | undefined;
        const inTime = await Promise.race([
          this.call<void>({ op: "close" }).then(() => true),
          new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms))),
        ]).finally(() => clearTimeout(timer));
        if (!inTime) this.opts.logger.warn({ ms }, `the store ${this.host} did not close in time; stopping it (its log is moved into LanceDB at the next start)`);
        else graceful = true;
      }
    } finally {
      this.ready = false;
      await (graceful ? this.channel.stop(HOST_EXIT_GRACE_MS) : this.channel.kill());
      this.journal?.close();
      for (const p of this.pending.values()) p.reject(new Error("store is closed"));
      this.pending.clear();
    }
  }
}
