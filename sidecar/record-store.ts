// Where the sidecar writes: the store, run on a worker thread by default so that building rows,
// masking, the append-only log and LanceDB's batch writes never hold up the proxy's event loop.
// A write resolves once the row is in the log, so "answered" still implies "recorded".
//
// `InlineRecordStore` runs the same store on the calling thread; it is used when the store is given
// test seams (functions cannot cross threads) or when asked for.
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { Worker } from "node:worker_threads";
import { Store, type Filter, type Logger, type QueryOptions, type StoreHealth, type StoreOptions, type TableName, type Tables } from "../core/index.js";
import { SecretMasker } from "./privacy.js";
import { buildTurn, refOf, type TurnJob, type TurnRef } from "./turns.js";

export interface RecordStore {
  readonly thread: "main" | "worker";
  /** Builds the turn's row (masking secrets) and writes it; resolves once it is in the log. */
  putTurn(job: TurnJob): Promise<TurnRef>;
  /** Inserts or replaces a row by id; resolves once it is in the log. */
  put<T extends TableName>(table: T, row: Tables[T]): Promise<void>;
  list<T extends TableName>(table: T, q?: QueryOptions<T>): Promise<Tables[T][]>;
  get<T extends TableName>(table: T, id: string): Promise<Tables[T] | null>;
  count<T extends TableName>(table: T, where?: Filter<T>): Promise<number>;
  /** The latest known health (refreshed a few times a second). */
  health(): StoreHealth;
  refreshHealth(): Promise<StoreHealth>;
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
  thread?: "main" | "worker";
}

const WRITES: TableName[] = ["turns", "next_states"];
/** Rows per LanceDB batch: bounds how long one batch keeps the store thread busy. */
const FLUSH_BATCH = 64;

export async function openRecordStore(opts: RecordStoreOptions): Promise<RecordStore> {
  const seams = opts.store?.beforeLanceWrite !== undefined || opts.store?.io !== undefined;
  if (opts.thread === "main" || seams) {
    const store = await Store.open({ flushBatch: FLUSH_BATCH, ...opts.store, dataDir: opts.dataDir, writes: WRITES, logger: opts.logger });
    return new InlineRecordStore(store, new SecretMasker(opts.maskSecrets, opts.secretPatterns));
  }
  return WorkerRecordStore.open(opts);
}

export class InlineRecordStore implements RecordStore {
  readonly thread = "main" as const;

  constructor(
    readonly store: Store,
    private readonly masker: SecretMasker,
  ) {}

  async putTurn(job: TurnJob): Promise<TurnRef> {
    const turn = buildTurn(job, this.masker);
    this.store.put("turns", turn, { insert: true });
    return refOf(turn);
  }

  async put<T extends TableName>(table: T, row: Tables[T]): Promise<void> {
    this.store.put(table, row);
  }

  list<T extends TableName>(table: T, q?: QueryOptions<T>): Promise<Tables[T][]> {
    return this.store.list(table, q);
  }

  get<T extends TableName>(table: T, id: string): Promise<Tables[T] | null> {
    return this.store.get(table, id);
  }

  count<T extends TableName>(table: T, where?: Filter<T>): Promise<number> {
    return this.store.count(table, where);
  }

  health(): StoreHealth {
    return this.store.health();
  }

  async refreshHealth(): Promise<StoreHealth> {
    return this.store.health();
  }

  flush(): Promise<void> {
    return this.store.flush();
  }

  close(): Promise<void> {
    return this.store.close();
  }
}

// ---------------------------------------------------------------------------------------------
// The worker-thread store

/** Sent to the store thread at start. */
export interface StoreWorkerData {
  dataDir: string;
  maskSecrets: boolean;
  secretPatterns: string[];
  logLevel: string;
  store: Partial<Omit<StoreOptions, "dataDir" | "writes" | "logger" | "io" | "beforeLanceWrite">>;
}

export type StoreRequest =
  /** `resent`: a restarted thread may already hold the row, so it is merged by id, never appended. */
  | { id: number; op: "putTurn"; job: TurnJob; resent?: boolean }
  | { id: number; op: "put"; table: TableName; row: unknown }
  | { id: number; op: "list"; table: TableName; q?: QueryOptions<TableName> }
  | { id: number; op: "get"; table: TableName; key: string }
  | { id: number; op: "count"; table: TableName; where?: Filter<TableName> }
  | { id: number; op: "health" }
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
  /** The store thread it was posted to. */
  gen: number;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
}

/** Writes are resent to a restarted store thread; reads are not (their callers retry or give up). */
const RESENDABLE = new Set(["putTurn", "put"]);

