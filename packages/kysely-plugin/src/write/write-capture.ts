import {
  AliasNode,
  ColumnNode,
  IdentifierNode,
  ReferenceNode,
  ReturningNode,
  SelectionNode,
  SelectQueryNode,
  type DeleteQueryNode,
  type InsertQueryNode,
  type MergeQueryNode,
  type OperationNode,
  type RootOperationNode,
  type TableNode,
  type UpdateQueryNode,
} from 'kysely'
import type { KeyValue } from '@cutover/core'
import type { MigratedTable, MigratedTables } from '../dialect/migrated-tables.js'
import { keysNamedByFilter, keysNamedByInsert } from './statement-keys.js'

/**
 * The column the wrapper adds to a write's RETURNING to learn the affected keys. Stripped from the
 * rows the caller gets back; the name is unlikely enough never to clash with a caller's alias.
 */
export const KEY_ALIAS = '__cutover_key'

/** The RETURNING aliases of a table's key columns: `__cutover_key`, or `__cutover_key_1`, `_2`, … for a composite key. */
export function keyAliases(table: MigratedTable): readonly string[] {
  return table.keys.length === 1 ? [KEY_ALIAS] : table.keys.map((_, i) => `${KEY_ALIAS}_${i + 1}`)
}

/**
 * How a write on a migrated table is captured.
 *
 * - `named-keys`: the statement names the keys it can touch (`statement-keys.ts`) in the form the
 *   key column returns them (`key-column.ts`): run the caller's query as it is and record `keys`
 *   if it affected any row.
 * - `returning`: run `node` instead of the caller's query (the caller's plus `RETURNING key AS
 *   __cutover_key`, one round trip), read the keys from the rows, and give the caller back the rows
 *   without that column (or no rows at all when it asked for none).
 * - `source-keys`: PostgreSQL before 17 has no `MERGE … RETURNING`; run the caller's MERGE as is,
 *   then `keyQuery`, which lists the source side of its `ON target.key = source.expr`: a superset of
 *   the keys the MERGE touched, which is safe because mirroring re-reads each key's current state.
 * - `unattributable`: the write names a migrated table but its keys cannot be learned (a write in a
 *   CTE, a MERGE whose ON is not a key equality): reported as unmirrored.
 * - `unkeyed`: the table's side is captured by the change log (`capture: 'change-log'`), which
 *   mirrors the write whatever its keys; the wrapper wants them only for read-your-writes in `ramp`.
 *   Rather than rewrite the caller's statement (which Kysely's log would then show), it runs as
 *   written and the migration's reads stay on the old store a short while (`unmirrored-writes.ts`).
 */
export type WritePlan =
  | { readonly kind: 'passthrough'; readonly table: MigratedTable }
  | { readonly kind: 'named-keys'; readonly table: MigratedTable; readonly op: 'upsert' | 'delete'; readonly keys: readonly KeyValue[] }
  | {
      readonly kind: 'returning'
      readonly table: MigratedTable
      readonly op: 'upsert' | 'delete'
      readonly node: RootOperationNode
      readonly callerWantsRows: boolean
      /** The write moves rows to new keys: RETURNING gives the new keys, the old ones are lost to it. */
      readonly changesKeys: boolean
      /**
       * Set when RETURNING is the statement's last clause, so that the key's selection compiles to
       * the same text at the end of every statement of this shape (`key-returning.ts`).
       */
      readonly shape: string | undefined
    }
  | { readonly kind: 'source-keys'; readonly table: MigratedTable; readonly keyQuery: RootOperationNode }
  | { readonly kind: 'unattributable'; readonly table: MigratedTable; readonly detail: string }
  | { readonly kind: 'unkeyed'; readonly table: MigratedTable }

const WRITE_KINDS = new Set(['InsertQueryNode', 'UpdateQueryNode', 'DeleteQueryNode', 'MergeQueryNode'])

/** Whether keys a statement names can stand for those RETURNING would give (`KeyColumns.accepts`). */
export type NamedKeysCheck = (table: MigratedTable, keys: readonly KeyValue[]) => boolean

/**
 * The capture plan of a write query, or undefined when it writes no migrated table. `capture`
 * says whether keys matter for a table now; when they do not (phase `off`), the plan is
 * `passthrough` and nothing is built, so an idle wrapper costs a table lookup per write.
 * `namedKeys` decides whether keys the statement names may be used instead of RETURNING.
 */
