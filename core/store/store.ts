// The store: LanceDB tables behind per-table append-only logs. Writers never wait on LanceDB:
// `put` logs the row and returns; a background flusher moves rows into LanceDB in batches and
// keeps retrying while LanceDB (or the disk) is failing. One process writes each table.
//
// What turns repeat call after call (system prompt, tool schemas, earlier messages, the prompt's
// token ids) is stored once, content-addressed, in an internal `blobs` table (store/blobs.ts) and
// put back on read: readers get whole turns.
//
// LanceDB (and Arrow) are loaded on first use, so a process that imports core but never opens a
// table (the sidecar's proxy) does not carry them.
import fs from "node:fs";
import path from "node:path";
import type * as Lance from "@lancedb/lancedb";
import type { Logger } from "pino";
import { processAlive } from "../process-alive.js";
import { TABLE_NAMES, type TableName, type Tables, type Turn } from "../types.js";
import { BlobIdCache, type BlobRefs, type BlobRow, IdChunkCache, joinTurn, RecentIds, refIds, splitTurn } from "./blobs.js";
import { columnName, decodeBlob, decodeFields, decodeRow, encodeBlob, encodeRow, sqlString, type StoredTable, TABLE_COLUMNS } from "./codec.js";
import { nodeIO, TableLog, type LogIO } from "./wal.js";

export type Filter<T extends TableName> = { [K in keyof Tables[T]]?: string | number | boolean | null };

export interface QueryOptions<T extends TableName> {
  /** Equality filters on fields. */
  where?: Filter<T>;
  /**
   * Extra SQL (DataFusion) predicate over snake_case columns, applied in LanceDB only. A turn's
   * `request` column holds its latest user message and the messages after its last answer; earlier
   * large messages and the tool schemas, which calls share, are stored apart (store/blobs.ts).
   */
  sql?: string;
  limit?: number;
  /** Sort by this field (in JS, after the fetch). */
  orderBy?: keyof Tables[T] & string;
  descending?: boolean;
}

export interface StoreOptions {
  dataDir: string;
  /** Tables this process writes (and locks). Writing `turns` also writes the store's `blobs`. */
  writes?: TableName[];
  flushIntervalMs?: number;
  /** Flush as soon as this many rows are waiting. */
  flushBatch?: number;
  /** fsync each log append: survives power loss, not just process death. */
  fsync?: boolean;
  /** Rows kept in memory while LanceDB is down; beyond this they wait only in the log. */
  maxPendingRows?: number;
  /**
   * Bytes LanceDB may keep in each of its caches (index, metadata). Its defaults (6 GB and 1 GB)
   * suit a database server, not a sidecar; these tables are scanned, not indexed.
   */
  lanceCacheBytes?: number;
  /** Characters of blobs a reader keeps decoded between reads. */
  blobCacheChars?: number;
  logger?: Logger;
  /** Test seams: file operations of the log, and a hook run before every LanceDB write. */
  io?: LogIO;
  beforeLanceWrite?: (table: StoredTable) => void;
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
  lastCommitAt = 0;

