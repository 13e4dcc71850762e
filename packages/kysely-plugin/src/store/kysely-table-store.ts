/**
 * `KyselyTableStore`: the core `Store` for one PostgreSQL table, usable as the old or the new side of
 * any migration (Kysely → Kysely, Mongoose → PostgreSQL, …).
 *
 *     const store = new KyselyTableStore(db, 'public.users', 'id')
 *     const store = new KyselyTableStore(db, 'users', 'user_id', { columns: ['user_id', 'full_name', 'email'] })
 *
 * - `db`: any Kysely instance on the database holding the table. It may be the application's own
 *   Cutover-wrapped instance: the store marks its queries (`asStoreQuery`) so the interceptor never
 *   mirrors, routes or rejects them. A Kysely on the plain dialect works just as well.
 * - `table`: `name` or `schema.name`.
 * - `key`: the key column; it should be unique (primary key or unique index: upserts use
 *   `on conflict (key)`).
 * - `options.columns`: the columns read and written (default: every column on read, the record's
 *   fields on write).
 * - `options.fromRow` / `options.toRow`: per-row transforms between the table's rows and the records
 *   the migration sees (e.g. parse a JSON column).
 *
 * Every query is a single statement keyed by `key`: `= any($1)` for get and delete, keyset
 * `where key > $after order by key limit $n` for scans, and `insert … on conflict (key)` for upserts
 * (`do update` for `overwrite`, `do nothing` for `insert-if-absent`, `do update … where
 * t.version < excluded.version` for `version-guard`). Upserts bind one array per column and
 * `unnest` them (the column types come from the catalog, read once), so a batch of any size is one
 * cheap statement; rows that cannot go that way use a multi-row VALUES list. Driver errors surface
 * as the core's `StoreError` naming the store and the operation.
 */
import { type CapturableTable, compareKeys, type KeyPart, StoreError, sqlIdentifier, type KeyValue, keyString, recordKey, type Row, type Store, type StoreShape, type StoredWrite, type WriteMode, type WriteResult } from '@cutover/core'
import { type Kysely, type QueryId, type RawBuilder, type SelectQueryNode, sql } from 'kysely'
import { installReadOnlyTrigger, removeReadOnlyTrigger } from './read-only-trigger.js'
import { asStoreQuery } from './store-query.js'
import { readTableColumns, type TableColumn } from './table-columns.js'

export interface KyselyTableStoreOptions<R extends Row = Row> {
  /** Columns read and written. Default: all columns on read; the record's own fields on write. */
  readonly columns?: readonly string[]
  /** Table row → record, applied to every row read. */
  readonly fromRow?: (row: Row) => R
  /** Record → table row, applied to every record written. */
  readonly toRow?: (record: R) => Row
  /** For logs, metrics and errors. Default `postgres:<schema>.<table>`. */
  readonly name?: string
}

/**
 * A condition that is always true and marks the statement's transaction as Cutover's own write
 * (`cutover.origin`, transaction-local): change-log triggers skip it, so the mirror's and backfill's
 * writes are not captured as application changes and sent back the other way. An uncorrelated
 * sub-select runs once, before any row is written.
 */
const OWN_WRITE = sql<boolean>`(select set_config('cutover.origin', 'cutover', true)) is not null`

/** PostgreSQL's limit on bound parameters in one statement. */
const MAX_PARAMETERS = 65_535

export class KyselyTableStore<R extends Row = Row> implements Store<R> {
  readonly name: string
  readonly keyField: string
  /** The key columns, in key order: one, or several for a composite primary key. */
  readonly keyFields: readonly string[]
  /** The table as given, e.g. `public.users`. */
  readonly table: string
  readonly #db: Kysely<any>
  readonly #options: KyselyTableStoreOptions<R>
  /** The table name without its schema: how `on conflict … where` refers to the existing row. */
  readonly #bareTable: string
  #tableColumns: Promise<ReadonlyMap<string, TableColumn>> | undefined
  /** The table as change-log capture sees it (`capture: 'change-log'`). */
  readonly capture: CapturableTable