export function planWrite(
  node: RootOperationNode,
  tables: MigratedTables,
  capture: (table: MigratedTable) => boolean = () => true,
  namedKeys: NamedKeysCheck = () => false,
): WritePlan | undefined {
  const plan = planOwnWrite(node, tables, capture, namedKeys) ?? planCteWrites(node, tables)
  if (!plan || plan.kind === 'passthrough') return plan
  if (!capture(plan.table)) return { kind: 'passthrough', table: plan.table }
  // What the wrapper cannot attribute (a write inside WITH, a MERGE whose ON is not a key
  // equality) or would learn with a query of its own (a MERGE's source keys) the triggers log like
  // any other write: it runs as written, and counts as a write of unknown keys, not an unmirrored one.
  if ((plan.kind === 'unattributable' || plan.kind === 'source-keys') && loggedByTriggers(plan.table)) return { kind: 'unkeyed', table: plan.table }
  return plan
}

function planOwnWrite(node: RootOperationNode, tables: MigratedTables, capture: (table: MigratedTable) => boolean, namedKeys: NamedKeysCheck): WritePlan | undefined {
  switch (node.kind) {
    case 'InsertQueryNode':
      return planInsert(node, tables, capture, namedKeys)
    case 'UpdateQueryNode':
      return planUpdate(node, tables, capture, namedKeys)
    case 'DeleteQueryNode':
      return planDelete(node, tables, capture, namedKeys)
    case 'MergeQueryNode':
      return planMerge(node, tables)
    default:
      return undefined
  }
}

function planInsert(node: InsertQueryNode, tables: MigratedTables, capture: (table: MigratedTable) => boolean, namedKeys: NamedKeysCheck): WritePlan | undefined {
  const table = node.into ? tables.ofTableNode(node.into) : undefined
  if (!table) return undefined
  if (!capture(table)) return { kind: 'passthrough', table }
  const keys = keysNamedByInsert(node, table.keys)
  if (keys && namedKeys(table, keys)) return { kind: 'named-keys', table, op: 'upsert', keys }
  if (loggedByTriggers(table)) return { kind: 'unkeyed', table }
  // Unqualified: in INSERT … RETURNING a bare column is the inserted row's.
  return withKeyReturning(node, table, 'upsert', undefined)
}

function planUpdate(node: UpdateQueryNode, tables: MigratedTables, capture: (table: MigratedTable) => boolean, namedKeys: NamedKeysCheck): WritePlan | undefined {
  const target = tables.ofFromItem(node.table)
  if (!target) {
    const listed = node.table?.kind === 'ListNode' ? anyMigrated((node.table as OperationNode & { items: readonly OperationNode[] }).items, tables) : undefined
    return listed ? { kind: 'unattributable', table: listed, detail: 'update of several tables at once' } : undefined
  }
  if (!capture(target.table)) return { kind: 'passthrough', table: target.table }
  const changesKeys = (node.updates ?? []).some((update) => update.column.kind === 'ColumnNode' && target.table.keys.includes((update.column as ColumnNode).column.name))
  const keys = changesKeys ? undefined : keysNamedByFilter(node, target.table.keys, target.qualifier)
  if (keys && namedKeys(target.table, keys)) return { kind: 'named-keys', table: target.table, op: 'upsert', keys }
  if (loggedByTriggers(target.table)) return { kind: 'unkeyed', table: target.table }
  // Qualified by the target's alias or name: with FROM/joins a bare column could be ambiguous.
  return withKeyReturning(node, target.table, 'upsert', target.qualifier, changesKeys)
}

function planDelete(node: DeleteQueryNode, tables: MigratedTables, capture: (table: MigratedTable) => boolean, namedKeys: NamedKeysCheck): WritePlan | undefined {
  const froms = node.from.froms
  const first = froms.length === 1 ? tables.ofFromItem(froms[0]) : undefined
  if (!first) {
    const listed = anyMigrated(froms, tables)
    return listed ? { kind: 'unattributable', table: listed, detail: 'delete from several tables at once' } : undefined
  }
  if (!capture(first.table)) return { kind: 'passthrough', table: first.table }
  const keys = keysNamedByFilter(node, first.table.keys, first.qualifier)
  if (keys && namedKeys(first.table, keys)) return { kind: 'named-keys', table: first.table, op: 'delete', keys }
  if (loggedByTriggers(first.table)) return { kind: 'unkeyed', table: first.table }
  return withKeyReturning(node, first.table, 'delete', first.qualifier)
}

