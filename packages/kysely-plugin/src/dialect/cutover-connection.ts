import type { CompiledQuery, DatabaseConnection, QueryCompiler, QueryResult, RootOperationNode } from 'kysely'
import type { KeyColumns } from '../write/key-column.js'
import type { KeyReturning } from '../write/key-returning.js'
import type { MigratedTables } from './migrated-tables.js'
import { classifyRawStatement, type RawStatement } from '../write/raw-statement.js'
import type { ReadRouter } from '../read/read-router.js'
import { isStoreQuery } from '../store/store-query.js'
import { TransactionBuffer, type PendingWrite } from '../write/transaction-buffer.js'
import { KEY_ALIAS, keyAliases, loggedByTriggers, type NamedKeysCheck, planWrite, stripKeys, type WritePlan } from '../write/write-capture.js'
import { capturing, keysOf, recordCommitted } from '../write/write-recorder.js'

/** What every connection of one wrapped dialect shares. */
export interface Interception {
  readonly tables: MigratedTables
  /** The wrapped dialect's compiler: compiles the query that lists a MERGE's keys. */
  readonly compiler: QueryCompiler
  /** Compiles a write with the key added to its RETURNING. */
  readonly returning: KeyReturning
  readonly reads: ReadRouter
  /** Whether keys a write names in its text can stand for RETURNING, per table. */
  readonly keyColumns: KeyColumns
}

/** Runs one statement on the real connection (by way of Kysely's log, when it has one). */
type Execute = <R>(query: CompiledQuery, ...more: unknown[]) => Promise<QueryResult<R>>

/** Transaction control as the real driver runs it (`CutoverDriver`), to be recorded here. */
export type TransactionStatement = Exclude<RawStatement, { kind: 'write' }>

/**
 * A `DatabaseConnection` that sees every query before and after the real one: it captures the
 * keys of writes on migrated tables, holds them while a transaction is open, and hands them to the
 * core once it commits; it routes and compares SELECTs on migrated tables. Everything else (and
 * every query a Cutover store makes) goes straight through.
 *
 * Kysely's `log` (its `RuntimeDriver`) patches `executeQuery` on the connection it is handed,
 * which is this one, so the log would see the caller's statement rather than the one that ran
 * (with the key added to RETURNING, say). `executeQuery` is therefore an accessor: the patched
 * function Kysely assigns is kept, and every statement this connection runs goes through it, marked
 * so that when the patched function calls back in here, the statement runs on the real connection.
 * Marks are by the statement object, not by timing, so nothing depends on how Kysely calls back.
 */
export class CutoverConnection implements DatabaseConnection {
  readonly inner: DatabaseConnection
  readonly #interception: Interception
  readonly #namedKeys: NamedKeysCheck
  readonly #real: Execute
  readonly #entry: Execute
  readonly #run: Execute
  /** Kysely's logging `executeQuery`, once its `RuntimeDriver` has patched this connection. */
  #logged: Execute | undefined
  /** Statements handed to `#logged`, on their way back in to run on the real connection. */
  readonly #marked = new Map<CompiledQuery, number>()
  #transaction: TransactionBuffer | undefined
  /** Transaction statements seen as SQL: tells `control` whether the driver's statement came through here. */
  #controlSeen = 0
  #view: DatabaseConnection | undefined

  constructor(inner: DatabaseConnection, interception: Interception) {
    this.inner = inner
    this.#interception = interception
    const { keyColumns } = interception
    this.#namedKeys = (table, keys) => keyColumns.accepts(table, keys)
    // `...rest` passes through whatever later Kysely versions add (e.g. an abort signal).
    const execute = inner.executeQuery as (query: CompiledQuery, ...more: unknown[]) => Promise<QueryResult<unknown>>
    this.#real = ((query: CompiledQuery, ...rest: unknown[]) => execute.call(inner, query, ...rest)) as Execute
    this.#entry = ((query: CompiledQuery, ...rest: unknown[]) => (this.#unmark(query) ? this.#real(query, ...rest) : this.#intercept(query, rest))) as Execute
    this.#run = ((query: CompiledQuery, ...rest: unknown[]) => (this.#logged ? this.#viaLog(this.#logged, query, rest) : this.#real(query, ...rest))) as Execute
  }

  get executeQuery(): Execute {
    return this.#entry
  }

  /** Kysely's `RuntimeDriver` assigns its logging wrapper of `executeQuery` here. */
  set executeQuery(logged: Execute) {
    this.#logged = logged
  }

  get inTransaction(): boolean {
    return this.#transaction !== undefined
  }

