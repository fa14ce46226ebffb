// The store: LanceDB tables behind per-table append-only logs. Writers never wait on LanceDB:
// `put` logs the row and returns; a background flusher moves rows into LanceDB in batches and
// keeps retrying while LanceDB (or the disk) is failing. One process writes each table.
import fs from "node:fs";
import path from "node:path";
import * as lancedb from "@lancedb/lancedb";
import type { Logger } from "pino";
import { TABLE_NAMES, type TableName, type Tables } from "../types.js";
import { arrowSchema, columnName, decodeRow, encodeRow, sqlString, TABLE_COLUMNS } from "./codec.js";
import { nodeIO, TableLog, type LogIO } from "./wal.js";

export type Filter<T extends TableName> = { [K in keyof Tables[T]]?: string | number | boolean | null };

export interface QueryOptions<T extends TableName> {
  /** Equality filters on fields. */
  where?: Filter<T>;
  /** Extra SQL (DataFusion) predicate over snake_case columns, applied in LanceDB only. */
  sql?: string;
  limit?: number;
  /** Sort by this field (in JS, after the fetch). */
  orderBy?: keyof Tables[T] & string;
  descending?: boolean;
}

export interface StoreOptions {
  dataDir: string;
  /** Tables this process writes (and locks). */
  writes?: TableName[];
  flushIntervalMs?: number;
  /** Flush as soon as this many rows are waiting. */
  flushBatch?: number;
  /** fsync each log append: survives power loss, not just process death. */
  fsync?: boolean;
  /** Rows kept in memory while LanceDB is down; beyond this they wait only in the log. */
  maxPendingRows?: number;
  logger?: Logger;
  /** Test seams: file operations of the log, and a hook run before every LanceDB write. */
  io?: LogIO;
  beforeLanceWrite?: (table: TableName) => void;
}

export interface TableHealth {
  pending: number;
  /** Rows acknowledged but not in the log (the log itself is failing). */
  unlogged: number;
  logBytes: number;
  lastFlushAt: string | null;
  lastError: string | null;
}

export interface StoreHealth {
  ok: boolean;
  lance: "ok" | "failing";
  log: "ok" | "failing";
  lastError: string | null;
  tables: Partial<Record<TableName, TableHealth>>;
}

interface PendingRow {
  row: Record<string, unknown>;
  /** Bumped on every put, so a flush only clears what it wrote. */
  gen: number;
  /** Known to be new (plain append) vs possibly already stored (merge on id). */
  insert: boolean;
  logged: boolean;
}

class TableWriter {
  pending = new Map<string, PendingRow>();
  /** Rows dropped from memory while LanceDB was down: re-read from the log on recovery. */
  evicted = false;
  gen = 0;
  lastFlushAt: string | null = null;
  lastError: string | null = null;
  logFailing = false;

  constructor(
    readonly name: TableName,
    readonly log: TableLog,
  ) {}

  health(): TableHealth {
    let unlogged = 0;
    for (const p of this.pending.values()) if (!p.logged) unlogged++;
    return {
      pending: this.pending.size,
      unlogged,
      logBytes: this.log.end,
      lastFlushAt: this.lastFlushAt,
      lastError: this.lastError,
    };
  }
}

const LOCK_SUFFIX = ".lock";

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

export class Store {
  private db: lancedb.Connection | null = null;
  private tables = new Map<TableName, lancedb.Table>();
  private writers = new Map<TableName, TableWriter>();
  private timer: NodeJS.Timeout | null = null;
  private flushing: Promise<void> | null = null;
  private lanceError: string | null = null;
  private flushCount = 0;
  private closed = false;
  readonly dir: string;
  private readonly logDir: string;

  private constructor(private readonly opts: StoreOptions) {
    this.dir = path.join(opts.dataDir, "store");
    this.logDir = path.join(opts.dataDir, "log");
  }

  static async open(opts: StoreOptions): Promise<Store> {
    const store = new Store(opts);
    await store.init();
    return store;
  }