function workerScript(): { script: string | URL; eval: boolean } {
  const here = fileURLToPath(import.meta.url);
  if (here.endsWith(".ts")) {
    // Running from source (tests, tsx): load the TypeScript worker through tsx, a dev dependency.
    const target = pathToFileURL(path.join(path.dirname(here), "store-worker.ts")).href;
    return { script: `import("tsx/esm/api").then((m) => m.tsImport(${JSON.stringify(target)}, ${JSON.stringify(import.meta.url)}));`, eval: true };
  }
  return { script: new URL("./store-worker.js", import.meta.url), eval: false };
}

export class WorkerRecordStore implements RecordStore {
  readonly thread = "worker" as const;
  private worker!: Worker;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private latest: StoreHealth;
  private closing = false;
  private restarts = 0;
  private gen = 0;

  private constructor(
    private readonly opts: RecordStoreOptions,
    health: StoreHealth,
  ) {
    this.latest = health;
  }

  static async open(opts: RecordStoreOptions): Promise<WorkerRecordStore> {
    const s = new WorkerRecordStore(opts, { ok: true, lance: "ok", log: "ok", lastError: null, tables: {} });
    await s.start();
    return s;
  }

  private start(): Promise<void> {
    const { script, eval: isEval } = workerScript();
    const data: StoreWorkerData = {
      dataDir: this.opts.dataDir,
      maskSecrets: this.opts.maskSecrets,
      secretPatterns: this.opts.secretPatterns,
      logLevel: this.opts.logLevel,
      store: { flushBatch: FLUSH_BATCH, ...this.opts.store },
    };
    const worker = new Worker(script, { eval: isEval, workerData: data, name: "clawloop-store" });
    this.worker = worker;
    const gen = ++this.gen;
    return new Promise<void>((resolve, reject) => {
      let ready = false;
      worker.on("message", (m: StoreMessage) => {
        if (m.type === "ready") {
          ready = true;
          this.latest = m.health;
          // A restarted thread gets the writes the last one never acknowledged.
          for (const [id, p] of this.pending) {
            if (p.gen === gen) continue;
            if (RESENDABLE.has(p.payload.op)) {
              p.gen = gen;
              worker.postMessage({ id, ...p.payload, resent: true });
            } else {
              this.pending.delete(id);
              p.reject(new Error("the store thread restarted"));
            }
          }
          resolve();
        } else if (m.type === "failed") {
          if (!ready) reject(new Error(m.error));
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
      worker.on("error", (err) => {
        this.opts.logger.error({ err: String(err) }, "store thread failed");
        if (!ready) reject(err);
      });
      worker.on("exit", (code) => {
        if (this.closing || !ready) return;
        this.restarts++;
        this.latest = { ...this.latest, ok: false, lastError: `store thread exited (${code}); restarting` };
        const delay = Math.min(5_000, 100 * 2 ** Math.min(this.restarts, 6));
        this.opts.logger.error({ code, delay }, "store thread exited; restarting it (writes not acknowledged are resent)");
        setTimeout(() => void this.start().catch((err: unknown) => this.opts.logger.error({ err: String(err) }, "store thread restart failed")), delay).unref();
      });
    });
  }

  /** How often the store thread was restarted after it stopped. */
  get restartCount(): number {
    return this.restarts;
  }

  /**
   * Stops the store thread as a crash would; it is started again and the writes it had not
   * acknowledged are resent (the log makes the repeats harmless: rows are replaced by id).
   */
  async restart(): Promise<void> {
    await this.worker.terminate();
  }

  private call<T>(payload: Payload): Promise<T> {
    if (this.closing && payload.op !== "close") return Promise.reject(new Error("store is closed"));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { payload, gen: this.gen, resolve: resolve as (v: unknown) => void, reject });
      this.worker.postMessage({ id, ...payload });
    });
  }

  putTurn(job: TurnJob): Promise<TurnRef> {
    return this.call<TurnRef>({ op: "putTurn", job });
  }

  put<T extends TableName>(table: T, row: Tables[T]): Promise<void> {
    return this.call<void>({ op: "put", table, row });
  }

  list<T extends TableName>(table: T, q?: QueryOptions<T>): Promise<Tables[T][]> {
    return this.call<Tables[T][]>({ op: "list", table, q: q as QueryOptions<TableName> | undefined });
  }

  get<T extends TableName>(table: T, key: string): Promise<Tables[T] | null> {
    return this.call<Tables[T] | null>({ op: "get", table, key });
  }

  count<T extends TableName>(table: T, where?: Filter<T>): Promise<number> {
    return this.call<number>({ op: "count", table, where: where as Filter<TableName> | undefined });
  }

  health(): StoreHealth {
    return this.latest;
  }

  async refreshHealth(): Promise<StoreHealth> {
    this.latest = await this.call<StoreHealth>({ op: "health" });
    return this.latest;
  }

  flush(): Promise<void> {
    return this.call<void>({ op: "flush" });
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    try {
      await this.call<void>({ op: "close" });
    } finally {
      await this.worker.terminate();
    }
  }
}