  /**
   * @internal what the real driver's transaction methods are given in place of the real
   * connection: the real one in every respect (a driver may call its own methods on it) except that
   * its statements come through this connection, where Kysely's log and the transaction tracking
   * see them.
   */
  get view(): DatabaseConnection {
    this.#view ??= new Proxy(this.inner, {
      get: (target, property) => {
        if (property === 'executeQuery') return this.#entry
        const value: unknown = Reflect.get(target, property, target)
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value
      },
    })
    return this.#view
  }

  /**
   * @internal runs one of the real driver's transaction methods on `view` and records what it did.
   * Drivers that send the statement as SQL are seen by `#raw` already; others (a driver with a
   * transaction API of its own) are recorded here once the method returns.
   */
  async control(statement: TransactionStatement, run: (connection: DatabaseConnection) => Promise<void>): Promise<void> {
    const seen = this.#controlSeen
    try {
      await run(this.view)
    } catch (error) {
      // A failed COMMIT rolls the transaction back, as does a failed ROLLBACK (the server ends it).
      if (statement.kind === 'commit' || statement.kind === 'rollback') this.rolledBack()
      throw error
    }
    if (this.#controlSeen === seen) this.#control(statement)
  }

  #intercept<R>(compiledQuery: CompiledQuery, rest: unknown[]): Promise<QueryResult<R>> {
    const execute = this.#run
    if (isStoreQuery()) return execute(compiledQuery, ...rest)
    const node = compiledQuery.query
    switch (node.kind) {
      case 'RawNode':
        return this.#raw(compiledQuery, execute, rest)
      case 'SelectQueryNode':
        if (node.with) return this.#write(compiledQuery, execute, rest)
        return this.#interception.reads.select(compiledQuery, this.inTransaction, () => execute(compiledQuery, ...rest))
      case 'InsertQueryNode':
      case 'UpdateQueryNode':
      case 'DeleteQueryNode':
      case 'MergeQueryNode':
        return this.#write(compiledQuery, execute, rest)
      default:
        return execute(compiledQuery, ...rest)
    }
  }

  #viaLog<R>(logged: Execute, query: CompiledQuery, rest: unknown[]): Promise<QueryResult<R>> {
    this.#marked.set(query, (this.#marked.get(query) ?? 0) + 1)
    try {
      return logged<R>(query, ...rest)
    } catch (error) {
      this.#unmark(query)
      throw error
    }
  }

  #unmark(query: CompiledQuery): boolean {
    if (this.#marked.size === 0) return false
    const count = this.#marked.get(query)
    if (count === undefined) return false
    if (count > 1) this.#marked.set(query, count - 1)
    else this.#marked.delete(query)
    return true
  }

  streamQuery<R>(compiledQuery: CompiledQuery, chunkSize?: number, ...rest: unknown[]): AsyncIterableIterator<QueryResult<R>> {
    const stream = (this.inner.streamQuery as (query: CompiledQuery, size?: number, ...more: unknown[]) => AsyncIterableIterator<QueryResult<R>>).bind(this.inner)
    if (!isStoreQuery()) {
      // Streamed reads are served by the old store as they are; a streamed write (INSERT …
      // RETURNING through a cursor) cannot be given an extra column mid-stream. The change log
      // mirrors it all the same: then it is only a write of unknown keys.
      const plan = planWrite(compiledQuery.query, this.#interception.tables, capturing)
      if (plan) {
        const { table } = plan
        table.runtime.checkWrite(table.side, table.name)
        if (plan.kind !== 'passthrough') this.#record(loggedByTriggers(table) ? { kind: 'unkeyed', table } : { kind: 'unmirrored', table, detail: 'write run through streamQuery' })
      }
    }
    return stream(compiledQuery, chunkSize, ...rest)
  }

  /** @internal transaction control, from the driver or from raw SQL on this connection. */
  begin(): void {
    this.#transaction = new TransactionBuffer()
  }

  /** @internal the transaction committed: its writes go to the core. */
  committed(): void {
    const transaction = this.#transaction
    this.#transaction = undefined
    for (const write of transaction?.writes ?? []) recordCommitted(write)
  }

  /** @internal the transaction rolled back (or its commit failed): its writes never happened. */
  rolledBack(): void {
    this.#transaction = undefined
  }

  savepoint(name: string): void {
    this.#transaction?.savepoint(name)
  }

  rolledBackToSavepoint(name: string): void {
    this.#transaction?.rollbackTo(name)
  }

  releasedSavepoint(name: string): void {
    this.#transaction?.release(name)
  }

  #record(write: PendingWrite): void {
    if (this.#transaction) this.#transaction.add(write)
    else recordCommitted(write)
  }

  #write<R>(
    compiledQuery: CompiledQuery,
    execute: Execute,
    rest: unknown[],
  ): Promise<QueryResult<R>> {
    let plan: WritePlan | undefined
    try {
      plan = planWrite(compiledQuery.query, this.#interception.tables, capturing, this.#namedKeys)
      plan?.table.runtime.checkWrite(plan.table.side, plan.table.name)
    } catch (error) {
      return Promise.reject(error)
    }
    if (!plan || plan.kind === 'passthrough') return execute(compiledQuery, ...rest)
    // The commonest captured write names its keys: one `then` on the caller's own promise, rather
    // than an async function's promise and await, keeps it at the plain write's number of hops.
    if (plan.kind === 'named-keys') return execute<R>(compiledQuery, ...rest).then((result) => this.#named(plan, result))
    return this.#capture(plan, compiledQuery, execute, rest)
  }

  #named<R>(plan: Extract<WritePlan, { kind: 'named-keys' }>, result: QueryResult<R>): QueryResult<R> {
    // Nothing written, nothing to mirror (`numAffectedRows` is absent where a driver does not count).
    if (result.numAffectedRows !== BigInt(0)) for (const key of plan.keys) this.#record({ kind: 'write', table: plan.table, event: { key, op: plan.op } })
    return result
  }

  async #capture<R>(
    plan: Exclude<WritePlan, { kind: 'passthrough' }>,
    compiledQuery: CompiledQuery,
    execute: Execute,
    rest: unknown[],
  ): Promise<QueryResult<R>> {
    const { table } = plan
    switch (plan.kind) {
      case 'named-keys':
        return this.#named(plan, await execute<R>(compiledQuery, ...rest))
      case 'unattributable': {
        const result = await execute<R>(compiledQuery, ...rest)
        this.#record({ kind: 'unmirrored', table, detail: plan.detail })
        return result
      }
      case 'unkeyed': {
        const result = await execute<R>(compiledQuery, ...rest)
        if (result.numAffectedRows !== BigInt(0)) this.#record({ kind: 'unkeyed', table })
        return result
      }
      case 'source-keys': {
        const result = await execute<R>(compiledQuery, ...rest)
        try {
          // Reads the same source the MERGE just read, so it practically cannot fail; if it does,
          // the application's write has happened and must not fail because of it.
          const keys = await execute(this.#compile(plan.keyQuery, compiledQuery))
          for (const key of keysOf(keys.rows as Record<string, unknown>[], KEY_ALIAS)) this.#record({ kind: 'write', table, event: { key, op: 'upsert' } })
        } catch (error) {
          this.#record({ kind: 'unmirrored', table, detail: `MERGE keys could not be listed: ${error instanceof Error ? error.message : String(error)}` })
        }
        return result
      }
      case 'returning': {
        const result = await execute(this.#interception.returning.compile(plan, compiledQuery), ...rest)
        const rows = result.rows as Record<string, unknown>[]
        const aliases = keyAliases(table)
        for (const key of keysOf(rows, aliases)) this.#record({ kind: 'write', table, event: { key, op: plan.op } })
        if (plan.changesKeys) this.#record({ kind: 'unmirrored', table, detail: 'update of the key column: the new keys are mirrored, the old ones are left to reconciliation' })
        return { ...result, rows: stripKeys<R>(rows, plan.callerWantsRows, aliases) }
      }
    }
  }

  async #raw<R>(
    compiledQuery: CompiledQuery,
    execute: Execute,
    rest: unknown[],
  ): Promise<QueryResult<R>> {
    const statement = classifyRawStatement(compiledQuery.sql)
    if (!statement) return execute(compiledQuery, ...rest)
    if (statement.kind === 'write') return this.#rawWrite(statement, compiledQuery, execute, rest)
    let result: QueryResult<R>
    try {
      result = await execute<R>(compiledQuery, ...rest)
    } catch (error) {
      // A failed COMMIT rolls the transaction back; a failed BEGIN leaves none open.
      if (statement.kind === 'commit') this.rolledBack()
      throw error
    }
    this.#controlSeen++
    this.#control(statement)
    return result
  }

  #control(statement: TransactionStatement): void {
    switch (statement.kind) {
      case 'begin':
        if (!this.#transaction) this.begin()
        return
      case 'commit':
        return this.committed()
      case 'rollback':
        return this.rolledBack()
      case 'savepoint':
        return this.savepoint(statement.name)
      case 'rollback-to':
        return this.rolledBackToSavepoint(statement.name)
      case 'release':
        return this.releasedSavepoint(statement.name)
    }
  }

  async #rawWrite<R>(
    statement: Extract<RawStatement, { kind: 'write' }>,
    compiledQuery: CompiledQuery,
    execute: Execute,
    rest: unknown[],
  ): Promise<QueryResult<R>> {
    const tables = statement.tables.map((name) => this.#interception.tables.ofName(name)).filter((t) => t !== undefined)
    for (const table of tables) table.runtime.checkWrite(table.side, table.name)
    const result = await execute<R>(compiledQuery, ...rest)
    for (const table of tables) {
      if (!capturing(table) || table.rawWrites === 'ignore') continue
      const keys = typeof table.rawWrites === 'function' ? table.rawWrites(compiledQuery) : undefined
      if (keys === undefined) {
        // The change log's triggers see raw SQL too: its keys are only unknown, not lost.
        this.#record(loggedByTriggers(table) ? { kind: 'unkeyed', table } : { kind: 'unmirrored', table, detail: `raw SQL: ${compiledQuery.sql.slice(0, 200)}` })
        continue
      }
      for (const key of keys) this.#record({ kind: 'write', table, event: { key, op: 'upsert' } })
    }
    return result
  }

  #compile(node: RootOperationNode, original: CompiledQuery): CompiledQuery {
    return this.#interception.compiler.compileQuery(node, original.queryId)
  }
}