  constructor(
    readonly name: StoredTable,
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
/** Rows per LanceDB write: bounds the memory one write takes (a recovered log may hold many). */
const MAX_WRITE_ROWS = 512;
/** Ids per `IN (…)` query. */
const IN_CHUNK = 256;
/** How often the log's checkpoint is written, unless the log is past the size where it starts over. */
const COMMIT_EVERY_MS = 1_000;
const COMMIT_NOW_BYTES = 8 * 1024 * 1024;
/** Compact a table's fragments after this many writes to it. */
const COMPACT_AFTER_WRITES = 100;

let lanceModule: Promise<typeof Lance> | null = null;
function lance(): Promise<typeof Lance> {
  lanceModule ??= import("@lancedb/lancedb");
  return lanceModule;
}

/** Decoded blobs, least recently used dropped first once over `maxChars`. */
class BlobRowCache {
  private readonly map = new Map<string, BlobRow>();
  private chars = 0;

  constructor(private readonly maxChars: number) {}

  private static size(b: BlobRow): number {
    return (b.text?.length ?? 0) + (b.ids?.length ?? 0) * 4;
  }

  get(id: string): BlobRow | undefined {
    const b = this.map.get(id);
    if (b) {
      this.map.delete(id);
      this.map.set(id, b);
    }
    return b;
  }

  set(b: BlobRow): void {
    if (this.map.has(b.id)) return;
    this.map.set(b.id, b);
    this.chars += BlobRowCache.size(b);
    for (const [id, old] of this.map) {
      if (this.chars <= this.maxChars || this.map.size === 1) break;
      this.map.delete(id);
      this.chars -= BlobRowCache.size(old);
    }
  }
}

export class Store {
  private db: Lance.Connection | null = null;
  private tables = new Map<StoredTable, Lance.Table>();
  private writers = new Map<StoredTable, TableWriter>();
  private timer: NodeJS.Timeout | null = null;
  private flushing: Promise<void> | null = null;
  /** Reads in progress; a flush waits for them, and reads wait for a flush (store/store.ts `read`). */
  private reads = 0;
  private readsDrained: (() => void)[] = [];
  private lanceError: string | null = null;
  private writesSinceCompact = new Map<StoredTable, number>();
  private closed = false;
  /** Blobs this process wrote (or found written): not written again. */
  private readonly blobTexts = new BlobIdCache(4 * 1024 * 1024);
  private readonly blobIds = new RecentIds();
  private readonly chunkIds = new IdChunkCache();
  private readonly blobCache: BlobRowCache;
  readonly dir: string;
  private readonly logDir: string;

  private constructor(private readonly opts: StoreOptions) {
    this.dir = path.join(opts.dataDir, "store");
    this.logDir = path.join(opts.dataDir, "log");
    this.blobCache = new BlobRowCache(opts.blobCacheChars ?? 4 * 1024 * 1024);
  }

  static async open(opts: StoreOptions): Promise<Store> {
    const store = new Store(opts);
    await store.init();
    return store;
  }

  private async init(): Promise<void> {
    fs.mkdirSync(this.dir, { recursive: true });
    const io = this.opts.io ?? nodeIO;
    const writes: StoredTable[] = [...new Set(this.opts.writes ?? [])];
    // Blobs first: they are flushed before the turns that need them.
    if (writes.includes("turns")) writes.unshift("blobs");
    if (writes.length) fs.mkdirSync(this.logDir, { recursive: true });
    for (const name of writes) {
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

  private async connect(): Promise<Lance.Connection> {
    if (!this.db) {
      const lancedb = await lance();
      const cache = BigInt(this.opts.lanceCacheBytes ?? 32 * 1024 * 1024);
      this.db = await lancedb.connect(this.dir, { readConsistencyInterval: 0, session: new lancedb.Session(cache, cache) });
    }
    return this.db;
  }

  /** The table, or null when it does not exist (yet) and this process does not write it. */
  private async table(name: StoredTable): Promise<Lance.Table | null> {
    const cached = this.tables.get(name);
    if (cached) return cached;
    const db = await this.connect();
    const names = await db.tableNames();
    let t: Lance.Table | null = null;
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
    const { arrowSchema, missingColumns } = await import("./schema.js");
    if (t && this.writers.has(name)) {
      // A table made by an earlier version: add the (nullable) columns it lacks before writing.
      const missing = missingColumns(name, new Set((await t.schema()).fields.map((f) => f.name)));
      if (missing.length) await t.addColumns(missing);
    }
    if (!t && this.writers.has(name)) t = await db.createEmptyTable(name, arrowSchema(name), { existOk: true });
    if (t) this.tables.set(name, t);
    return t;
  }

  private lock(name: StoredTable): void {
    const file = path.join(this.logDir, name + LOCK_SUFFIX);
    try {
      fs.writeFileSync(file, String(process.pid), { flag: "wx" });
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
    const holder = Number(fs.readFileSync(file, "utf8").trim());
    if (holder && holder !== process.pid && processAlive(holder)) {
      throw new Error(`table "${name}" is already written by process ${holder} (lock ${file})`);
    }
    fs.writeFileSync(file, String(process.pid));
  }

  private writer(name: StoredTable): TableWriter {
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
    let row: Record<string, unknown>;
    if (name === "turns") {
      const split = splitTurn(value as Turn, this.blobTexts, this.blobIds, this.chunkIds);
      row = encodeRow("turns", split.turn);
      row.blob_refs = split.refs ? JSON.stringify(split.refs) : null;
      // The blobs reach the log before the row that needs them, and are flushed before it.
      const bw = this.writer("blobs");
      for (const b of split.blobs) this.append(bw, encodeBlob(b), false);
    } else {
      row = encodeRow(name, value);
    }
    this.append(w, row, opts.insert ?? false);
  }

  private append(w: TableWriter, row: Record<string, unknown>, insert: boolean): void {
    const id = String(row.id);
    const prev = w.pending.get(id);
    const entry: PendingRow = { row, gen: ++w.gen, insert: !prev && insert, logged: false };
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

  /**
   * Runs a read while no flush moves rows: it sees LanceDB and the rows waiting in memory at one
   * moment, so a row is never missed (nor seen in an older version) because a flush moved it
   * between the two looks. A waiting flush goes first, then holds new reads back until it is done.
   */
  private async read<R>(fn: () => Promise<R>): Promise<R> {
    while (this.flushing) await this.flushing.catch(() => undefined);
    this.reads++;
    try {
      return await fn();
    } finally {
      if (--this.reads === 0) for (const r of this.readsDrained.splice(0)) r();
    }
  }

  private async flushAll(): Promise<void> {
    while (this.reads > 0) await new Promise<void>((r) => this.readsDrained.push(r));
    for (const w of this.writers.values()) this.prepare(w);
    // Turns put from here on may need blobs that are not in this flush's batch: they wait for the next.
    const turns = this.writers.get("turns");
    const cut = turns ? { gen: turns.gen, logEnd: turns.log.end } : null;
    let firstError: unknown = null;
    let blobsFailed = false;
    for (const w of this.writers.values()) {
      if (w.name === "turns" && blobsFailed) continue;
      try {
        await this.flushTable(w, w.name === "turns" ? cut : null);
      } catch (err) {
        if (w.name === "blobs") blobsFailed = true;
        firstError ??= err;
      }
    }
    for (const [name, n] of this.writesSinceCompact) {
      if (n < COMPACT_AFTER_WRITES || firstError) continue;
      this.writesSinceCompact.set(name, 0);
      await this.compactTable(name).catch((err: unknown) => this.opts.logger?.warn({ table: name, err: errorText(err) }, "compaction failed"));
    }
    if (firstError) throw firstError;
  }

  /** Before a flush: log rows the log could not take earlier; take back rows evicted from memory. */
  private prepare(w: TableWriter): void {
    // Retried first, so they survive a crash from now on.
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
  }

  /** Writes the waiting rows (those put up to `cut`, if given) to LanceDB, then checkpoints the log. */
  private async flushTable(w: TableWriter, cut: { gen: number; logEnd: number } | null): Promise<void> {
    if (w.pending.size === 0) return;
    const logEnd = cut?.logEnd ?? w.log.end;
    const batch = [...w.pending.entries()].filter(([, p]) => !cut || p.gen <= cut.gen).map(([id, p]) => ({ id, ...p }));
    try {
      this.opts.beforeLanceWrite?.(w.name);
      const t = await this.table(w.name);
      if (!t) throw new Error(`table ${w.name} unavailable`);
      for (let at = 0; at < batch.length; at += MAX_WRITE_ROWS) {
        const part = batch.slice(at, at + MAX_WRITE_ROWS);
        const inserts = part.filter((b) => b.insert).map((b) => b.row);
        const merges = part.filter((b) => !b.insert).map((b) => b.row);
        // Merges first: a failure after them only repeats them (by id); an append is never repeated.
        if (merges.length) {
          // A blob's id is its content: one already there needs no update.
          const merge = t.mergeInsert("id");
          await (w.name === "blobs" ? merge : merge.whenMatchedUpdateAll()).whenNotMatchedInsertAll().execute(merges);
        }
        if (inserts.length) await t.add(inserts);
        this.writesSinceCompact.set(w.name, (this.writesSinceCompact.get(w.name) ?? 0) + 1);
        for (const b of part) if (w.pending.get(b.id)?.gen === b.gen) w.pending.delete(b.id);
      }
    } catch (err) {
      this.lanceError = errorText(err);
      w.lastError = `lance: ${this.lanceError}`;
      this.tables.delete(w.name);
      throw err;
    }
    this.lanceError = null;
    w.evicted = false;
    // Everything logged before the batch was taken is now in LanceDB. The checkpoint is a file
    // write and a rename: once a second is enough (a crash replays at most that much, by id).
    if (!w.logFailing && (this.closed || Date.now() - w.lastCommitAt >= COMMIT_EVERY_MS || logEnd > COMMIT_NOW_BYTES)) {
      try {
        w.log.commit(logEnd);
        w.lastCommitAt = Date.now();
      } catch (err) {
        w.lastError = `checkpoint: ${errorText(err)}`;
      }
    }
    w.lastFlushAt = new Date().toISOString();
    if (!w.logFailing) w.lastError = null;
  }

  /** Compacts LanceDB fragments; keeps recent versions so readers in other processes never break. */
  async compact(): Promise<void> {
    for (const name of this.writers.keys()) await this.compactTable(name);
  }

  private async compactTable(name: StoredTable): Promise<void> {
    const t = await this.table(name);
    await t?.optimize({ cleanupOlderThan: new Date(Date.now() - 10 * 60_000) });
  }

  health(): StoreHealth {
    const tables: StoreHealth["tables"] = {};
    let logFailing = false;
    for (const [name, w] of this.writers) {
      if (name !== "blobs") tables[name] = w.health();
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
    return this.read(() => this.listNow(name, q));
  }

  /**
   * Only some fields of the matching rows. Cheaper than `list` where rows are large: no other column
   * is read or decoded, and turns are not put back together.
   */
  async listFields<T extends TableName, K extends keyof Tables[T] & string>(
    name: T,
    fields: readonly K[],
    q: QueryOptions<T> = {},
  ): Promise<Pick<Tables[T], K | ("id" & keyof Tables[T])>[]> {
    const keep = [...new Set<string>(["id", ...fields, ...(q.orderBy ? [q.orderBy] : [])])];
    return this.read(() => this.listNow(name, q, keep));
  }

  private async listNow<T extends TableName>(name: T, q: QueryOptions<T>, fields?: string[]): Promise<Tables[T][]> {
    const raw = new Map<string, Record<string, unknown>>();
    const w = this.writers.get(name);
    // A table LanceDB cannot open leaves the rows waiting here (the writer keeps serving them).
    const t = await this.table(name).catch((err: unknown) => {
      if (!w) throw err;
      return null;
    });
    if (t) {
      const clauses = whereClauses(q.where);
      if (q.sql) clauses.push(`(${q.sql})`);
      let query = t.query();
      if (clauses.length) query = query.where(clauses.join(" AND "));
      if (fields) query = query.select(fields.map(columnName));
      // Pending rows may replace stored ones, so fetch a little more than asked when limited.
      if (q.limit !== undefined && !q.orderBy) query = query.limit(q.limit + (w?.pending.size ?? 0));
      for (const row of (await query.toArray()) as Record<string, unknown>[]) raw.set(String(row.id), row);
    }
    if (w) {
      for (const [id, p] of w.pending) {
        if (matches(p.row, q.where)) raw.set(id, p.row);
        else raw.delete(id);
      }
    }
    let rows = fields ? [...raw.values()].map((r) => decodeFields(name, r, fields)) : await this.decode(name, [...raw.values()]);
    if (q.orderBy) {
      const key = q.orderBy;
      const dir = q.descending ? -1 : 1;
      rows.sort((a, b) => compare(a[key], b[key]) * dir);
    }
    if (q.limit !== undefined) rows = rows.slice(0, q.limit);
    return rows;
  }

  /** Stored rows → domain objects; turns are put back together from their blobs. */
  private async decode<T extends TableName>(name: T, rows: Record<string, unknown>[]): Promise<Tables[T][]> {
    if (name !== "turns") return rows.map((r) => decodeRow(name, r));
    const refsOf = rows.map((r) => (typeof r.blob_refs === "string" ? (JSON.parse(r.blob_refs) as BlobRefs) : null));
    const blobs = await this.blobs(refsOf.flatMap((r) => (r ? refIds(r) : [])));
    return rows.map((r, i) => {
      const turn = decodeRow("turns", r);
      const refs = refsOf[i];
      return (refs ? joinTurn(turn, refs, (id) => blobs.get(id)) : turn) as Tables[T];
    });
  }

  /** Blobs by id: from the cache, this process's unflushed rows, then LanceDB. */
  private async blobs(ids: string[]): Promise<Map<string, BlobRow>> {
    const out = new Map<string, BlobRow>();
    const missing = new Set<string>();
    const w = this.writers.get("blobs");
    for (const id of ids) {
      if (out.has(id)) continue;
      const hit = this.blobCache.get(id);
      const p = hit ? null : w?.pending.get(id);
      if (hit) out.set(id, hit);
      else if (p) out.set(id, decodeBlob(p.row));
      else missing.add(id);
    }
    if (missing.size === 0) return out;
    const t = await this.table("blobs");
    if (!t) throw new Error(`the store has no blobs table, but turns refer to ${missing.size} blob(s)`);
    const want = [...missing];
    for (let at = 0; at < want.length; at += IN_CHUNK) {
      const part = want.slice(at, at + IN_CHUNK);
      const rows = (await t.query().where(`id IN (${part.map(sqlString).join(", ")})`).toArray()) as Record<string, unknown>[];
      for (const row of rows) {
        const b = decodeBlob(row);
        this.blobCache.set(b);
        out.set(b.id, b);
      }
    }
    return out;
  }

  async get<T extends TableName>(name: T, id: string): Promise<Tables[T] | null> {
    const rows = await this.list(name, { where: { id } as Filter<T>, limit: 1 });
    return rows[0] ?? null;
  }

  /** How many rows match, counting this process's rows still on their way to LanceDB. */
  async count<T extends TableName>(name: T, where?: Filter<T>): Promise<number> {
    return this.read(async () => {
      const w = this.writers.get(name);
      // Unlike `list`, a count cannot say which part it is missing: a table that cannot be read is an error.
      const t = await this.table(name);
      const clauses = whereClauses(where);
      let n = t ? await t.countRows(clauses.length ? clauses.join(" AND ") : undefined) : 0;
      if (!w || w.pending.size === 0) return n;
      // A waiting row counts once, as it will be: its stored version (if any) is taken out.
      const maybeStored: string[] = [];
      for (const [id, p] of w.pending) {
        if (!p.insert) maybeStored.push(id);
        if (matches(p.row, where)) n++;
      }
      if (t) {
        for (let at = 0; at < maybeStored.length; at += IN_CHUNK) {
          const part = maybeStored.slice(at, at + IN_CHUNK);
          n -= await t.countRows([...clauses, `id IN (${part.map(sqlString).join(", ")})`].join(" AND "));
        }
      }
      return n;
    });
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

function whereClauses(where: Record<string, unknown> | undefined): string[] {
  return Object.entries(where ?? {})
    .filter(([, v]) => v !== undefined)
    .map(([f, v]) => sqlEq(f, v));
}

function sqlEq(field: string, v: unknown): string {
  const col = columnName(field);
  if (v === null || v === undefined) return `${col} IS NULL`;
  if (typeof v === "number") return `${col} = ${v}`;
  if (typeof v === "boolean") return `${col} = ${v ? "true" : "false"}`;
  return `${col} = ${sqlString(String(v))}`;
}

/** Equality filters on a stored row (scalar columns hold the field's value as is). */
function matches(row: Record<string, unknown>, where?: Record<string, unknown>): boolean {
  if (!where) return true;
  for (const [k, v] of Object.entries(where)) {
    if (v === undefined) continue;
    if ((row[columnName(k)] ?? null) !== v) return false;
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
