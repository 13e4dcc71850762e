/**
 * Translation of the supported subset of MongoDB filters into a small, store-neutral query the new
 * store can run (`NewStoreReader`): equality, `$eq`, `$ne`, `$gt`, `$gte`, `$lt`, `$lte`, `$in`,
 * `$nin`, `$exists`, `$and`, `$or`, plus sort, limit and skip. Fields are renamed through the
 * migration's key and the mapper's field map (`fieldMap.newColumnOf`: renames only, since a
 * computed column cannot be filtered by the old value); values are translated the way the store
 * rows translate them (ObjectId → hex string, Dates and primitives unchanged).
 *
 * Anything else (regular expressions, array fields, nested paths, `$elemMatch`, `$expr`, `$nor`,
 * fields without a rename) is untranslatable: such a read is compared by key and never served
 * from the new store.
 */
import type { FieldMap, FilterNode, SortKey, TranslatedQuery } from '@cutover/core'
import { isPlainObject } from '../write/affected-keys.js'
import { isObjectId } from '../keys.js'

// The translated query's types are the core's, shared with the readers that run them.
export type { FilterNode, NewStoreReader, SortKey, TranslatedQuery } from '@cutover/core'

/** How old field names become new columns. */
export interface FieldMapping {
  readonly oldKey: string
  readonly newKey: string
  readonly fieldMap: FieldMap | undefined
  /** Old paths holding arrays (MongoDB equality on them means "contains"). */
  readonly arrayPaths: ReadonlySet<string>
}

export type Translation<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly reason: string }

class Untranslatable extends Error {}

const COMPARISONS = { $eq: '=', $ne: '<>', $gt: '>', $gte: '>=', $lt: '<', $lte: '<=' } as const

export function translateFilter(filter: unknown, mapping: FieldMapping): Translation<FilterNode | undefined> {
  try {
    return { ok: true, value: filterNode(filter ?? {}, mapping) }
  } catch (error) {
    if (error instanceof Untranslatable) return { ok: false, reason: error.message }
    throw error
  }
}

export function translateQuery(
  parts: { filter: unknown; sort?: unknown; limit?: number | undefined; skip?: number | undefined },
  mapping: FieldMapping,
): Translation<TranslatedQuery> {
  try {
    const filter = filterNode(parts.filter ?? {}, mapping)
    return {
      ok: true,
      value: {
        filter,
        sort: sortKeys(parts.sort, mapping),
        ...(parts.limit ? { limit: parts.limit } : {}),
        ...(parts.skip ? { skip: parts.skip } : {}),
      },
    }
  } catch (error) {
    if (error instanceof Untranslatable) return { ok: false, reason: error.message }
    throw error
  }
}

/** The new column of an old field, or throws `Untranslatable`. */
export function columnOf(field: string, mapping: FieldMapping): string {
  if (field === mapping.oldKey) return mapping.newKey
  if (mapping.arrayPaths.has(field)) throw new Untranslatable(`"${field}" is an array field`)
  const column = mapping.fieldMap?.newColumnOf(field)
  if (column === undefined) throw new Untranslatable(`"${field}" has no renamed column in the field map`)
  return column
}

function filterNode(filter: unknown, mapping: FieldMapping): FilterNode | undefined {
  if (!isPlainObject(filter)) throw new Untranslatable('filter is not a plain object')
  const nodes: FilterNode[] = []
  for (const [field, condition] of Object.entries(filter)) {
    if (field === '$and' || field === '$or') {
      if (!Array.isArray(condition) || condition.length === 0) throw new Untranslatable(`${field} needs a non-empty array`)
      const children = condition.map((c) => filterNode(c, mapping) ?? ALWAYS)
      nodes.push({ kind: field === '$and' ? 'and' : 'or', nodes: children })
      continue
    }
    if (field.startsWith('$')) throw new Untranslatable(`${field} is not supported`)
    const column = columnOf(field, mapping)
    if (isPlainObject(condition) && Object.keys(condition).some((k) => k.startsWith('$'))) {
      for (const [operator, operand] of Object.entries(condition)) nodes.push(operatorNode(column, operator, operand))
    } else {
      nodes.push({ kind: 'compare', column, op: '=', value: value(condition) })
    }
  }
  if (nodes.length === 0) return undefined
  return nodes.length === 1 ? nodes[0] : { kind: 'and', nodes }
}

/** `{}` inside `$and`/`$or`: matches every row. */
const ALWAYS: FilterNode = { kind: 'and', nodes: [] }

function operatorNode(column: string, operator: string, operand: unknown): FilterNode {
  if (operator in COMPARISONS) {
    const op = COMPARISONS[operator as keyof typeof COMPARISONS]
    if (operand === null && op !== '=' && op !== '<>') throw new Untranslatable(`${operator}: null`)
    return { kind: 'compare', column, op, value: value(operand) }
  }
  if (operator === '$in' || operator === '$nin') {
    if (!Array.isArray(operand)) throw new Untranslatable(`${operator} needs an array`)
    return { kind: operator === '$in' ? 'in' : 'not-in', column, values: operand.map(value) }
  }
  if (operator === '$exists') return { kind: 'exists', column, exists: Boolean(operand) }
  throw new Untranslatable(`${operator} is not supported`)
}

function value(v: unknown): unknown {
  if (v === null || typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return v
  if (v instanceof Date) return v
  if (isObjectId(v)) return v.toHexString().toLowerCase()
  throw new Untranslatable(`values of type ${describeType(v)} are not supported`)
}

function sortKeys(sort: unknown, mapping: FieldMapping): SortKey[] {
  if (sort === undefined || sort === null) return []
  if (!isPlainObject(sort)) throw new Untranslatable('sort is not a plain object')
  return Object.entries(sort).map(([field, direction]) => {
    const d = direction === 1 || direction === 'asc' || direction === 'ascending' ? 'asc' : direction === -1 || direction === 'desc' || direction === 'descending' ? 'desc' : undefined
    if (!d) throw new Untranslatable(`sort ${field}: ${String(direction)} is not supported`)
    return { column: columnOf(field, mapping), direction: d }
  })
}

function describeType(v: unknown): string {
  if (Array.isArray(v)) return 'array'
  if (v instanceof RegExp) return 'RegExp'
  return (v as { _bsontype?: string } | undefined)?._bsontype ?? typeof v
}