  private async init(): Promise<void> {
    fs.mkdirSync(this.dir, { recursive: true });
    const io = this.opts.io ?? nodeIO;
    if (this.opts.writes?.length) fs.mkdirSync(this.logDir, { recursive: true });
    for (const name of this.opts.writes ?? []) {
      this.lock(name);
      const w = new TableWriter(name, new TableLog(this.logDir, name, { fsync: this.opts.fsync ?? false, io }));
      const { records, skipped } = w.log.recover();
      if (skipped) this.opts.logger?.warn({ table: name, skipped }, "skipped unreadable log records");
      for (const rec of records) {
        const id = String(rec.row.id);
        w.pending.set(id, { row: rec.row, gen: ++w.gen, insert: false, logged: true });
      }
      this.writers.set(name, w);
    }
    try {
      await this.connect();
      for (const name of this.writers.keys()) await this.table(name);
    } catch (err) {
      this.lanceError = errorText(err);
      this.opts.logger?.error({ err: this.lanceError }, "LanceDB unavailable; rows wait in the log");
    }
    if (this.writers.size) {
      await this.flush().catch(() => undefined);
      this.timer = setInterval(() => void this.flush().catch(() => undefined), this.opts.flushIntervalMs ?? 250);
      this.timer.unref();
    }
  }

  private async connect(): Promise<void> {
    if (!this.db) this.db = await lancedb.connect(this.dir, { readConsistencyInterval: 0 });
  }

  private async table(name: TableName): Promise<lancedb.Table | null> {
    const cached = this.tables.get(name);
    if (cached) return cached;
    await this.connect();
    const db = this.db!;
    const names = await db.tableNames();
    let t: lancedb.Table | null = null;
    if (names.includes(name)) {
      try {
        t = await db.openTable(name);
      } catch (err) {
        // A table whose creation never committed (e.g. the disk filled up mid-create) holds no data:
        // the writer may start it over. Anything else is a real error.
        const dataset = path.join(this.dir, `${name}.lance`);
        if (!this.writers.has(name) || fs.existsSync(path.join(dataset, "_versions"))) throw err;
        fs.rmSync(dataset, { recursive: true, force: true });
      }
    }
    if (!t && this.writers.has(name)) t = await db.createEmptyTable(name, arrowSchema(name), { existOk: true });
    if (t) this.tables.set(name, t);
    return t;
  }

