import type { z } from 'zod'
import type { ConfigProblem } from '../model/errors.js'
import type { Migration } from '../model/migration.js'
import type { Phase, Side } from '../model/phase.js'
import type { StoreShape } from '../model/store.js'
import { describeError } from './background.js'

/** What the checks of a migration's stores found. */
export interface StoreCheckResult {
  /** Configuration that would fail at the first write or hide data: wrong table, key or columns. */
  readonly problems: readonly ConfigProblem[]
  /** Stores that could not be described (unreachable): nothing known either way. */
  readonly unreachable: readonly { readonly side: Side; readonly store: string; readonly error: string }[]
}

/**
 * The sides a phase touches. `off` touches only the old store, so a new table that does not exist
 * yet is no error until the migration leaves `off`; `rollback` is never held back (it is how a
 * fleet gets away from a failing new store), so it asks for no check at all.
 */
export function sidesCheckedFor(phase: Phase): readonly Side[] {
  if (phase === 'rollback') return []
  return phase === 'off' ? ['old'] : ['old', 'new']
}

/**
 * Describes the stores of `sides` and checks each against the migration: the table or collection
 * exists, the key field is one of its fields and is unique, the old store holds no field its zod
 * schema does not name (that column would be dropped silently, and verification, which compares
 * mapped fields, would never see it) unless declared dropped, and the new store holds every field
 * its schema writes. Stores without `describe` are not checked.
 */
export async function checkStores(migration: Migration<any, any>, sides: readonly Side[]): Promise<StoreCheckResult> {
  const problems: ConfigProblem[] = []
  const unreachable: { side: Side; store: string; error: string }[] = []
  await Promise.all(
    sides.map(async (side) => {
      const store = migration[side]
      if (typeof store.describe !== 'function') return
      let shape: StoreShape
      try {
        shape = await store.describe()
      } catch (error) {
        unreachable.push({ side, store: store.name, error: describeError(error) })
        return
      }
      problems.push(...shapeProblems(migration, side, shape))
    }),
  )
  return { problems, unreachable }
}

function shapeProblems(migration: Migration<any, any>, side: Side, shape: StoreShape): ConfigProblem[] {
  const store = migration[side]
  const source = `migration "${migration.name}" ${side} store ${store.name}`
  const problem = (message: string, value: unknown = store.name): ConfigProblem => ({ source, value, message: `${source}: ${message}` })
  if (!shape.exists) return [problem('the table or collection does not exist')]
  const key = migration.key[side]
  const fields = shape.fields
  const listed = fields ? `; fields: ${fields.join(', ')}` : ''
  const problems: ConfigProblem[] = []
  if (fields ? !fields.includes(key) : key === store.keyField && !shape.keyExists) problems.push(problem(`key "${key}" is not a field of the store${listed}`, key))
  else if (key === store.keyField && shape.keyUnique === false) problems.push(problem(`key "${key}" is not unique (no primary key or unique index on it)`, key))
  const named = schemaFields(side === 'old' ? migration.mapper.oldSchema : migration.mapper.newSchema)
  if (!fields || !named) return problems
  if (side === 'old') {
    const dropped = new Set([...(migration.droppedColumns ?? []), ...(migration.mapper.fieldMap?.rules ?? []).filter((rule) => rule.kind === 'drop').flatMap((rule) => rule.oldFields)])
    for (const field of fields) {
      if (!named.has(field) && !dropped.has(field)) problems.push(problem(`field "${field}" is not named by the old schema: name it (and map it), or list it in droppedColumns`, field))
    }
  } else {
    for (const field of named) if (!fields.includes(field)) problems.push(problem(`the new schema writes field "${field}", which the store does not have${listed}`, field))
  }
  return problems
}

/** The top-level fields of an object schema; undefined for any other schema (nothing to check). */
function schemaFields(schema: z.ZodType): ReadonlySet<string> | undefined {
  const def = (schema as { _zod?: { def?: { type?: string; shape?: Record<string, unknown> } } })._zod?.def
  return def?.type === 'object' && def.shape ? new Set(Object.keys(def.shape)) : undefined
}
