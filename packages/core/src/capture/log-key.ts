import { compositeKey, type KeyValue, keyString } from '../model/store.js'

/**
 * A key as the change log holds it (`text[]`, one element per key column, each the column's text
 * form) → the key the stores take. A single column's text is handed over as a string: PostgreSQL
 * casts it back to the column type, and `keyString` matches it with the row's value. Several
 * columns become a composite key of their texts (`keyString` of `[1, "a"]` and `["1", "a"]` agree).
 */
export function logKey(columns: readonly string[]): KeyValue {
  return columns.length === 1 ? (columns[0] as string) : compositeKey(...columns)
}

/** The inverse, as PostgreSQL's `array_to_json(key)::text` prints it: how the log is searched by key. */
export function logKeyJson(key: KeyValue): string {
  return Array.isArray(key) ? keyString(key) : JSON.stringify([keyString(key)])
}
