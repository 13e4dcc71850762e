import type { Cutover } from '@cutover/core'
import { type CompiledQuery, type DatabaseIntrospector, type Dialect, type DialectAdapter, type Driver, type Kysely, type QueryCompiler, type QueryResult } from 'kysely'
import type { Interception } from './cutover-connection.js'
import { CutoverDriver } from './cutover-driver.js'
import { KeyColumns } from '../write/key-column.js'
import { KeyReturning } from '../write/key-returning.js'
import { type MigratedTableConfig, MigratedTables } from './migrated-tables.js'
import { ReadRouter } from '../read/read-router.js'
import { isPostgresCompiler } from './postgres-compiler.js'

export interface CutoverDialectOptions {
  /** The running engine (`createCutover`). */
  readonly cutover: Cutover
  /**
   * The tables of this database that are a side of a migration, by the name queries use
   * (`users`, or `schema.users`). Tables not listed are never touched.
   */
  readonly tables: Readonly<Record<string, MigratedTableConfig>>
}

/**
 * Wraps a Kysely dialect so that every query the application makes through it takes part in the
 * migrations: committed writes on migrated tables are mirrored, SELECTs are compared and routed
 * according to each migration's phase. The application's query code does not change:
 *
 *     const db = new Kysely<DB>({ dialect: withCutover(new PostgresDialect({ pool }), {
 *       cutover,
 *       tables: { users: { migration: 'users', side: 'old' } },
 *     }) })
 *
 * The configuration is checked here, at start-up: an unknown migration or a malformed table name
 * throws `ConfigError`.
 */
export function withCutover(dialect: Dialect, options: CutoverDialectOptions): Dialect {
  return new CutoverDialect(dialect, options)
}

class CutoverDialect implements Dialect {
  readonly #inner: Dialect
  readonly #tables: MigratedTables
  readonly #reads: ReadRouter

  constructor(inner: Dialect, options: CutoverDialectOptions) {
    this.#inner = inner
    this.#tables = new MigratedTables(options.cutover, options.tables)
    this.#reads = new ReadRouter(this.#tables, options.cutover)
  }

  createDriver(): Driver {
    const driver = this.#inner.createDriver()
    const compiler = this.#inner.createQueryCompiler()
    const interception: Interception = {
      tables: this.#tables,
      compiler,
      returning: new KeyReturning(compiler),
      reads: this.#reads,
      // The lookup reads PostgreSQL's catalog; on other databases every write keeps RETURNING.
      keyColumns: new KeyColumns(isPostgresCompiler(compiler) ? (query) => runAside(driver, query) : undefined),
    }
    return new CutoverDriver(driver, interception)
  }

  createQueryCompiler(): QueryCompiler {
    return this.#inner.createQueryCompiler()
  }

  createAdapter(): DialectAdapter {
    return this.#inner.createAdapter()
  }

  createIntrospector(db: Kysely<any>): DatabaseIntrospector {
    return this.#inner.createIntrospector(db)
  }
}

/** A query on a connection of its own, so that it never runs inside an application's transaction. */
async function runAside(driver: Driver, query: CompiledQuery): Promise<QueryResult<unknown>> {
  const connection = await driver.acquireConnection()
  try {
    return await connection.executeQuery(query)
  } finally {
    await driver.releaseConnection(connection)
  }
}
