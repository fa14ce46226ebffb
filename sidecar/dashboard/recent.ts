// The newest rows of a table by a time column, without loading the table. LanceDB has no ORDER BY,
// so we look for a time window ending at the cursor that holds at least `limit` rows but fewer
// than `cap` (then we hold all of it, and its newest rows are the answer): a window that came back
// full is too wide, one with too few rows too narrow, and the next try lies between the two.
// Every query fetches at most `cap` rows; only rows of the windows tried are decoded.
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
/** Narrower than this, a full window is taken as it is: more than `cap` rows share one millisecond. */
const MIN_SPAN = 1;
/** Nothing clawloop recorded is older. */
const FLOOR = Date.parse("2020-01-01T00:00:00Z");
const MAX_QUERIES = 40;

export async function latestRows<T extends TableName>(store: ReadStore, q: LatestQuery<T>): Promise<LatestResult<T>> {
  const cap = q.cap ?? Math.max(4 * q.limit, 200);
  const col = columnName(q.timeField);
  const timeOf = (row: Tables[T]) => String((row as unknown as Record<string, unknown>)[q.timeField] ?? "");
  const floor = Math.max(q.since ? Date.parse(q.since) : FLOOR, FLOOR);
  const floorIso = q.since ? new Date(Date.parse(q.since)).toISOString() : new Date(FLOOR).toISOString();
  const hiIso = q.before ? new Date(Date.parse(q.before)).toISOString() : null;
  const top = q.before ? Date.parse(q.before) : Date.now();
  // Spans known to hold too few rows (`short`) and too many (`full`).
  let short = 0;
  let full = Number.POSITIVE_INFINITY;
  let span = HOUR;
  let queries = 0;
  // Rows of the last window held whole (exact, maybe fewer than asked), and of the last full one.
  let whole: Tables[T][] | null = null;
  let partial: Tables[T][] = [];
  let complete = false;

  while (queries < MAX_QUERIES) {
    const lo = top - span;
    const loIso = lo <= floor ? floorIso : new Date(lo).toISOString();
    const clauses = [`${col} >= ${sqlString(loIso)}`];
    if (hiIso) clauses.push(`${col} < ${sqlString(hiIso)}`);
    if (q.sql) clauses.push(`(${q.sql})`);
    const rows = await store.list(q.table, { where: q.where, sql: clauses.join(" AND "), limit: cap } as QueryOptions<T>);
    queries++;
    // Unflushed rows of this process skip the SQL: test the window here too.
    const inWindow = rows.filter((r) => {
      const t = timeOf(r);
      return t >= loIso && (hiIso === null || t < hiIso);
    });
    const pending = store.health().tables[q.table]?.pending ?? 0;
    const isFull = rows.length >= cap && inWindow.length >= cap - pending;
    const kept = q.keep ? inWindow.filter(q.keep) : inWindow;
    if (isFull) {
      full = span;
      partial = kept;
      if (span <= MIN_SPAN) break;
    } else {
      whole = kept;
      if (kept.length >= q.limit) {
        complete = true;
        break;
      }
      if (lo <= floor) {
        // The whole range holds fewer than `limit` matching rows.
        complete = true;
        break;
      }
      short = span;
    }
    span = full === Number.POSITIVE_INFINITY ? span * 4 : short === 0 ? Math.max(MIN_SPAN, Math.floor(span / 4)) : Math.floor(Math.sqrt(short * full));
    if (span <= short || span >= full) break;
  }
  // When no window was both whole and big enough, more than `cap` rows crowd into one millisecond
  // (or fewer than `limit` of them pass `keep`): the whole window's rows are the newest, exactly,
  // and the full window adds some of the crowd (which of those rows LanceDB gave is arbitrary).
  const byId = new Map<string, Tables[T]>();
  for (const r of complete ? (whole ?? []) : [...(whole ?? []), ...partial]) byId.set(String((r as { id: unknown }).id), r);
  const sorted = [...byId.values()].sort((a, b) => (timeOf(a) < timeOf(b) ? 1 : timeOf(a) > timeOf(b) ? -1 : 0));
  const reachedFloor = complete && sorted.length < q.limit;
  return { rows: sorted.slice(0, q.limit), more: !reachedFloor, queries };
}
