import type { z } from 'zod'
import { ConfigError } from './errors.js'
import { defineMapper, type Mapper } from './mapper.js'
import type { ColumnRef, FieldMap, FieldRule } from './field-rule.js'
import type { Row } from './store.js'
import { sqlIdentifier, sqlLiteral, sqlString } from '../compat/sql-text.js'

/** `new[to] = old[from]` and back. */
export function rename(from: string, to: string): FieldRule {
  return Object.freeze({
    kind: 'rename',
    oldFields: [from],
    newFields: [to],
    reversible: true,
    forward: (old: Row) => ({ [to]: old[from] }),
    backward: (record: Row) => ({ [from]: record[to] }),
    forwardSql: { [to]: (c: ColumnRef) => c(from) },
    backwardSql: { [from]: (c: ColumnRef) => c(to) },
  })
}

/** The field keeps its name and value. */
export function copy(field: string): FieldRule {
  return rename(field, field)
}

/**
 * Splits `from` at the first `separator`: `"Ada King Lovelace"` → `first = "Ada"`,
 * `rest = "King Lovelace"`. `rest` is null when there is no separator, so joining back is exact
 * (`"Ada"` and `"Ada "` stay apart).
 */
export function split(from: string, into: readonly [first: string, rest: string], options: { separator?: string } = {}): FieldRule {
  const separator = options.separator ?? ' '
  const [first, rest] = into
  const sep = sqlString(separator)
  return Object.freeze({
    kind: 'split',
    oldFields: [from],
    newFields: [first, rest],
    reversible: true,
    forward: (old: Row) => splitValue(old[from], separator, first, rest),
    backward: (record: Row) => ({ [from]: joinValue(record[first], record[rest], separator) }),
    forwardSql: {
      [first]: (c: ColumnRef) => `split_part(${c(from)}, ${sep}, 1)`,
      [rest]: (c: ColumnRef) =>
        `case when strpos(${c(from)}, ${sep}) > 0 then substr(${c(from)}, strpos(${c(from)}, ${sep}) + ${separator.length}) end`,
    },
    backwardSql: {
      [from]: (c: ColumnRef) => `case when ${c(rest)} is null then ${c(first)} else ${c(first)} || ${sep} || ${c(rest)} end`,
    },
  })
}

/** The inverse of `split`: `new[to] = first + separator + rest` (just `first` when `rest` is null). */
export function join(fields: readonly [first: string, rest: string], to: string, options: { separator?: string } = {}): FieldRule {
  const inverse = split(to, fields, options)
  return Object.freeze({
    kind: 'join',
    oldFields: inverse.newFields,
    newFields: inverse.oldFields,
    reversible: true,
    forward: inverse.backward,
    backward: inverse.forward,
    forwardSql: inverse.backwardSql,
    backwardSql: inverse.forwardSql,
  })
}

export interface ConvertOptions {
  readonly forward: (value: unknown) => unknown
  /** Omit for a one-way conversion; the mapper is then not lossless. */
  readonly backward?: (value: unknown) => unknown
  readonly forwardSql?: (column: string) => string
  readonly backwardSql?: (column: string) => string
}

/** `new[to] = forward(old[from])`, with the inverse and SQL equivalents when given. Nulls pass through. */
export function convert(from: string, to: string, options: ConvertOptions): FieldRule {
  const nullSafe = (fn: (value: unknown) => unknown) => (value: unknown) => (value === null || value === undefined ? value : fn(value))
  const forward = nullSafe(options.forward)
  const backward = options.backward ? nullSafe(options.backward) : undefined
  return Object.freeze({
    kind: 'convert',
    oldFields: [from],
    newFields: [to],
    reversible: backward !== undefined,
    forward: (old: Row) => ({ [to]: forward(old[from]) }),
    backward: (record: Row) => (backward ? { [from]: backward(record[to]) } : {}),
    forwardSql: options.forwardSql ? { [to]: (c: ColumnRef) => options.forwardSql!(c(from)) } : {},
    backwardSql: options.backwardSql ? { [from]: (c: ColumnRef) => options.backwardSql!(c(to)) } : {},
  })
}

/** Integer minor units to decimal major units and back, e.g. cents → dollars with `divisor` 100. */
export function scale(from: string, to: string, divisor: number): FieldRule {
  return convert(from, to, {
    forward: (v) => Number(v) / divisor,
    backward: (v) => Math.round(Number(v) * divisor),
    forwardSql: (c) => `(${c}::numeric / ${divisor})`,
    backwardSql: (c) => `round(${c} * ${divisor})::bigint`,
  })
}

/** A field only the new shape has, filled with `value` (a new required column). Dropped going back. */
export function withDefault(to: string, value: string | number | boolean | null): FieldRule {
  return Object.freeze({
    kind: 'default',
    oldFields: [],
    newFields: [to],
    reversible: true,
    forward: () => ({ [to]: value }),
    backward: () => ({}),
    forwardSql: { [to]: () => sqlLiteral(value) },
    backwardSql: {},
  })
}

