export { Store, type StoreOptions, type StoreHealth, type TableHealth, type QueryOptions, type Filter } from "./store.js";
export { TableLog, nodeIO, type LogIO, type LogRecord } from "./wal.js";
export { TABLE_COLUMNS, encodeRow, decodeRow, columnName, sqlString, type StoredTable } from "./codec.js";