  constructor(db: Kysely<any>, table: string, key: string | readonly string[], options: KyselyTableStoreOptions<R> = {}) {
    if (!/^[^.]+(\.[^.]+)?$/.test(table)) throw new TypeError(`KyselyTableStore: table must be "name" or "schema.name", got ${JSON.stringify(table)}`)
    const keyFields = Object.freeze(typeof key === 'string' ? [key] : [...key])
    if (keyFields.length === 0) throw new TypeError(`KyselyTableStore: ${table} needs at least one key column`)
    const missing = keyFields.find((field) => options.columns && !options.columns.includes(field))
    if (missing) throw new TypeError(`KyselyTableStore: columns of ${table} must include the key column "${missing}"`)
    this.#db = db
    this.table = table
    this.keyFields = keyFields
    this.keyField = keyFields[0] as string
    this.#options = options
    this.#bareTable = table.includes('.') ? (table.split('.')[1] as string) : table
    this.name = options.name ?? `postgres:${table.includes('.') ? table : `public.${table}`}`
    this.capture = Object.freeze({ db, table, keyColumns: keyFields, run: asStoreQuery })
  }

  async get(keys: readonly KeyValue[]): Promise<ReadonlyMap<string, R>> {
    const result = new Map<string, R>()
    if (keys.length === 0) return result
    const rows = await this.#run('get', () =>
      this.#select()
        .where(this.#keyIn(keys))
        .execute(),
    )
    for (const row of rows) result.set(keyString(recordKey(row, this.keyFields)), this.#fromRow(row))
    return result
  }

  async scan(options: { readonly after?: KeyValue; readonly limit: number }): Promise<readonly R[]> {
    const rows = await this.#run('scan', () => {
      let query = this.#select()
      if (options.after !== undefined) query = query.where(this.#keyAfter(options.after))
      for (const field of this.keyFields) query = query.orderBy(sql.ref(field))
      return query.limit(options.limit).execute()
    })
    return rows.map((row) => this.#fromRow(row))
  }

  async upsert(records: readonly R[], mode: WriteMode): Promise<WriteResult> {
    const { written, skipped } = await this.#upsert(records, mode, false)
    return { written, skipped }
  }

  /** `upsert`, answering with the rows written as stored (`returning`, read through `fromRow`). */
  async upsertReturning(records: readonly R[], mode: WriteMode): Promise<StoredWrite<R>> {
    const { written, skipped, rows } = await this.#upsert(records, mode, true)
    const stored = new Map<string, R>()
    for (const row of rows) stored.set(keyString(recordKey(row, this.keyFields)), this.#fromRow(row))
    return { written, skipped, stored }
  }

  async #upsert(records: readonly R[], mode: WriteMode, returning: boolean): Promise<WriteResult & { rows: readonly Row[] }> {
    if (records.length === 0) return { written: 0, skipped: 0, rows: [] }
    const rows = this.#distinctInKeyOrder(records)
    const columns = this.#options.columns ?? columnsOf(rows)
    const result = await this.#run('upsert', async () => {
      const types = await this.#columnsFor(columns)
      // Without configured columns, `columns` are exactly the rows' fields.
      const source = jsonRecordset(types, columns, rows, this.#options.columns === undefined) ?? unnestArrays(types, columns, rows)
      if (source) return this.#upsertBulk(columns, source, mode, returning ? this.#returning() : sql``)
      return { written: await this.#upsertValues(columns, rows, mode), rows: [] }
    })
    return { written: result.written, skipped: rows.length - result.written + (records.length - rows.length), rows: result.rows }
  }

  /**
   * The rows to write: one per key (one statement cannot touch a row twice, `on conflict do update`
   * refuses; the last record of a key wins, as it would have in sequence), in key order, so that
   * concurrent upserts (two instances mirroring overlapping keys) lock rows in the same order and
   * cannot deadlock each other. A batch already in strictly increasing key order (a backfill's,
   * read by keyset) is taken as it is.
   */
  #distinctInKeyOrder(records: readonly R[]): readonly Row[] {
    const rows = records.map((record) => this.#toRow(record))
    let ordered = true
    let previous: KeyValue | undefined
    for (const row of rows) {
      for (const field of this.keyFields) {
        if (row[field] === undefined || row[field] === null) throw new StoreError(this.name, 'upsert', `record without a value for key column "${field}"`)
      }
      const key = recordKey(row, this.keyFields)
      if (ordered && previous !== undefined && compareKeys(previous, key) >= 0) ordered = false
      previous = key
    }
    if (ordered) return rows
    const byKey = new Map<string, Row>()
    for (const row of rows) byKey.set(keyString(recordKey(row, this.keyFields)), row)
    return [...byKey.values()].sort((a, b) => compareKeys(recordKey(a, this.keyFields), recordKey(b, this.keyFields)))
  }

  /** `returning` the columns a read returns. */
  #returning(): RawBuilder<unknown> {
    const columns = this.#options.columns
    return columns ? sql`returning ${sql.join(columns.map((column) => sql.ref(column)))}` : sql`returning *`
  }