  private lock(name: TableName): void {
    const file = path.join(this.logDir, name + LOCK_SUFFIX);
    try {
      fs.writeFileSync(file, String(process.pid), { flag: "wx" });
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
    const holder = Number(fs.readFileSync(file, "utf8").trim());
    if (holder && holder !== process.pid && pidAlive(holder)) {
      throw new Error(`table "${name}" is already written by process ${holder} (lock ${file})`);
    }
    fs.writeFileSync(file, String(process.pid));
  }

  private writer(name: TableName): TableWriter {
    const w = this.writers.get(name);
    if (!w) throw new Error(`this process does not write table "${name}"`);
    return w;
  }

  /**
   * Records a row (insert or replace by id). Returns once the row is in the log; never throws for
   * I/O: if the log itself cannot be written, the row is kept in memory and retried.
   * `insert` promises the id is new, which lets the flush append instead of merge.
   */
  put<T extends TableName>(name: T, value: Tables[T], opts: { insert?: boolean } = {}): void {
    if (this.closed) throw new Error("store is closed");
    const w = this.writer(name);
    const row = encodeRow(name, value);
    const id = String(row.id);
    const prev = w.pending.get(id);
    const entry: PendingRow = { row, gen: ++w.gen, insert: !prev && (opts.insert ?? false), logged: false };
    try {
      w.log.append({ op: "put", row });
      entry.logged = true;
      w.logFailing = false;
    } catch (err) {
      w.logFailing = true;
      w.lastError = `log: ${errorText(err)}`;
    }
    w.pending.set(id, entry);
    if (w.pending.size >= (this.opts.flushBatch ?? 256)) void this.flush().catch(() => undefined);
    const max = this.opts.maxPendingRows ?? 50_000;
    if (this.lanceError && w.pending.size > max) this.evict(w);
  }

  private evict(w: TableWriter): void {
    for (const [id, p] of w.pending) if (p.logged) w.pending.delete(id);
    w.evicted = true;
  }

  /** Moves waiting rows into LanceDB. Concurrent calls share one flush. */
  async flush(): Promise<void> {
    while (this.flushing) await this.flushing;
    this.flushing = this.flushAll().finally(() => {
      this.flushing = null;
    });
    return this.flushing;
  }

  private async flushAll(): Promise<void> {
    let firstError: unknown = null;
    for (const w of this.writers.values()) {
      try {
        await this.flushTable(w);
      } catch (err) {
        firstError ??= err;
      }
    }
    this.flushCount++;
    if (!firstError && this.flushCount % 200 === 0) await this.compact().catch(() => undefined);
    if (firstError) throw firstError;
  }

  private async flushTable(w: TableWriter): Promise<void> {
    // Retry rows the log could not take earlier, so they survive a crash from now on.
    for (const p of w.pending.values()) {
      if (p.logged) continue;
      try {
        w.log.append({ op: "put", row: p.row });
        p.logged = true;
        w.logFailing = false;
      } catch (err) {
        w.logFailing = true;
        w.lastError = `log: ${errorText(err)}`;
        break;
      }
    }
    if (w.evicted) {
      // Rows were dropped from memory during an outage: the log has them all.
      for (const rec of w.log.recover().records) {
        const id = String(rec.row.id);
        if (!w.pending.has(id)) w.pending.set(id, { row: rec.row, gen: ++w.gen, insert: false, logged: true });
      }
    }
    if (w.pending.size === 0) return;
    const logEnd = w.log.end;
    const batch = [...w.pending.entries()].map(([id, p]) => ({ id, ...p }));
    try {
      this.opts.beforeLanceWrite?.(w.name);
      const t = await this.table(w.name);
      if (!t) throw new Error(`table ${w.name} unavailable`);
      const inserts = batch.filter((b) => b.insert).map((b) => b.row);
      const merges = batch.filter((b) => !b.insert).map((b) => b.row);
      if (inserts.length) await t.add(inserts);
      if (merges.length) {
        await t.mergeInsert("id").whenMatchedUpdateAll().whenNotMatchedInsertAll().execute(merges);
      }
    } catch (err) {
      this.lanceError = errorText(err);
      w.lastError = `lance: ${this.lanceError}`;
      this.tables.delete(w.name);
      throw err;
    }
    this.lanceError = null;
    w.evicted = false;
    for (const b of batch) if (w.pending.get(b.id)?.gen === b.gen) w.pending.delete(b.id);
    // Everything logged before this flush began is now in LanceDB.
    if (!w.logFailing) {
      try {
        w.log.commit(logEnd);
      } catch (err) {
        w.lastError = `checkpoint: ${errorText(err)}`;
      }
    }
    w.lastFlushAt = new Date().toISOString();
    if (!w.logFailing) w.lastError = null;
  }

  /** Compacts LanceDB fragments; keeps recent versions so readers in other processes never break. */
  async compact(): Promise<void> {
    for (const name of this.writers.keys()) {
      const t = await this.table(name);
      await t?.optimize({ cleanupOlderThan: new Date(Date.now() - 10 * 60_000) });
    }
  }

  health(): StoreHealth {
    const tables: StoreHealth["tables"] = {};
    let logFailing = false;
    for (const [name, w] of this.writers) {
      tables[name] = w.health();
      logFailing ||= w.logFailing;
    }
    const lastError =
      this.lanceError ?? [...this.writers.values()].map((w) => w.lastError).find((e) => e) ?? null;
    return {
      ok: !this.lanceError && !logFailing,
      lance: this.lanceError ? "failing" : "ok",
      log: logFailing ? "failing" : "ok",
      lastError,
      tables,
    };
  }

  /** Rows of a table, including this process's rows still on their way to LanceDB. */
  async list<T extends TableName>(name: T, q: QueryOptions<T> = {}): Promise<Tables[T][]> {
    const byId = new Map<string, Tables[T]>();
    const t = await this.table(name).catch(() => null);
    if (t) {
      const clauses = Object.entries(q.where ?? {}).map(([f, v]) => sqlEq(f, v));
      if (q.sql) clauses.push(`(${q.sql})`);
      let query = t.query();
      if (clauses.length) query = query.where(clauses.join(" AND "));
      // Pending rows may replace stored ones, so fetch a little more than asked when limited.
      if (q.limit !== undefined && !q.orderBy) query = query.limit(q.limit + this.pendingCount(name));
      for (const raw of (await query.toArray()) as Record<string, unknown>[]) {
        const row = decodeRow(name, raw);
        byId.set(String((row as { id: string }).id), row);
      }
    }
    const w = this.writers.get(name);
    if (w) {
      for (const p of w.pending.values()) {
        const row = decodeRow(name, p.row);
        if (matches(row as unknown as Record<string, unknown>, q.where)) byId.set(String((row as { id: string }).id), row);
      }
    }
    let rows = [...byId.values()];
    if (q.orderBy) {
      const key = q.orderBy;
      const dir = q.descending ? -1 : 1;
      rows.sort((a, b) => compare(a[key], b[key]) * dir);
    }
    if (q.limit !== undefined) rows = rows.slice(0, q.limit);
    return rows;
  }

  async get<T extends TableName>(name: T, id: string): Promise<Tables[T] | null> {
    const rows = await this.list(name, { where: { id } as Filter<T>, limit: 1 });
    return rows[0] ?? null;
  }

  async count<T extends TableName>(name: T, where?: Filter<T>): Promise<number> {
    const t = await this.table(name).catch(() => null);
    const w = this.writers.get(name);
    if (!w || w.pending.size === 0) {
      if (!t) return 0;
      const clauses = Object.entries(where ?? {}).map(([f, v]) => sqlEq(f, v));
      return t.countRows(clauses.length ? clauses.join(" AND ") : undefined);
    }
    return (await this.list(name, { where })).length;
  }

  private pendingCount(name: TableName): number {
    return this.writers.get(name)?.pending.size ?? 0;
  }

  /** Flushes what it can and releases the table locks. Rows that could not be flushed stay in the log. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    await this.flush().catch(() => undefined);
    for (const w of this.writers.values()) {
      w.log.close();
      const file = path.join(this.logDir, w.name + LOCK_SUFFIX);
      try {
        if (fs.readFileSync(file, "utf8").trim() === String(process.pid)) fs.unlinkSync(file);
      } catch {
        // Already gone.
      }
    }
    this.db?.close();
  }
}

function sqlEq(field: string, v: unknown): string {
  const col = columnName(field);
  if (v === null || v === undefined) return `${col} IS NULL`;
  if (typeof v === "number") return `${col} = ${v}`;
  if (typeof v === "boolean") return `${col} = ${v ? "true" : "false"}`;
  return `${col} = ${sqlString(String(v))}`;
}

function matches(row: Record<string, unknown>, where?: Record<string, unknown>): boolean {
  if (!where) return true;
  for (const [k, v] of Object.entries(where)) {
    if (v === undefined) continue;
    if ((row[k] ?? null) !== v) return false;
  }
  return true;
}

function compare(a: unknown, b: unknown): number {
  if (a === b) return 0;
  if (a === null || a === undefined) return -1;
  if (b === null || b === undefined) return 1;
  return (a as number | string) < (b as number | string) ? -1 : 1;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export { TABLE_NAMES, TABLE_COLUMNS };
