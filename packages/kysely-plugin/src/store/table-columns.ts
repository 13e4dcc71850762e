import { sqlIdentifier } from '@cutover/core'
import { type Kysely, sql } from 'kysely'

/** A column as PostgreSQL's catalog describes it. */
export interface TableColumn {
  /** SQL type as `format_type` prints it (`integer`, `character varying(80)`, `"Mood"`): castable. */
  readonly type: string
  /** `pg_type.typcategory`: `A` array, `U` user-defined (json/jsonb are `U`), `S` string, … */
  readonly category: string
  readonly isJson: boolean
}

/**
 * The columns of `table` (`name` or `schema.name`, resolved by the search path like the store's own
 * queries), by name; empty if the table does not exist. Read once per store: the bulk write path
 * needs each column's type to cast its parameter array.
 */
export async function readTableColumns(db: Kysely<any>, table: string): Promise<ReadonlyMap<string, TableColumn>> {
  const quoted = table.split('.').map(sqlIdentifier).join('.')
  const { rows } = await sql<{ name: string; type: string; category: string; type_name: string }>`
    select a.attname as name, format_type(a.atttypid, a.atttypmod) as type, t.typcategory as category, t.typname as type_name
    from pg_attribute a join pg_type t on t.oid = a.atttypid
    where a.attrelid = to_regclass(${quoted}) and a.attnum > 0 and not a.attisdropped`.execute(db)
  return new Map(rows.map((row) => [row.name, { type: row.type, category: row.category, isJson: row.type_name === 'json' || row.type_name === 'jsonb' }]))
}