  /**
   * The bulk paths: one statement whatever the batch's size, its rows in one JSON parameter
   * (`json_to_recordset`: one `JSON.stringify`, the cheapest to build and for PostgreSQL to parse)
   * or, for values JSON cannot carry as `pg` would send them (Dates, bytes, bigints), one array
   * parameter per column (`unnest($1::integer[], $2::text[], …)`). Either way parsing and binding
   * stay constant in the number of rows and no parameter limit splits the write.
   */
  async #upsertBulk(columns: readonly string[], source: RawBuilder<unknown>, mode: WriteMode, returning: RawBuilder<unknown>): Promise<{ written: number; rows: readonly Row[] }> {
    if (mode.kind === 'insert-if-absent' && !this.#db.isTransaction) {
      const inserted = await this.#insertAbsent(columns, source, returning)
      if (inserted !== undefined) return inserted
    }
    const result = await sql<Row>`insert into ${sql.table(this.table)} (${sql.join(columns.map((column) => sql.ref(column)))})
      select u.* from ${source} where ${OWN_WRITE} ${this.#onConflict(columns, mode)} ${returning}`.execute(this.#db)
    return { written: Number(result.numAffectedRows ?? 0n), rows: result.rows }
  }

  /**
   * Insert-if-absent as a plain insert of the rows whose key is not there yet (an anti-join on the
   * key index): about half the server's work of `on conflict do nothing`, whose speculative
   * insertion writes and confirms every row. A concurrent writer (the mirror) inserting one of the
   * keys between the anti-join and the insert makes the statement fail with a unique violation and
   * change nothing: `undefined`, and the caller writes with `on conflict`. Outside a transaction
   * only, where a failed statement leaves nothing to roll back.
   */
  async #insertAbsent(columns: readonly string[], source: RawBuilder<unknown>, returning: RawBuilder<unknown>): Promise<{ written: number; rows: readonly Row[] } | undefined> {
    const incoming = sql.join(columns.map((column) => sql.ref(column)))
    const sameKey = sql.join(
      this.keyFields.map((field) => sql`t.${sql.ref(field)} = u.${sql.ref(field)}`),
      sql` and `,
    )
    try {
      const result = await sql<Row>`insert into ${sql.table(this.table)} (${incoming})
        select u.* from ${source}
        where ${OWN_WRITE} and not exists (select from ${sql.table(this.table)} t where ${sameKey}) ${returning}`.execute(this.#db)
      return { written: Number(result.numAffectedRows ?? 0n), rows: result.rows }
    } catch (error) {
      if ((error as { code?: string }).code === '23505') return undefined
      throw error
    }
  }

