import type { FieldMap, Row } from '@cutover/core'
import {
  AliasNode,
  ColumnNode,
  FromNode,
  IdentifierNode,
  OperationNodeTransformer,
  type OperationNode,
  type RawNode,
  type ReferenceNode,
  SelectionNode,
  type SelectQueryNode,
  TableNode,
} from 'kysely'
import type { MigratedTable, MigratedTables } from '../dialect/migrated-tables.js'

/** A SELECT whose only source is one migrated table, and what its result rows hold. */
export interface SimpleSelect {
  readonly node: SelectQueryNode
  readonly table: MigratedTable
  /** The name columns are qualified with: the alias, or the table's own name. */
  readonly qualifier: string
  /** The caller's columns, as `[name in the result, column]`; `'*'` for all columns. */
  readonly columns: '*' | readonly (readonly [string, string])[] | undefined
  /** Rows are a subset the database picks (LIMIT/OFFSET without ORDER BY): compare by key only. */
  readonly arbitrarySubset: boolean
}

/**
 * Recognizes `select … from <migrated table> [as alias] [where …] [order by …] [limit …]`. Joins,
 * CTEs, grouping, DISTINCT, set operations and locking clauses are not simple: such reads stay on
 * the store they name. `columns` is undefined when the selection holds expressions (aggregates,
 * functions), which rules out serving the read from the other store but not comparing it.
 */
export function simpleSelect(node: SelectQueryNode, tables: MigratedTables): SimpleSelect | undefined {
  const froms = node.from?.froms
  if (!froms || froms.length !== 1) return undefined
  const found = tables.ofFromItem(froms[0])
  if (!found) return undefined
  if (node.joins || node.with || node.groupBy || node.having || node.distinctOn || node.setOperations || node.explain || node.fetch || node.top) return undefined
  if (node.frontModifiers?.length || node.endModifiers?.length) return undefined
  return {
    node,
    table: found.table,
    qualifier: found.qualifier.table.identifier.name,
    columns: selectedColumns(node.selections ?? []),
    arbitrarySubset: (node.limit !== undefined || node.offset !== undefined) && node.orderBy === undefined,
  }
}

function selectedColumns(selections: readonly SelectionNode[]): SimpleSelect['columns'] {
  const columns: (readonly [string, string])[] = []
  for (const { selection } of selections) {
    if (selection.kind === 'SelectAllNode') return '*'
    if (selection.kind === 'ReferenceNode') {
      const reference = selection as ReferenceNode
      if (reference.column.kind === 'SelectAllNode') return '*'
      columns.push([reference.column.column.name, reference.column.column.name])
      continue
    }
    if (selection.kind === 'ColumnNode') {
      const name = (selection as ColumnNode).column.name
      columns.push([name, name])
      continue
    }
    if (selection.kind === 'AliasNode') {
      const { node, alias } = selection as AliasNode
      const column = node.kind === 'ReferenceNode' && (node as ReferenceNode).column.kind === 'ColumnNode' ? ((node as ReferenceNode).column as ColumnNode).column.name : node.kind === 'ColumnNode' ? (node as ColumnNode).column.name : undefined
      if (column === undefined || alias.kind !== 'IdentifierNode') return undefined
      columns.push([(alias as IdentifierNode).name, column])
      continue
    }
    return undefined
  }
  return columns.length > 0 ? columns : undefined
}

/** A SELECT of the old table rewritten for the new table, with how to shape its rows back. */
export interface TranslatedSelect {
  /** `select * from <new table> as <qualifier> where … order by … limit …`, columns renamed. */
  readonly node: SelectQueryNode
  /** Old-shaped full record → the row the caller's query would have returned. */
  project(record: Row): Row
}

/**
 * Rewrites a simple SELECT of the old table for the new one, through the field map: the key and
 * renamed columns are translated; a reference to a computed column (a split name) or to anything
 * the map does not know makes the query untranslatable (undefined). The result selects whole new
 * rows, which the caller maps back through `mapper.backward` and `project`s to its own columns.
 */
