import type { Row } from './store.js'

/** Quotes a column reference for SQL, e.g. `(name) => \`t."${name}"\``. */
export type ColumnRef = (field: string) => string

/**
 * One declarative piece of a field map: how some old fields become some new fields and back, in
 * JavaScript and as PostgreSQL expressions (for compatibility views and in-database checks).
 */
export interface FieldRule {
  readonly kind: 'rename' | 'split' | 'join' | 'convert' | 'default' | 'copy-forward' | 'drop'
  readonly oldFields: readonly string[]
  readonly newFields: readonly string[]
  /** Whether `backward` restores `oldFields` exactly from `newFields`. */
  readonly reversible: boolean
  forward(old: Row): Row
  backward(record: Row): Row
  /** SQL computing each new field from old columns. */
  readonly forwardSql: Readonly<Record<string, (column: ColumnRef) => string>>
  /** SQL computing each old field from new columns. */
  readonly backwardSql: Readonly<Record<string, (column: ColumnRef) => string>>
}

/** The declarative map behind a field-map mapper. */
export interface FieldMap {
  readonly rules: readonly FieldRule[]
  /** The new column holding an old field unchanged (renames), or undefined when computed or absent. */
  newColumnOf(oldField: string): string | undefined
  /** The old field a new column holds unchanged, or undefined when computed or absent. */
  oldFieldOf(newColumn: string): string | undefined
  /** `{ newField: sql }` computing the new shape from a row of the old table. */
  forwardSql(column: ColumnRef): Readonly<Record<string, string>>
  /** `{ oldField: sql }` computing the old shape from a row of the new table. */
  backwardSql(column: ColumnRef): Readonly<Record<string, string>>
}
