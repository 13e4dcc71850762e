import { compositeKey, type KeyPart, type KeyValue } from '@cutover/core'
import type { ColumnNode, DeleteQueryNode, InsertQueryNode, OperationNode, ReferenceNode, TableNode, UpdateQueryNode } from 'kysely'

/**
 * The keys a write names in its own text, when they bound the rows it can touch: the values of the
 * key column in `insert … values`, or a `key = v` / `key in (v, …)` that the WHERE of an update or
 * delete requires (a top-level conjunct). Knowing them, the wrapper needs no `RETURNING`, which
 * costs the database and the driver more than everything else the wrapper does on the request path.
 *
 * The set may be larger than the rows the write touched (a `where key = 5 and …` that matched
 * nothing, `on conflict do nothing`): harmless, because mirroring re-reads each key's current state.
 * It must never miss one, so anything whose affected keys could differ from the named ones gives
 * `undefined` and the write is captured with `RETURNING`: an update that sets the key, an upsert
 * whose conflict target is not the key, `insert … select`, defaults, expressions, and every clause
 * not known to be harmless (`modifyEnd` text could widen a WHERE). Whether the values are in the form the database returns them is the
 * key column's business (`key-column.ts`), not this file's.
 *
 * `keys` are the table's key columns: one, or those of a composite primary key, whose keys are then
 * `compositeKey`s in that order. A composite key is named only when every one of its columns is.
 */
export function keysNamedByInsert(node: InsertQueryNode, keys: readonly string[]): KeyValue[] | undefined {
  if (node.explain || node.endModifiers?.length || node.replace || node.ignore || node.orAction || node.onDuplicateKey || node.top || node.output || node.defaultValues) return undefined
  if (node.onConflict && !conflictKeepsKeys(node.onConflict as OnConflict, keys)) return undefined
  const columns = node.columns ?? []
  const at = keys.map((key) => columns.findIndex((column) => column.column.name === key))
  if (at.some((index) => index < 0) || node.values?.kind !== 'ValuesNode') return undefined
  const named: KeyValue[] = []
  for (const row of (node.values as OperationNode & { values: readonly OperationNode[] }).values) {
    const parts: KeyPart[] = []
    for (const index of at) {
      const value = valueAt(row, index)
      if (value === undefined) return undefined
      parts.push(value)
    }
    named.push(keyOf(parts))
  }
  return named
}

/** Most keys a filter's IN lists may name together (their product, for a composite key). */
const MAX_NAMED_KEYS = 1_000

/**
 * `target` is the name the statement's columns of the written table are qualified with (its alias,
 * if it has one); `alone` says whether the table is the only one in scope, so that an unqualified
 * column can only be its.
 */
export function keysNamedByFilter(node: UpdateQueryNode | DeleteQueryNode, keys: readonly string[], target: TableNode): KeyValue[] | undefined {
  if (node.explain || node.endModifiers?.length || node.top || node.output || !node.where) return undefined
  const alone = node.joins === undefined && (node.kind === 'UpdateQueryNode' ? node.from === undefined : node.using === undefined)
  const filter = node.where.where
  if (keys.length === 1) return pinnedKeys(filter, keys[0] as string, target, alone)
  // A composite key is pinned when each of its columns is (`tenant_id = 1 and id in (2, 3)`): the
  // rows touched are among the combinations, which may be more than the rows there are (harmless).
  let combinations: KeyPart[][] = [[]]
  for (const key of keys) {
    const values = pinnedKeys(filter, key, target, alone) as KeyPart[] | undefined
    if (values === undefined || combinations.length * values.length > MAX_NAMED_KEYS) return undefined
    combinations = combinations.flatMap((parts) => values.map((value) => [...parts, value]))
  }
  return combinations.map(keyOf)
}

function keyOf(parts: readonly KeyPart[]): KeyValue {
  return parts.length === 1 ? (parts[0] as KeyPart) : compositeKey(...parts)
}

type OnConflict = OperationNode & {
  readonly columns?: readonly ColumnNode[]
  readonly constraint?: OperationNode
  readonly indexExpression?: OperationNode
  readonly updates?: readonly (OperationNode & { readonly column: OperationNode })[]
  readonly doNothing?: boolean
}