export function translateSelect(
  select: SimpleSelect,
  target: { readonly table: string; readonly key: { readonly old: string; readonly new: string }; readonly fieldMap: FieldMap | undefined; readonly oldFields: readonly string[] | undefined },
): TranslatedSelect | undefined {
  const { columns, node, qualifier } = select
  if (columns === undefined) return undefined
  if (columns !== '*' && target.oldFields && columns.some(([, column]) => !target.oldFields!.includes(column))) return undefined
  const newColumn = (old: string) => (old === target.key.old ? target.key.new : target.fieldMap?.newColumnOf(old))
  const transformer = new ToNewColumns(newColumn, qualifier)
  const where = transformer.transformNode(node.where)
  const orderBy = transformer.transformNode(node.orderBy)
  const limit = transformer.transformNode(node.limit)
  const offset = transformer.transformNode(node.offset)
  if (transformer.untranslatable) return undefined
  const [schema, name] = target.table.includes('.') ? target.table.split('.') : [undefined, target.table]
  const tableNode = schema ? TableNode.createWithSchema(schema, name as string) : TableNode.create(name as string)
  const translated: SelectQueryNode = Object.freeze({
    kind: 'SelectQueryNode',
    // Aliased with the old qualifier, so `users.email`-style references stay valid.
    from: FromNode.create([AliasNode.create(tableNode, IdentifierNode.create(qualifier))]),
    selections: [SelectionNode.createSelectAll()],
    ...(where ? { where } : {}),
    ...(orderBy ? { orderBy } : {}),
    ...(limit ? { limit } : {}),
    ...(offset ? { offset } : {}),
  })
  const project = columns === '*' ? (record: Row) => record : (record: Row) => Object.fromEntries(columns.map(([as, column]) => [as, record[column]]))
  return { node: translated, project }
}

class ToNewColumns extends OperationNodeTransformer {
  untranslatable = false
  readonly #newColumn: (old: string) => string | undefined
  readonly #qualifier: string

  constructor(newColumn: (old: string) => string | undefined, qualifier: string) {
    super()
    this.#newColumn = newColumn
    this.#qualifier = qualifier
  }

  protected override transformColumn(node: ColumnNode): ColumnNode {
    const mapped = this.#newColumn(node.column.name)
    if (mapped === undefined) {
      this.untranslatable = true
      return node
    }
    return ColumnNode.create(mapped)
  }

  protected override transformTable(node: TableNode): TableNode {
    // Only the query's own table (by its qualifier) can be referenced.
    if (node.table.schema !== undefined || node.table.identifier.name !== this.#qualifier) this.untranslatable = true
    return node
  }

  protected override transformSelectQuery(node: SelectQueryNode): SelectQueryNode {
    this.untranslatable = true // a subquery reads other tables, or the same one in the old shape
    return node
  }

  protected override transformRaw(node: RawNode): RawNode {
    // Raw SQL names columns in text we do not parse; keyword-only fragments (`desc`, `nulls
    // last`, as Kysely builds order directions) are safe.
    const keywordsOnly = node.parameters.length === 0 && /^\s*(?:asc|desc)?\s*(?:nulls\s+(?:first|last))?\s*$/i.test(node.sqlFragments.join(''))
    if (!keywordsOnly) this.untranslatable = true
    return node
  }
}


/**
 * The keys a SELECT looks up when its whole filter is `key = v` or `key in (v, …)`: then the
 * other store's answer is exactly its records of those keys, and comparisons of many such reads
 * can share one keyed read of each store. Undefined for any other filter, or when LIMIT/OFFSET
 * could cut a multi-key lookup short.
 */
export function lookedUpKeys(select: SimpleSelect): readonly unknown[] | undefined {
  // A composite key is not looked up by one column's value (`tenant_id = 5` names many keys).
  if (select.table.keys.length > 1) return undefined
  const filter = select.node.where?.where
  if (!filter || filter.kind !== 'BinaryOperationNode') return undefined
  const { leftOperand, operator, rightOperand } = filter as OperationNode & { leftOperand: OperationNode; operator: OperationNode; rightOperand: OperationNode }
  if (!isKeyColumn(leftOperand, select.table.key, select.qualifier) || operator.kind !== 'OperatorNode') return undefined
  const op = (operator as OperationNode & { operator: string }).operator
  let keys: readonly unknown[] | undefined
  if (op === '=' && rightOperand.kind === 'ValueNode') keys = [(rightOperand as OperationNode & { value: unknown }).value]
  else if (op === 'in' && rightOperand.kind === 'PrimitiveValueListNode') keys = (rightOperand as OperationNode & { values: readonly unknown[] }).values
  else if (op === 'in' && rightOperand.kind === 'ValueListNode') {
    const values = (rightOperand as OperationNode & { values: readonly OperationNode[] }).values
    if (values.every((value) => value.kind === 'ValueNode')) keys = values.map((value) => (value as OperationNode & { value: unknown }).value)
  }
  if (!keys || keys.some((key) => key === null || key === undefined || (typeof key === 'object' && !(key instanceof Date)))) return undefined
  if (keys.length > 1 && (select.node.limit || select.node.offset)) return undefined
  return keys
}

function isKeyColumn(node: OperationNode, key: string, qualifier: string): boolean {
  if (node.kind === 'ColumnNode') return (node as ColumnNode).column.name === key
  if (node.kind !== 'ReferenceNode') return false
  const reference = node as ReferenceNode
  if (reference.column.kind !== 'ColumnNode' || reference.column.column.name !== key) return false
  return reference.table === undefined || (reference.table.table.schema === undefined && reference.table.table.identifier.name === qualifier)
}