  /**
   * The general path, for rows the bulk path cannot carry (array columns, rows lacking a column,
   * which must get its default): multi-row VALUES. PostgreSQL binds at most 65,535 parameters per
   * statement, so larger writes go in several statements, in one transaction so the write stays
   * all-or-nothing like a single statement.
   */
  async #upsertValues(columns: readonly string[], rows: readonly Row[], mode: WriteMode): Promise<number> {
    const values = rows.map((row) => Object.fromEntries(columns.map((column) => [column, toParameterValue(row[column])])))
    const rowsPerStatement = Math.max(1, Math.floor(MAX_PARAMETERS / Math.max(1, columns.length)))
    const chunks: Row[][] = []
    for (let start = 0; start < values.length; start += rowsPerStatement) chunks.push(values.slice(start, start + rowsPerStatement))
    const upsertChunks = async (db: Kysely<any>) => {
      let count = 0
      await sql`select ${OWN_WRITE}`.execute(db)
      for (const chunk of chunks) {
        const result = await db.insertInto(this.table).values(chunk).modifyEnd(this.#onConflict(columns, mode)).executeTakeFirst()
        count += Number(result.numInsertedOrUpdatedRows ?? 0n)
      }
      // Inside the caller's own transaction the mark must not outlive these statements.
      if (this.#db.isTransaction) await sql`select set_config('cutover.origin', '', true)`.execute(db)
      return count
    }
    return this.#db.isTransaction ? upsertChunks(this.#db) : this.#db.transaction().execute(upsertChunks)
  }

  /** `on conflict (key)`: `do nothing`, `do update` every written column, or only a newer version. */
  #onConflict(columns: readonly string[], mode: WriteMode): RawBuilder<unknown> {
    const target = sql`on conflict (${sql.join(this.keyFields.map((field) => sql.ref(field)))})`
    if (mode.kind === 'insert-if-absent') return sql`${target} do nothing`
    const updated = columns.filter((column) => !this.keyFields.includes(column))
    const set = sql.join((updated.length > 0 ? updated : [this.keyField]).map((column) => sql`${sql.ref(column)} = ${sql.ref(`excluded.${column}`)}`))
    if (mode.kind === 'overwrite') return sql`${target} do update set ${set}`
    return sql`${target} do update set ${set} where ${sql.ref(`${this.#bareTable}.${mode.field}`)} < ${sql.ref(`excluded.${mode.field}`)}`
  }

  /**
   * The table's columns, read from the catalog once and again when a written column is not among
   * them (the table changed since); undefined when some column is still unknown.
   */
  async #columnsFor(columns: readonly string[]): Promise<ReadonlyMap<string, TableColumn> | undefined> {
    let known = await this.#catalogColumns(false)
    if (!columns.every((column) => known.has(column))) known = await this.#catalogColumns(true)
    return columns.every((column) => known.has(column)) ? known : undefined
  }

