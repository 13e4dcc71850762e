import { ConfigError, type ConfigProblem } from '../model/errors.js'
import type { FieldMap } from '../model/field-rule.js'
import { MAX_IDENTIFIER_BYTES, type SqlLiteralValue } from './sql-text.js'

/**
 * A view in the new database that presents one old table's shape, from the field map its mapper
 * uses. Unqualified names resolve through the `search_path` of the session that applies it.
 */
export interface CompatibilityViewDefinition {
  /** The old table's name: old applications keep reading and writing it. */
  readonly view: string
  /** Default: `schema`. */
  readonly viewSchema?: string
  /** The new table the view reads and writes. */
  readonly table: string
  readonly schema?: string
  /** The field map of the migration's mapper (`fieldMapper(...).fieldMap`). */
  readonly fieldMap: FieldMap
  /** The old key field; it must be a `rename`/`copy` of a new column. Default `id`. */
  readonly key?: string
  /**
   * The rows of the new table this view presents, by new column, e.g. `{ account_type: 'customer' }`
   * when two old tables were merged into one. Inserts through the view set these columns; updates
   * and deletes touch only rows that match them.
   */
  readonly where?: Readonly<Record<string, SqlLiteralValue>>
}

/** A checked definition, with every name the generated SQL uses. */
export interface CompatibilityView {
  readonly view: string
  readonly viewSchema: string | undefined
  readonly table: string
  readonly schema: string | undefined
  readonly fieldMap: FieldMap
  readonly key: { readonly old: string; readonly new: string }
  readonly where: Readonly<Record<string, SqlLiteralValue>>
  /** Whether writes need INSTEAD OF triggers (a computed column, a filter); otherwise PostgreSQL updates the view itself. */
  readonly needsTriggers: boolean
  /** Deterministic names, so applying again replaces rather than adds. */
  readonly functions: Readonly<Record<TriggerOperation, string>>
  readonly triggers: Readonly<Record<TriggerOperation, string>>
}

export type TriggerOperation = 'insert' | 'update' | 'delete'
export const TRIGGER_OPERATIONS: readonly TriggerOperation[] = ['insert', 'update', 'delete']

/** Checks a definition at start-up: every problem at once, as a `ConfigError`. */
export function defineCompatibilityView(definition: CompatibilityViewDefinition): CompatibilityView {
  const oldKey = definition.key ?? 'id'
  const newKey = definition.fieldMap.newColumnOf(oldKey)
  const functions = names((op) => `${definition.view}__cutover_${op}`)
  const triggers = names((op) => `cutover_instead_of_${op}`)
  const problems = [
    ...identifierProblems(definition, Object.values(functions)),
    ...(newKey === undefined
      ? [problem(definition, 'key', oldKey, `the key "${oldKey}" must be a rename or copy of a new column in the field map, so writes through the view can find their row`)]
      : []),
  ]
  if (problems.length > 0) throw new ConfigError(problems)
  const where = Object.freeze({ ...(definition.where ?? {}) })
  return Object.freeze({
    view: definition.view,
    viewSchema: definition.viewSchema ?? definition.schema,
    table: definition.table,
    schema: definition.schema,
    fieldMap: definition.fieldMap,
    key: Object.freeze({ old: oldKey, new: newKey as string }),
    where,
    needsTriggers: Object.keys(where).length > 0 || definition.fieldMap.rules.some((rule) => rule.kind !== 'rename'),
    functions,
    triggers,
  })
}

function names(name: (op: TriggerOperation) => string): Readonly<Record<TriggerOperation, string>> {
  return Object.freeze(Object.fromEntries(TRIGGER_OPERATIONS.map((op) => [op, name(op)])) as Record<TriggerOperation, string>)
}

function identifierProblems(definition: CompatibilityViewDefinition, generated: readonly string[]): ConfigProblem[] {
  const given = [definition.view, definition.table, definition.viewSchema, definition.schema].filter((n): n is string => n !== undefined)
  return [...given, ...generated]
    .filter((name) => name.length === 0 || Buffer.byteLength(name) > MAX_IDENTIFIER_BYTES)
    .map((name) =>
      problem(definition, 'name', name, `identifier "${name}" must be 1 to ${MAX_IDENTIFIER_BYTES} bytes (PostgreSQL would truncate it); shorten the view name`),
    )
}

function problem(definition: CompatibilityViewDefinition, field: string, value: unknown, message: string): ConfigProblem {
  return { source: `compatibility view "${definition.view}".${field}`, value, message: `compatibility view "${definition.view}": ${message}` }
}
