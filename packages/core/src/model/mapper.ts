import type { z } from 'zod'
import { MapperError, type FieldIssue } from './errors.js'
import type { FieldMap } from './field-rule.js'
import type { Row } from './store.js'

/** Who is mapping: names the record in a `MapperError`. */
export interface MappingContext {
  readonly key?: string
  readonly migration?: string
}

/**
 * A pure, two-way translation between the old record shape and the new one. The same mapper serves
 * mirroring, backfill, comparison, reverse mirroring and v1 API adapters.
 */
export interface Mapper<Old extends Row = Row, New extends Row = Row> {
  readonly oldSchema: z.ZodType<Old>
  readonly newSchema: z.ZodType<New>
  /** Declared (or, for field maps, proven by construction) `backward(forward(x))` equals `x`. */
  readonly lossless: boolean
  /** The declarative field map, when the mapper was built from one (query translation, SQL views). */
  readonly fieldMap: FieldMap | undefined
  /** old → new; validates the input against `oldSchema` and the output against `newSchema`. */
  forward(record: unknown, context?: MappingContext): New
  /** new → old; validates the input against `newSchema` and the output against `oldSchema`. */
  backward(record: unknown, context?: MappingContext): Old
}

export interface MapperDefinition<OldSchema extends z.ZodType<Row>, NewSchema extends z.ZodType<Row>> {
  readonly old: OldSchema
  readonly new: NewSchema
  readonly forward: (record: z.output<OldSchema>) => z.input<NewSchema>
  readonly backward: (record: z.output<NewSchema>) => z.input<OldSchema>
  /** Set when `backward(forward(x))` equals `x` for every valid `x`; property tests check it. */
  readonly lossless?: boolean
}

/** Builds a mapper from two zod schemas and two functions. */
export function defineMapper<OldSchema extends z.ZodType<Row>, NewSchema extends z.ZodType<Row>>(
  definition: MapperDefinition<OldSchema, NewSchema>,
  fieldMap?: FieldMap,
): Mapper<z.output<OldSchema>, z.output<NewSchema>> {
  const { old: oldSchema, new: newSchema } = definition
  return Object.freeze({
    oldSchema: oldSchema as unknown as z.ZodType<z.output<OldSchema>>,
    newSchema: newSchema as unknown as z.ZodType<z.output<NewSchema>>,
    lossless: definition.lossless ?? false,
    fieldMap,
    forward: (record: unknown, context: MappingContext = {}) =>
      translate('forward', oldSchema, newSchema, definition.forward as (r: Row) => unknown, record, context) as z.output<NewSchema>,
    backward: (record: unknown, context: MappingContext = {}) =>
      translate('backward', newSchema, oldSchema, definition.backward as (r: Row) => unknown, record, context) as z.output<OldSchema>,
  })
}

function translate(
  direction: 'forward' | 'backward',
  from: z.ZodType<Row>,
  to: z.ZodType<Row>,
  fn: (record: Row) => unknown,
  record: unknown,
  context: MappingContext,
): Row {
  const migration = context.migration ?? '(unnamed)'
  const input = from.safeParse(record)
  if (!input.success) throw new MapperError(migration, direction, 'input', context.key, zodIssues(input.error))
  let mapped: unknown
  try {
    mapped = fn(input.data)
  } catch (error) {
    if (error instanceof MapperError) throw error
    throw new MapperError(migration, direction, 'mapping', context.key, [{ path: '', message: (error as Error).message }], error)
  }
  const output = to.safeParse(mapped)
  if (!output.success) throw new MapperError(migration, direction, 'output', context.key, zodIssues(output.error))
  return output.data
}

/**
 * zod's issues as field paths. An "unrecognized keys" issue is reported at the object holding the
 * keys (the root for a top-level field); it becomes one issue per key, at that key's own path, so a
 * dead letter's or a quarantine entry's `fields` name the field to remove or to declare.
 */
export function zodIssues(error: z.ZodError): FieldIssue[] {
  return error.issues.flatMap((issue) => {
    const at = issue.path.map(String)
    if (issue.code !== 'unrecognized_keys') return [{ path: at.join('.'), message: issue.message }]
    return issue.keys.map((key) => ({ path: [...at, key].join('.'), message: `unrecognized key "${key}"` }))
  })
}
