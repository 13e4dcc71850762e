/**
 * `KyselyQueryReader`: the `NewStoreReader` for a PostgreSQL table through Kysely, what an
 * application moving from MongoDB (Mongoose) to PostgreSQL hands the Mongoose plugin so that
 * translated reads (`find`, `findOne`, `countDocuments` with the supported filter subset) can be
 * served by, and compared against, the new table:
 *
 *     schema.plugin(cutover, { cutover, migration: 'people', reader: new KyselyQueryReader(db, 'people') })
 *
 * The translated filter is rendered with MongoDB's semantics where SQL differs (see
 * `FilterNode`): `$ne` / `$nin` match NULL, `= null` is `is null`, ascending sorts put NULLs
 * first and descending ones last. Queries run as the store's own (`asStoreQuery`), so a `db` that
 * is itself wrapped by `withCutover` passes them straight through.
 */
import type { FilterNode, NewStoreReader, TranslatedQuery } from '@cutover/core'
import { type Expression, type ExpressionBuilder, type Kysely, type SqlBool, sql } from 'kysely'
import { asStoreQuery } from '../store/store-query.js'

export interface KyselyQueryReaderOptions {
  /** The table's schema, when it is not on the search path. */
  readonly schema?: string
  /** Turns a row as PostgreSQL returns it into the row the migration's mapper reads (e.g. numeric strings to numbers). */
  readonly fromRow?: (row: Record<string, unknown>) => Record<string, unknown>
}

export class KyselyQueryReader implements NewStoreReader {
  readonly #db: Kysely<any>
  readonly #table: string
  readonly #fromRow: (row: Record<string, unknown>) => Record<string, unknown>

  constructor(db: Kysely<any>, table: string, options: KyselyQueryReaderOptions = {}) {
    this.#db = options.schema ? db.withSchema(options.schema) : db
    this.#table = table
    this.#fromRow = options.fromRow ?? ((row) => row)
  }

  async find(query: TranslatedQuery): Promise<readonly Record<string, unknown>[]> {
    let q = this.#db.selectFrom(this.#table).selectAll()
    const filter = query.filter
    if (filter) q = q.where((eb) => render(eb, filter))
    for (const key of query.sort) q = q.orderBy(sql`${sql.ref(key.column)} ${sql.raw(key.direction === 'asc' ? 'asc nulls first' : 'desc nulls last')}`)
    if (query.limit) q = q.limit(query.limit)
    if (query.skip) q = q.offset(query.skip)
    const rows = await asStoreQuery(() => q.execute())
    return rows.map((row) => this.#fromRow(row as Record<string, unknown>))
  }

  async count(filter: FilterNode | undefined): Promise<number> {
    let q = this.#db.selectFrom(this.#table).select(sql<string>`count(*)`.as('n'))
    if (filter) q = q.where((eb) => render(eb, filter))
    const row = await asStoreQuery(() => q.executeTakeFirstOrThrow())
    return Number(row.n)
  }
}

/** A translated filter as a SQL condition with MongoDB's semantics. */
function render(eb: ExpressionBuilder<any, any>, node: FilterNode): Expression<SqlBool> {
  switch (node.kind) {
    case 'and':
      return node.nodes.length === 0 ? sql<SqlBool>`true` : eb.and(node.nodes.map((n) => render(eb, n)))
    case 'or':
      return node.nodes.length === 0 ? sql<SqlBool>`false` : eb.or(node.nodes.map((n) => render(eb, n)))
    case 'exists':
      return eb(node.column, node.exists ? 'is not' : 'is', null)
    case 'in':
    case 'not-in':
      return membership(eb, node.column, node.values, node.kind === 'in')
    case 'compare':
      if (node.value === null) return eb(node.column, node.op === '=' ? 'is' : 'is not', null)
      if (node.op === '<>') return eb.or([eb(node.column, '<>', node.value as any), eb(node.column, 'is', null)])
      return eb(node.column, node.op, node.value as any)
  }
}

/**
 * `$in` matches NULL when its list holds null; `$nin` matches NULL unless its list holds null. SQL's
 * `in` never matches NULL, and `not in` with a NULL in the list matches nothing: null is taken out
 * of the list and decided on its own.
 */
function membership(eb: ExpressionBuilder<any, any>, column: string, values: readonly unknown[], inside: boolean): Expression<SqlBool> {
  const listed = values.filter((v) => v !== null && v !== undefined) as any[]
  const nullListed = listed.length < values.length
  if (inside) {
    const some = listed.length === 0 ? sql<SqlBool>`false` : eb(column, 'in', listed)
    return nullListed ? eb.or([some, eb(column, 'is', null)]) : some
  }
  const none = listed.length === 0 ? sql<SqlBool>`true` : eb(column, 'not in', listed)
  return nullListed ? eb.and([none, eb(column, 'is not', null)]) : eb.or([none, eb(column, 'is', null)])
}
