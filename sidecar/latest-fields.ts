// latestRows (dashboard/recent.ts) over some fields of a table only: a window of thousands of rows
// then moves and decodes no request or answer. Status and the sessions listing use it.
import type { QueryOptions, Store, TableName, Tables } from "../core/index.js";
import { latestRows, type LatestQuery, type ReadStore } from "./dashboard/index.js";

/** What it reads of a store: `Store` and the sidecar's `RecordStore` both fit. */
export type FieldsStore = Pick<Store, "listFields" | "count" | "health">;

/** The newest rows, `fields` (and `id`, and the time field) of each only. No `keep`: it would see partial rows. */
export async function latestFields<T extends TableName, K extends keyof Tables[T] & string>(
  store: FieldsStore,
  fields: readonly K[],
  q: Omit<LatestQuery<T>, "keep">,
): Promise<{ rows: Pick<Tables[T], K | "id" & keyof Tables[T]>[]; more: boolean }> {
  const read = [...new Set([...fields, q.timeField])];
  const view: ReadStore = {
    // ReadStore hands out whole rows; latestRows reads only the time field and `id` of those it is
    // given and returns them as they came, so rows of these fields only are safe to pass through it.
    list: ((_table: T, lq?: QueryOptions<T>) => store.listFields(q.table, read, lq)) as ReadStore["list"],
    count: (table, where) => store.count(table, where),
    health: () => store.health(),
  };
  const { rows, more } = await latestRows(view, q);
  return { rows, more };
}
