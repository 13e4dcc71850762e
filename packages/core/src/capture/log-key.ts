import type { KeyValue } from '../model/store.js'

/**
 * A key as the change log holds it (`text[]`, one element per key column, each the column's text
 * form) → the key the stores take. A single column's text is handed over as a string: PostgreSQL
 * casts it back to the column type in `= any($1)`, and `keyString` matches it with the row's value.
 */
export function logKey(columns: readonly string[]): KeyValue {
  if (columns.length !== 1) throw new TypeError(`composite keys are not supported by this change log reader (got ${columns.length} columns)`)
  return columns[0] as string
}