  /** The cached catalog read, or a new one; a failed read is forgotten so the next call retries. */
  #catalogColumns(reread: boolean): Promise<ReadonlyMap<string, TableColumn>> {
    if (reread || !this.#tableColumns) {
      const reading = readTableColumns(this.#db, this.table)
      this.#tableColumns = reading
      reading.catch(() => {
        if (this.#tableColumns === reading) this.#tableColumns = undefined
      })
    }
    return this.#tableColumns as Promise<ReadonlyMap<string, TableColumn>>
  }

  /** `pg_class.reltuples` (the planner's estimate), or the statistics' live rows before any ANALYZE. */
  async estimateCount(): Promise<number | undefined> {
    const { rows } = await sql<{ n: string | null }>`select coalesce(nullif(c.reltuples, -1)::bigint, s.n_live_tup) as n
      from pg_class c left join pg_stat_all_tables s on s.relid = c.oid where c.oid = to_regclass(${this.table})`.execute(this.#db)
    const n = rows[0]?.n
    return n === null || n === undefined ? undefined : Number(n)
  }

  async delete(keys: readonly KeyValue[]): Promise<number> {
    if (keys.length === 0) return 0
    const result = await this.#run('delete', () =>
      this.#db
        .deleteFrom(this.table)
        .where(this.#keyIn(keys))
        .where(OWN_WRITE)
        .executeTakeFirst(),
    )
    return Number(result.numDeletedRows)
  }

  /**
   * The table as PostgreSQL's catalog has it, for Cutover's start-up checks: whether it exists, its
   * columns (or the configured `columns`; unknown with a `fromRow` transform, which may rename them),
   * and whether a unique index without a predicate covers exactly the key column (the key columns
   * of a composite key, in any order).
   */
  async describe(): Promise<StoreShape> {
    const relation = this.table.split('.').map(sqlIdentifier).join('.')
    const keyColumns = this.keyFields
    const sortedKey = [...keyColumns].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
    const { rows } = await this.#run('describe', () =>
      sql<{ exists: boolean; columns: string[]; key_unique: boolean }>`
        select to_regclass(${relation}) is not null as exists,
          array(select a.attname::text from pg_attribute a where a.attrelid = to_regclass(${relation}) and a.attnum > 0 and not a.attisdropped order by a.attnum) as columns,
          exists(select 1 from pg_index i
                 where i.indrelid = to_regclass(${relation}) and i.indisunique and i.indpred is null and i.indnkeyatts = ${keyColumns.length}
                   and (select array_agg(a.attname::text order by a.attname::text collate "C") from generate_series(0, i.indnkeyatts - 1) as k
                        join pg_attribute a on a.attrelid = i.indrelid and a.attnum = i.indkey[k]) = ${sortedKey}::text[]) as key_unique`.execute(this.#db),
    )
    const row = rows[0] ?? { exists: false, columns: [], key_unique: false }
    const fields = this.#options.fromRow ? undefined : (this.#options.columns ?? row.columns)
    return { exists: row.exists, keyExists: row.columns.includes(this.keyField), keyUnique: row.exists ? row.key_unique : undefined, fields }
  }

  /**
   * @internal Runs a SELECT operation tree on this store's database (the plugin's reads translated
   * from the other side), through the row transform.
   */
  async selectNode(node: SelectQueryNode, queryId: QueryId): Promise<R[]> {
    const result = await this.#run('select', () => this.#db.executeQuery<Row>(this.#db.getExecutor().compileQuery(node, queryId)))
    return result.rows.map((row) => this.#fromRow(row))
  }

  /**
   * `key = any($1)` for a single key (one array parameter); `(k1, k2) in (($1, $2), …)` for a
   * composite one, whose parameters PostgreSQL types from the columns, so the primary key index serves it.
   */
  #keyIn(keys: readonly KeyValue[]): RawBuilder<boolean> {
    if (this.keyFields.length === 1) return sql<boolean>`${sql.ref(this.keyField)} = any(${toParameter(keys)})`
    const tuples = keys.map((key) => sql`(${sql.join(this.#parts(key).map(toScalar))})`)
    return sql<boolean>`(${sql.join(this.keyFields.map((field) => sql.ref(field)))}) in (${sql.join(tuples)})`
  }

  /** Keyset continuation: `key > $1`, or the row comparison `(k1, k2) > ($1, $2)` (index order). */
  #keyAfter(after: KeyValue): RawBuilder<boolean> {
    if (this.keyFields.length === 1) return sql<boolean>`${sql.ref(this.keyField)} > ${toScalar(after as KeyPart)}`
    return sql<boolean>`(${sql.join(this.keyFields.map((field) => sql.ref(field)))}) > (${sql.join(this.#parts(after).map(toScalar))})`
  }

  #parts(key: KeyValue): readonly KeyPart[] {
    if (!Array.isArray(key) || key.length !== this.keyFields.length) {
      throw new StoreError(this.name, 'key', `expected a composite key of ${this.keyFields.length} parts (${this.keyFields.join(', ')}), got ${keyString(key)}`)
    }
    return key
  }

  #select() {
    const query = this.#db.selectFrom(this.table)
    return this.#options.columns ? query.select(this.#options.columns.map((column) => sql.ref(column).as(column))) : query.selectAll()
  }

  /**
   * The safety net after `complete`: from `from` on the table refuses writes (a trigger);
   * `undefined` lifts it.
   */
  async setReadOnly(migration: string, from: Date | undefined): Promise<void> {
    await this.#run('setReadOnly', () =>
      from === undefined ? removeReadOnlyTrigger(this.#db, this.table) : installReadOnlyTrigger(this.#db, this.table, migration, from),
    )
  }

  #fromRow(row: Row): R {
    return this.#options.fromRow ? this.#options.fromRow(row) : (row as R)
  }

  #toRow(record: R): Row {
    return this.#options.toRow ? this.#options.toRow(record) : record
  }

  async #run<T>(operation: string, query: () => Promise<T>): Promise<T> {
    try {
      return await asStoreQuery(query)
    } catch (error) {
      if (error instanceof StoreError) throw error
      throw new StoreError(this.name, operation, error instanceof Error ? error.message : String(error), { cause: error })
    }
  }
}

/** Every field any row has, in first-seen order. */
function columnsOf(rows: readonly Row[]): string[] {
  const columns = new Set<string>()
  for (const row of rows) for (const field in row) columns.add(field)
  return [...columns]
}