function planMerge(node: MergeQueryNode, tables: MigratedTables): WritePlan | undefined {
  const target = tables.ofFromItem(node.into)
  if (!target) return undefined
  const on = node.using?.on?.on
  // A composite key's ON (`t.k1 = s.a and t.k2 = s.b`) is not listed: such a MERGE is reported.
  const source = on && target.table.keys.length === 1 ? sourceOfKeyEquality(on, target.table.key, target.qualifier) : undefined
  if (!node.using || !source) {
    return { kind: 'unattributable', table: target.table, detail: 'MERGE whose ON clause is not `target.key = source expression`' }
  }
  const select = SelectQueryNode.cloneWithSelections(SelectQueryNode.createFrom([node.using.table], node.with), [
    SelectionNode.create(AliasNode.create(source, IdentifierNode.create(KEY_ALIAS))),
  ])
  return { kind: 'source-keys', table: target.table, keyQuery: select }
}

/** Writes inside `with` (`with x as (update users …) select …`) name a table but hide their keys. */
function planCteWrites(node: RootOperationNode, tables: MigratedTables): WritePlan | undefined {
  if (!(node as { with?: unknown }).with) return undefined
  const expressions = (node as { with?: { expressions: readonly { expression: OperationNode }[] } }).with?.expressions ?? []
  for (const cte of expressions) {
    if (!WRITE_KINDS.has(cte.expression.kind)) continue
    const inner = planWrite(cte.expression as RootOperationNode, tables)
    if (inner) return { kind: 'unattributable', table: inner.table, detail: `${cte.expression.kind} inside a WITH clause` }
  }
  return undefined
}

/** Whether the change log's triggers record this side's writes, whatever keys they touch. */
export function loggedByTriggers(table: MigratedTable): boolean {
  return table.runtime.changeLog?.captures(table.side) ?? false
}

function withKeyReturning(
  node: InsertQueryNode | UpdateQueryNode | DeleteQueryNode,
  table: MigratedTable,
  op: 'upsert' | 'delete',
  qualifier: TableNode | undefined,
  changesKeys = false,
): WritePlan {
  const aliases = keyAliases(table)
  const selections = table.keys.map((key, i) =>
    SelectionNode.create(AliasNode.create(ReferenceNode.create(ColumnNode.create(key), qualifier), IdentifierNode.create(aliases[i] as string)) as never),
  )
  const returning = node.returning ? ReturningNode.cloneWithSelections(node.returning, selections) : ReturningNode.create(selections)
  // Nothing is compiled after RETURNING but ORDER BY and LIMIT (MySQL forms) and `modifyEnd` text.
  const last = !node.endModifiers?.length && !(node as { orderBy?: unknown }).orderBy && !(node as { limit?: unknown }).limit
  const shape = last ? JSON.stringify([node.kind, node.returning !== undefined, qualifier?.table.schema?.name, qualifier?.table.identifier.name, table.keys]) : undefined
  return { kind: 'returning', table, op, node: Object.freeze({ ...node, returning }), callerWantsRows: node.returning !== undefined, changesKeys, shape }
}

/** In `a = b`, the side that is not the target's key column, if one side is. */
function sourceOfKeyEquality(on: OperationNode, key: string, qualifier: TableNode): OperationNode | undefined {
  if (on.kind !== 'BinaryOperationNode') return undefined
  const { leftOperand, operator, rightOperand } = on as OperationNode & { leftOperand: OperationNode; operator: OperationNode; rightOperand: OperationNode }
  if (operator.kind !== 'OperatorNode' || (operator as OperationNode & { operator: string }).operator !== '=') return undefined
  if (isTargetKey(leftOperand, key, qualifier)) return rightOperand
  if (isTargetKey(rightOperand, key, qualifier)) return leftOperand
  return undefined
}

function isTargetKey(node: OperationNode, key: string, qualifier: TableNode): boolean {
  if (node.kind !== 'ReferenceNode') return false
  const reference = node as ReferenceNode
  if (reference.column.kind !== 'ColumnNode' || reference.column.column.name !== key) return false
  return reference.table?.table.identifier.name === qualifier.table.identifier.name
}

function anyMigrated(items: readonly OperationNode[], tables: MigratedTables): MigratedTable | undefined {
  for (const item of items) {
    const found = tables.ofFromItem(item)
    if (found) return found.table
  }
  return undefined
}

/** The caller's result: the rows without the key columns (none when it asked for none). */
export function stripKeys<R>(rows: readonly Record<string, unknown>[], callerWantsRows: boolean, aliases: readonly string[] = [KEY_ALIAS]): R[] {
  if (!callerWantsRows) return []
  if (aliases.length === 1) {
    return rows.map((row) => {
      const { [KEY_ALIAS]: _key, ...rest } = row
      return rest as R
    })
  }
  return rows.map((row) => {
    const rest = { ...row }
    for (const alias of aliases) delete rest[alias]
    return rest as R
  })
}
