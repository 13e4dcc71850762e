/**
 * Quoting for the SQL Cutover generates. Every identifier goes through `sqlIdentifier`, every
 * literal through `sqlLiteral`: a name or value from a definition can never end a statement early.
 */

/** Quotes an identifier for PostgreSQL. */
export function sqlIdentifier(name: string): string {
  return `"${name.replace(/"/g, '""')}"`
}

/** `"schema"."name"`, or `"name"` without a schema. */
export function qualifiedName(schema: string | undefined, name: string): string {
  return schema ? `${sqlIdentifier(schema)}.${sqlIdentifier(name)}` : sqlIdentifier(name)
}

export function sqlString(value: string): string {
  return `'${value.replace(/'/g, "''")}'`
}

export type SqlLiteralValue = string | number | boolean | null

export function sqlLiteral(value: SqlLiteralValue): string {
  if (value === null) return 'null'
  if (typeof value === 'string') return sqlString(value)
  if (typeof value === 'number' && !Number.isFinite(value)) throw new TypeError(`cannot write ${value} as a SQL literal`)
  return String(value)
}

/** PostgreSQL truncates longer identifiers silently, which would make two generated names collide. */
export const MAX_IDENTIFIER_BYTES = 63
