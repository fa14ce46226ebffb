// Arrow schemas of the stored tables. Only loaded (with LanceDB) by a process that opens a table.
import { Bool, Field, Float64, Int32, List, Schema, Utf8, type DataType } from "apache-arrow";
import { columnName, storedColumns, type ColumnType, type StoredTable } from "./codec.js";

function arrowType(type: ColumnType): DataType {
  switch (type) {
    case "string":
    case "json":
      return new Utf8();
    case "int":
      return new Int32();
    case "float":
      return new Float64();
    case "bool":
      return new Bool();
    case "int[]":
      return new List(new Field("item", new Int32(), true));
    case "float[]":
      return new List(new Field("item", new Float64(), true));
  }
}

export function arrowSchema(table: StoredTable): Schema {
  return new Schema(
    Object.entries(storedColumns(table)).map(([field, spec]) => new Field(columnName(field), arrowType(spec.type), spec.nullable)),
  );
}

const SQL_TYPES: Partial<Record<ColumnType, string>> = { string: "STRING", json: "STRING", int: "INT", float: "DOUBLE", bool: "BOOLEAN" };

/**
 * The nullable columns a table made by an earlier version lacks, as LanceDB `addColumns` input
 * (SQL, which needs no Arrow classes: LanceDB loads its own copy of Arrow).
 */
export function missingColumns(table: StoredTable, have: ReadonlySet<string>): { name: string; valueSql: string }[] {
  const out: { name: string; valueSql: string }[] = [];
  for (const [field, spec] of Object.entries(storedColumns(table))) {
    const name = columnName(field);
    if (have.has(name)) continue;
    const sql = SQL_TYPES[spec.type];
    if (!spec.nullable || !sql) throw new Error(`table ${table} lacks column ${name}, which cannot be added to existing rows`);
    out.push({ name, valueSql: `CAST(NULL AS ${sql})` });
  }
  return out;
}
