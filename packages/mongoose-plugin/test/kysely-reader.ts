/**
 * A `NewStoreReader` for a PostgreSQL table through Kysely: what an application moving from MongoDB
 * to PostgreSQL hands the plugin so translated reads can run on the new store. Renders the
 * translated filter with MongoDB's semantics (`$ne`/`$nin` match NULL, ascending sorts put NULLs
 * first). Kept with the tests: the plugin itself does not depend on Kysely.
 */
import { type Expression, type ExpressionBuilder, type Kysely, type SqlBool, sql } from 'kysely'
import type { FilterNode, NewStoreReader, TranslatedQuery } from '../src/index.js'

export function kyselyReader(db: Kysely<any>, table: string, options: { fromRow?: (row: Record<string, unknown>) => Record<string, unknown> } = {}): NewStoreReader {
  const fromRow = options.fromRow ?? ((row) => row)
  return {
    async find(query: TranslatedQuery) {
      let q = db.selectFrom(table).selectAll()
      if (query.filter) q = q.where((eb) => render(eb, query.filter as FilterNode))
      for (const key of query.sort) q = q.orderBy(sql`${sql.ref(key.column)} ${sql.raw(key.direction === 'asc' ? 'asc nulls first' : 'desc nulls last')}`)
      if (query.limit) q = q.limit(query.limit)
      if (query.skip) q = q.offset(query.skip)
      return (await q.execute()).map(fromRow)
    },
    async count(filter: FilterNode | undefined) {
      let q = db.selectFrom(table).select(sql<string>`count(*)`.as('n'))
      if (filter) q = q.where((eb) => render(eb, filter))
      return Number((await q.executeTakeFirstOrThrow()).n)
    },
  }
}

function render(eb: ExpressionBuilder<any, any>, node: FilterNode): Expression<SqlBool> {
  switch (node.kind) {
    case 'and':
      return node.nodes.length === 0 ? sql<SqlBool>`true` : eb.and(node.nodes.map((n) => render(eb, n)))
    case 'or':
      return eb.or(node.nodes.map((n) => render(eb, n)))
    case 'exists':
      return eb(node.column, node.exists ? 'is not' : 'is', null)
    case 'in':
      return node.values.length === 0 ? sql<SqlBool>`false` : eb(node.column, 'in', node.values as any[])
    case 'not-in':
      return node.values.length === 0 ? sql<SqlBool>`true` : eb.or([eb(node.column, 'not in', node.values as any[]), eb(node.column, 'is', null)])
    case 'compare':
      if (node.value === null) return eb(node.column, node.op === '=' ? 'is' : 'is not', null)
      if (node.op === '<>') return eb.or([eb(node.column, '<>', node.value as any), eb(node.column, 'is', null)])
      return eb(node.column, node.op, node.value as any)
  }
}
