// Maps the shared types onto LanceDB columns. Scalars that loops filter on are real columns;
// nested documents (requests, responses) are JSON text; numeric sequences are Arrow lists.
// Arrow types live in schema.ts, loaded with LanceDB only by processes that open a table.
import type { TableName, Tables } from "../types.js";
import type { BlobRow } from "./blobs.js";

export type ColumnType = "string" | "int" | "float" | "bool" | "json" | "int[]" | "float[]";

/** Tables as stored: the public ones and the store's own `blobs` (store/blobs.ts). */
export type StoredTable = TableName | "blobs";

export interface ColumnSpec {
  type: ColumnType;
  nullable: boolean;
}

const req = (type: ColumnType): ColumnSpec => ({ type, nullable: false });
const opt = (type: ColumnType): ColumnSpec => ({ type, nullable: true });

/** Column layout per table, keyed by the type's (camelCase) field name. */
export const TABLE_COLUMNS: { [T in TableName]: { [K in keyof Tables[T]]-?: ColumnSpec } } = {
  turns: {
    id: req("string"),
    sessionId: req("string"),
    runId: opt("string"),
    callId: opt("string"),
    turnType: req("string"),
    seq: req("int"),
    endpoint: req("string"),
    model: req("string"),
    adapter: opt("string"),
    request: req("json"),
    response: opt("json"),
    promptTokenIds: opt("int[]"),
    completionTokenIds: opt("int[]"),
    completionLogprobs: opt("float[]"),
    usage: opt("json"),
    startedAt: req("string"),
    ttfbMs: opt("float"),
    totalMs: req("float"),
    upstreamStatus: opt("int"),
    status: req("string"),
    error: opt("string"),
    traceparent: opt("string"),
    placement: req("string"),
    parentTurnId: opt("string"),
  },
  next_states: {
    id: req("string"),
    kind: req("string"),
    sessionId: req("string"),
    forRunId: opt("string"),
    forCallId: opt("string"),
    turnId: opt("string"),
    text: opt("string"),
    score: opt("float"),
    toolName: opt("string"),
    toolCallId: opt("string"),
    exitCode: opt("int"),
    at: req("string"),
    receivedAt: req("string"),
    source: req("string"),
  },
  judgments: {
    id: req("string"),
    turnId: req("string"),
    sessionId: req("string"),
    score: req("int"),
    method: req("string"),
    votes: req("json"),
    raw: req("json"),
    hint: opt("string"),
    nextStateIds: req("json"),
    judgeModel: opt("string"),
    costTokens: req("int"),
    costMs: req("float"),
    createdAt: req("string"),
  },
  adapters: {
    id: req("string"),
    version: req("int"),
    dir: req("string"),
    manifest: req("json"),
    status: req("string"),
    statusReason: opt("string"),
    pinned: req("bool"),
    loadedAt: opt("string"),
    liveAt: opt("string"),
    retiredAt: opt("string"),
  },
  train_steps: {
    id: req("string"),
    step: req("int"),
    version: req("string"),
    mode: req("string"),
    loss: req("float"),
    lossRl: req("float"),
    lossOpd: req("float"),
    klToBase: opt("float"),
    meanReward: req("float"),
    meanAbsAdvantage: req("float"),
    gradNorm: req("float"),
    tokens: req("int"),
    samples: req("int"),
    sampleIds: req("json"),
    lr: req("float"),
    durationMs: req("float"),
    behaviourMismatch: opt("float"),
    createdAt: req("string"),
  },
};

/** Columns that are not fields of the table's type: the store's own bookkeeping. */
const STORAGE_COLUMNS: Partial<Record<TableName, Record<string, ColumnSpec>>> = {
  /** Where the turn's blobs go back (store/blobs.ts); null when it has none. */
  turns: { blobRefs: opt("json") },
};

const BLOB_COLUMNS: { [K in keyof BlobRow]-?: ColumnSpec } = {
  id: req("string"),
  kind: req("string"),
  text: opt("string"),
  ids: opt("int[]"),
};

/** Every column of a stored table, keyed by field name. */
export function storedColumns(table: StoredTable): Record<string, ColumnSpec> {
  if (table === "blobs") return BLOB_COLUMNS;
  return { ...(TABLE_COLUMNS[table] as Record<string, ColumnSpec>), ...STORAGE_COLUMNS[table] };
}

export function columnName(field: string): string {
  return field.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/** Domain object → LanceDB row. */
export function encodeRow<T extends TableName>(table: T, value: Tables[T]): Record<string, unknown> {
  const cols = TABLE_COLUMNS[table] as Record<string, ColumnSpec>;
  const src = value as unknown as Record<string, unknown>;
  const row: Record<string, unknown> = {};
  for (const [field, spec] of Object.entries(cols)) {
    const v = src[field];
    if (v === undefined || v === null) {
      if (!spec.nullable) throw new Error(`${table}.${field} is required`);
      row[columnName(field)] = null;
      continue;
    }
    row[columnName(field)] = spec.type === "json" ? JSON.stringify(v) : v;
  }
  return row;
}

function toPlainArray(v: unknown): number[] {
  if (Array.isArray(v)) return v as number[];
  // Arrow list cells arrive as Vectors (iterable, with toArray()).
  const maybe = v as { toArray?: () => ArrayLike<number> };
  if (maybe && typeof maybe.toArray === "function") return Array.from(maybe.toArray());
  return Array.from(v as Iterable<number>);
}

/** A blob → its LanceDB row. */
export function encodeBlob(b: BlobRow): Record<string, unknown> {
  return { id: b.id, kind: b.kind, text: b.text, ids: b.ids };
}

export function decodeBlob(row: Record<string, unknown>): BlobRow {
  return decodeColumns(BLOB_COLUMNS, row) as unknown as BlobRow;
}

/** LanceDB row → domain object. */
export function decodeRow<T extends TableName>(table: T, row: Record<string, unknown>): Tables[T] {
  return decodeColumns(TABLE_COLUMNS[table] as Record<string, ColumnSpec>, row) as unknown as Tables[T];
}

/** Some fields of a LanceDB row → those fields of the domain object. */
export function decodeFields<T extends TableName>(table: T, row: Record<string, unknown>, fields: readonly string[]): Tables[T] {
  const all = TABLE_COLUMNS[table] as Record<string, ColumnSpec>;
  const cols: Record<string, ColumnSpec> = {};
  for (const f of fields) if (all[f]) cols[f] = all[f];
  return decodeColumns(cols, row) as unknown as Tables[T];
}

function decodeColumns(cols: Record<string, ColumnSpec>, row: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [field, spec] of Object.entries(cols)) {
    const v = row[columnName(field)];
    if (v === undefined || v === null) {
      out[field] = null;
      continue;
    }
    switch (spec.type) {
      case "json":
        out[field] = JSON.parse(v as string);
        break;
      case "int[]":
      case "float[]":
        out[field] = toPlainArray(v);
        break;
      case "int":
      case "float":
        out[field] = Number(v);
        break;
      default:
        out[field] = v;
    }
  }
  return out;
}

/** Quote a string for a LanceDB (DataFusion SQL) filter. */
export function sqlString(s: string): string {
  return `'${s.replace(/'/g, "''")}'`;
}