/** Also copies `from` into `to` (e.g. `legacy_full_name`); going back, another rule restores `from`. */
export function copyForward(from: string, to: string): FieldRule {
  return Object.freeze({
    kind: 'copy-forward',
    oldFields: [from],
    newFields: [to],
    reversible: false,
    forward: (old: Row) => ({ [to]: old[from] }),
    backward: () => ({}),
    forwardSql: { [to]: (c: ColumnRef) => c(from) },
    backwardSql: {},
  })
}

/** An old field the new shape does not keep. Going back it gets `fallback`. Makes the mapper lossy. */
export function drop(from: string, fallback: string | number | boolean | null = null): FieldRule {
  return Object.freeze({
    kind: 'drop',
    oldFields: [from],
    newFields: [],
    reversible: false,
    forward: () => ({}),
    backward: () => ({ [from]: fallback }),
    forwardSql: {},
    backwardSql: { [from]: () => sqlLiteral(fallback) },
  })
}

export interface FieldMapperDefinition<OldSchema extends z.ZodType<Row>, NewSchema extends z.ZodType<Row>> {
  readonly old: OldSchema
  readonly new: NewSchema
  readonly fields: readonly FieldRule[]
}

/**
 * A mapper from declarative rules. Every field of the old object schema must be named by a rule
 * (use `drop` to say it is not kept): a field forgotten in a map is data lost. The mapper is
 * lossless when every old field is restored by a reversible rule.
 */
export function fieldMapper<OldSchema extends z.ZodType<Row>, NewSchema extends z.ZodType<Row>>(
  definition: FieldMapperDefinition<OldSchema, NewSchema>,
): Mapper<z.output<OldSchema>, z.output<NewSchema>> {
  const { fields } = definition
  const oldShape = objectKeys(definition.old)
  const covered = new Set(fields.flatMap((rule) => rule.oldFields))
  const uncovered = oldShape?.filter((field) => !covered.has(field)) ?? []
  if (uncovered.length > 0) {
    throw new ConfigError(
      uncovered.map((field) => ({
        source: `fieldMapper.fields`,
        value: field,
        message: `old field "${field}" is named by no rule of the field map; map it, or drop("${field}") to say it is not kept`,
      })),
    )
  }
  const restored = new Set(fields.filter((rule) => rule.reversible).flatMap((rule) => rule.oldFields))
  const lossless = oldShape !== undefined && oldShape.every((field) => restored.has(field)) && !fields.some((r) => r.kind === 'drop')

  const fieldMap = createFieldMap(fields)
  return defineMapper(
    {
      old: definition.old,
      new: definition.new,
      lossless,
      forward: (old) => Object.assign({}, ...fields.map((rule) => rule.forward(old as Row))),
      backward: (record) => Object.assign({}, ...fields.filter((r) => r.kind !== 'copy-forward').map((rule) => rule.backward(record as Row))),
    },
    fieldMap,
  )
}

function createFieldMap(rules: readonly FieldRule[]): FieldMap {
  const renames = rules.filter((rule) => rule.kind === 'rename')
  return Object.freeze({
    rules,
    newColumnOf: (oldField: string) => renames.find((rule) => rule.oldFields[0] === oldField)?.newFields[0],
    oldFieldOf: (newColumn: string) => renames.find((rule) => rule.newFields[0] === newColumn)?.oldFields[0],
    forwardSql: (column: ColumnRef) =>
      Object.fromEntries(rules.flatMap((rule) => Object.entries(rule.forwardSql).map(([field, sql]) => [field, sql(column)]))),
    backwardSql: (column: ColumnRef) =>
      Object.fromEntries(rules.flatMap((rule) => Object.entries(rule.backwardSql).map(([field, sql]) => [field, sql(column)]))),
  })
}

function splitValue(value: unknown, separator: string, first: string, rest: string): Row {
  if (value === null || value === undefined) return { [first]: value ?? null, [rest]: null }
  const text = String(value)
  const at = text.indexOf(separator)
  return at < 0 ? { [first]: text, [rest]: null } : { [first]: text.slice(0, at), [rest]: text.slice(at + separator.length) }
}

function joinValue(first: unknown, rest: unknown, separator: string): unknown {
  if (first === null || first === undefined) return rest === null || rest === undefined ? null : `${separator}${String(rest)}`
  return rest === null || rest === undefined ? first : `${String(first)}${separator}${String(rest)}`
}

function objectKeys(schema: z.ZodType): string[] | undefined {
  const shape = (schema as { shape?: Record<string, unknown> }).shape
  return shape && typeof shape === 'object' ? Object.keys(shape) : undefined
}

export { compatibilityViewSql } from '../compat/view-sql.js'
export { sqlIdentifier }