/** Keys as one array parameter; bigints as text, which PostgreSQL casts to the column type. */
function toParameter(keys: readonly KeyValue[]): unknown[] {
  return keys.map((key) => toScalar(key as KeyPart))
}

function toScalar(key: KeyPart): string | number {
  return typeof key === 'bigint' ? key.toString() : key
}

/**
 * The rows as one `json_to_recordset($1::json) as u(col type, …)`, each column typed as the table
 * has it; undefined unless every value is one JSON carries exactly as `pg` would send it: a string,
 * a finite number, a boolean, null, or a structure for a json column. (Dates, bytes and bigints
 * have their own renderings in `pg`; a string for a json column is JSON text already.)
 */
function jsonRecordset(types: ReadonlyMap<string, TableColumn> | undefined, columns: readonly string[], rows: readonly Row[], exact: boolean): RawBuilder<unknown> | undefined {
  if (!types) return undefined
  const typed: TableColumn[] = []
  for (const column of columns) {
    const type = types.get(column)
    if (!type || type.category === 'A') return undefined
    typed.push(type)
  }
  const anyJson = typed.some((type) => type.isJson)
  for (const row of rows) {
    for (let c = 0; c < columns.length; c++) {
      const value = row[columns[c] as string]
      const isJson = (typed[c] as TableColumn).isJson
      if (value === null || typeof value === 'boolean' || (typeof value === 'number' && Number.isFinite(value))) continue
      if (typeof value === 'string' && !isJson) continue
      if (isJson && typeof value === 'object' && !(value instanceof Date) && !(value instanceof Uint8Array)) continue
      return undefined
    }
  }
  // Only the written columns: a record's other fields may hold what JSON cannot (a bigint). Rows
  // with no other fields go as they are (a replacer list takes JSON.stringify off its fast path).
  const json =
    exact ? JSON.stringify(rows) : anyJson ? JSON.stringify(rows.map((row) => Object.fromEntries(columns.map((column) => [column, row[column]])))) : JSON.stringify(rows, columns as string[])
  const definitions = sql.join(columns.map((column, c) => sql`${sql.ref(column)} ${sql.raw((typed[c] as TableColumn).type)}`))
  return sql`json_to_recordset(${json}::json) as u(${definitions})`
}

/**
 * One array parameter per column, cast to the column's type, for `unnest`; undefined when a row
 * cannot go that way: a column is unknown or of an array type (`unnest` would flatten it), a row
 * lacks a column (it must get its default, as in VALUES), or a value is a structure where the column
 * is not json.
 */
function unnestArrays(types: ReadonlyMap<string, TableColumn> | undefined, columns: readonly string[], rows: readonly Row[]): RawBuilder<unknown> | undefined {
  if (!types) return undefined
  const arrays: RawBuilder<unknown>[] = []
  for (const column of columns) {
    const type = types.get(column)
    if (!type || type.category === 'A') return undefined
    const values: unknown[] = new Array(rows.length)
    for (let i = 0; i < rows.length; i++) {
      const value = (rows[i] as Row)[column]
      if (value === undefined) return undefined
      if (value === null) values[i] = null
      else if (type.isJson) values[i] = typeof value === 'string' ? value : JSON.stringify(value)
      else if (typeof value === 'bigint') values[i] = value.toString()
      else if (typeof value === 'object' && !(value instanceof Date) && !(value instanceof Uint8Array)) return undefined
      else values[i] = value
    }
    arrays.push(sql`${values}::${sql.raw(type.type)}[]`)
  }
  return sql`unnest(${sql.join(arrays)}) as u(${sql.join(columns.map((column) => sql.ref(column)))})`
}

/**
 * Values as `pg` sends them. Plain objects and arrays of objects go as JSON text (json/jsonb
 * columns), since `pg` would otherwise send a JS array of objects as a PostgreSQL array literal.
 */
function toParameterValue(value: unknown): unknown {
  if (typeof value === 'bigint') return value.toString()
  if (Array.isArray(value) && value.some((item) => item !== null && typeof item === 'object' && !(item instanceof Date))) return JSON.stringify(value)
  return value
}