/**
 * `do nothing` touches no row but the inserted ones; `do update` touches the conflicting row, which
 * has the inserted key only if the conflict is on exactly the key columns, and keeps it unless the
 * update sets a key column.
 */
function conflictKeepsKeys(conflict: OnConflict, keys: readonly string[]): boolean {
  if (conflict.doNothing) return true
  const target = (conflict.columns ?? []).map((column) => column.column.name)
  if (conflict.constraint || conflict.indexExpression || target.length !== keys.length || !keys.every((key) => target.includes(key))) return false
  return !(conflict.updates ?? []).some((update) => update.column.kind !== 'ColumnNode' || keys.includes((update.column as ColumnNode).column.name))
}

/** The value of one row of `values (…)` at a column, if it is a plain value. */
function valueAt(row: OperationNode, at: number): KeyPart | undefined {
  const values = (row as OperationNode & { values?: readonly unknown[] }).values
  if (!values) return undefined
  if (row.kind === 'PrimitiveValueListNode') return asKey(values[at])
  if (row.kind === 'ValueListNode') return valueOf(values[at] as OperationNode | undefined)
  return undefined
}

function valueOf(node: OperationNode | undefined): KeyPart | undefined {
  return node?.kind === 'ValueNode' ? asKey((node as OperationNode & { value: unknown }).value) : undefined
}

function asKey(value: unknown): KeyPart | undefined {
  return typeof value === 'string' || typeof value === 'number' || typeof value === 'bigint' ? value : undefined
}

/** Keys a filter requires: one conjunct pinning the key is enough, whatever the others say. */
function pinnedKeys(filter: OperationNode, key: string, target: TableNode, alone: boolean): KeyPart[] | undefined {
  switch (filter.kind) {
    case 'AndNode': {
      const { left, right } = filter as OperationNode & { left: OperationNode; right: OperationNode }
      return pinnedKeys(left, key, target, alone) ?? pinnedKeys(right, key, target, alone)
    }
    case 'ParensNode':
      return pinnedKeys((filter as OperationNode & { node: OperationNode }).node, key, target, alone)
    case 'BinaryOperationNode': {
      const { leftOperand, operator, rightOperand } = filter as OperationNode & { leftOperand: OperationNode; operator: OperationNode; rightOperand: OperationNode }
      if (operator.kind !== 'OperatorNode') return undefined
      const op = (operator as OperationNode & { operator: string }).operator
      if (op === '=') {
        if (isKeyColumn(leftOperand, key, target, alone)) return single(valueOf(rightOperand))
        if (isKeyColumn(rightOperand, key, target, alone)) return single(valueOf(leftOperand))
        return undefined
      }
      if (op === 'in' && isKeyColumn(leftOperand, key, target, alone)) return listOf(rightOperand)
      return undefined
    }
    default:
      return undefined
  }
}

function single(value: KeyPart | undefined): KeyPart[] | undefined {
  return value === undefined ? undefined : [value]
}

/** `in (…)`: every item a plain value, else the keys are not known. An empty list pins nothing. */
function listOf(node: OperationNode): KeyPart[] | undefined {
  const values = (node as OperationNode & { values?: readonly unknown[] }).values
  if (!values) return undefined
  const keys: KeyPart[] = []
  for (const item of values) {
    const value = node.kind === 'PrimitiveValueListNode' ? asKey(item) : node.kind === 'ValueListNode' ? valueOf(item as OperationNode) : undefined
    if (value === undefined) return undefined
    keys.push(value)
  }
  return keys
}

/**
 * A reference to the written table's key column: qualified by exactly the name the table goes by in
 * the statement (a self-join's other side is qualified by its own name), or unqualified where no
 * other table is in scope.
 */
function isKeyColumn(node: OperationNode, key: string, target: TableNode, alone: boolean): boolean {
  if (node.kind !== 'ReferenceNode') return false
  const reference = node as ReferenceNode
  if (reference.column.kind !== 'ColumnNode' || reference.column.column.name !== key) return false
  if (!reference.table) return alone
  const named = reference.table.table
  if (named.identifier.name !== target.table.identifier.name) return false
  return named.schema === undefined || named.schema.name === target.table.schema?.name
}
