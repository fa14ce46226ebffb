// The newest rows of a table by a time column, without loading the table. LanceDB has no ORDER BY,
// so we ask for time windows instead: a window that comes back full (it may hold more rows than we
// saw) is narrowed, one that holds too few is followed by an older, wider one. Every query fetches
// at most `cap` rows, and only rows of the windows looked at are decoded.
import { columnName, sqlString, type Filter, type QueryOptions, type StoreHealth, type TableName, type Tables } from "../../core/index.js";

/** What the dashboard needs of a store: `Store` and the sidecar's `RecordStore` both fit. */
export interface ReadStore {
  list<T extends TableName>(table: T, q?: QueryOptions<T>): Promise<Tables[T][]>;
  count<T extends TableName>(table: T, where?: Filter<T>): Promise<number>;
  health(): StoreHealth;
}

export interface LatestQuery<T extends TableName> {
  table: T;
  /** An ISO-8601 time field (they sort as text). */
  timeField: keyof Tables[T] & string;
  limit: number;
  /** Only rows at or after this time. */
  since?: string | null;
  /** Only rows strictly before this time (the cursor for older pages). */
  before?: string | null;
  where?: Filter<T>;
  /** Extra SQL predicate (snake_case columns); may be looser than `keep`. */
  sql?: string;
  /** The exact test in JS; also applied to rows the SQL never saw (this process's unflushed rows). */
  keep?: (row: Tables[T]) => boolean;
  /** Rows per LanceDB query (default: 4 × limit, at least 200). */
  cap?: number;
}

export interface LatestResult<T extends TableName> {
  /** Newest first. */
  rows: Tables[T][];
  /** Older matching rows may exist: ask again with `before` = the last row's time. */
  more: boolean;
  /** LanceDB queries made (for tests and logs). */
  queries: number;
}

const HOUR = 3_600_000;
/** Narrowing stops here: rows sharing one second beyond `cap` are returned as far as seen. */
const MIN_SPAN = 1_000;
/** Nothing clawloop recorded is older. */
const FLOOR = Date.parse("2020-01-01T00:00:00Z");
const MAX_QUERIES = 48;

export async function latestRows<T extends TableName>(store: ReadStore, q: LatestQuery<T>): Promise<LatestResult<T>> {
  const cap = q.cap ?? Math.max(4 * q.limit, 200);
  const col = columnName(q.timeField);
  const timeOf = (row: Tables[T]) => String((row as unknown as Record<string, unknown>)[q.timeField] ?? "");
  const floor = q.since ? Math.max(Date.parse(q.since), FLOOR) : FLOOR;
  const sinceIso = q.since ? new Date(Date.parse(q.since)).toISOString() : null;
  let hi: number | null = q.before ? Date.parse(q.before) : null;
  let span = HOUR;
  const found = new Map<string, Tables[T]>();
  let queries = 0;
  let reachedFloor = false;

  while (queries < MAX_QUERIES) {
    const top = hi ?? Date.now();
    const lo = Math.max(floor, top - span);
    const loIso = lo <= floor && sinceIso ? sinceIso : new Date(lo).toISOString();
    const hiIso = hi === null ? null : new Date(hi).toISOString();
    const clauses = [`${col} >= ${sqlString(loIso)}`];
    if (hiIso) clauses.push(`${col} < ${sqlString(hiIso)}`);
    if (q.sql) clauses.push(`(${q.sql})`);
    const rows = await store.list(q.table, { where: q.where, sql: clauses.join(" AND "), limit: cap } as QueryOptions<T>);
    queries++;
    const inWindow = rows.filter((r) => {
      const t = timeOf(r);
      return t >= loIso && (hiIso === null || t < hiIso);
    });
    // Unflushed rows skip the SQL and may fill the answer: only a window full of its own rows is "full".
    const pending = store.health().tables[q.table]?.pending ?? 0;
    const full = rows.length >= cap && inWindow.length >= cap - pending;
    if (full && span > MIN_SPAN) {
      span = Math.max(MIN_SPAN, Math.floor(span / 4));
      continue;
    }
    for (const r of inWindow) if (!q.keep || q.keep(r)) found.set(String((r as { id: unknown }).id), r);
    if (lo <= floor) {
      reachedFloor = true;
      break;
    }
    if (found.size >= q.limit) break;
    hi = lo;
    span *= 4;
  }
  const sorted = [...found.values()].sort((a, b) => (timeOf(a) < timeOf(b) ? 1 : timeOf(a) > timeOf(b) ? -1 : 0));
  return { rows: sorted.slice(0, q.limit), more: sorted.length > q.limit || !reachedFloor, queries };
}
