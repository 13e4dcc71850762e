/**
 * Test harness shared by the Kysely plugin's tests against real PostgreSQL: an old and a new
 * database, a `Cutover` whose control tables live in the old one, stores on both, and the
 * application's Kysely wrapped with `withCutover`.
 */
import {
  compareRecords,
  createCutover,
  type Cutover,
  defineMigration,
  type KeyValue,
  keyString,
  type MigrationDefinition,
  type Row,
  silentLogger,
  type Store,
} from '@cutover/core'
import { Kysely, PostgresDialect, sql } from 'kysely'
import pg from 'pg'
import { createTestDatabase, type TestDatabase } from '../../../test/setup/services.js'
import { KyselyTableStore, type MigratedTableConfig, withCutover } from '../src/index.js'

export interface HarnessOptions {
  readonly prefix: string
  /** DDL run on the old and on the new database. */
  readonly oldDdl: readonly string[]
  readonly newDdl: readonly string[]
  /** Builds the migrations from the two databases. */
  readonly migrations: (old: Kysely<any>, neu: Kysely<any>, urls: { readonly old: string; readonly neu: string }) => MigrationDefinition<any, any>[]
  /** The application's tables on the old database, and (optionally) on the new one. */
  readonly oldTables: Readonly<Record<string, MigratedTableConfig>>
  readonly newTables?: Readonly<Record<string, MigratedTableConfig>>
  readonly random?: () => number
}

export interface Harness {
  readonly old: TestDatabase
  readonly neu: TestDatabase
  readonly cutover: Cutover
  /** The application's Kysely on the old database, through Cutover. */
  readonly app: Kysely<any>
  /** The application's Kysely on the new database, through Cutover (writes after cutover). */
  readonly appNew: Kysely<any>
  readonly stores: { readonly old: Store; readonly new: Store }
  close(): Promise<void>
}

export async function createHarness(options: HarnessOptions): Promise<Harness> {
  const old = await createTestDatabase(`${options.prefix}_old`)
  const neu = await createTestDatabase(`${options.prefix}_new`)
  for (const ddl of options.oldDdl) await sql.raw(ddl).execute(old.db)
  for (const ddl of options.newDdl) await sql.raw(ddl).execute(neu.db)
  const migrations = options.migrations(old.db, neu.db, { old: old.url, neu: neu.url }).map((m) => defineMigration({ gates: false, ...m }))
  const cutover = await createCutover({
    migrations,
    control: old.db,
    env: {},
    pollIntervalMs: false,
    logger: silentLogger,
    ...(options.random ? { random: options.random } : {}),
  })
  const app = new Kysely<any>({
    dialect: withCutover(new PostgresDialect({ pool: new pg.Pool({ connectionString: old.url, max: 10 }) }), { cutover, tables: options.oldTables }),
  })
  const appNew = new Kysely<any>({
    dialect: withCutover(new PostgresDialect({ pool: new pg.Pool({ connectionString: neu.url, max: 10 }) }), { cutover, tables: options.newTables ?? {} }),
  })
  const first = migrations[0]
  return {
    old,
    neu,
    cutover,
    app,
    appNew,
    stores: { old: first?.old as Store, new: first?.new as Store },
    async close() {
      await cutover.close().catch(() => {})
      // pg-pool's end() resolves before the backends have gone; dropping the database `with (force)`
      // right after kills them mid-goodbye, which surfaces as an unhandled 57P01 error. Close every
      // pool first and give the backends a moment.
      for (const db of [app, appNew, old.db, neu.db]) await db.destroy().catch(() => {})
      await new Promise((resolve) => setTimeout(resolve, 250))
      await old.drop()
      await neu.drop()
    },
  }
}

/** Every record of a store, in key order. */
export async function allRecords(store: Store): Promise<Row[]> {
  const rows: Row[] = []
  let after: KeyValue | undefined
  for (;;) {
    const page = await store.scan({ limit: 500, ...(after === undefined ? {} : { after }) })
    rows.push(...page)
    if (page.length < 500) return rows
    after = page.at(-1)?.[store.keyField] as KeyValue
  }
}

/**
 * Compares both stores of a migration under the core comparator: each old record mapped forward
 * must equal the new record of its key (on the fields the mapper produces), and no key may be on
 * one side only. Returns the problems, empty when equal.
 */
export async function storeDifferences(cutover: Cutover, migration: string): Promise<string[]> {
  const runtime = cutover.migration(migration)
  const { mapper, key, compare } = runtime.migration
  const oldRows = await allRecords(runtime.migration.old)
  const newRows = new Map((await allRecords(runtime.migration.new)).map((row) => [keyString(row[key.new] as KeyValue), row]))
  const problems: string[] = []
  for (const row of oldRows) {
    const id = keyString(row[key.old] as KeyValue)
    const expected = mapper.forward(row, { key: id, migration })
    const actual = newRows.get(id)
    newRows.delete(id)
    if (!actual) {
      problems.push(`${id}: missing in new`)
      continue
    }
    const projected = Object.fromEntries(Object.keys(expected).map((field) => [field, actual[field]]))
    const result = compareRecords(expected, projected, compare)
    if (!result.equal) problems.push(`${id}: ${JSON.stringify(result.differences)}`)
  }
  for (const id of newRows.keys()) problems.push(`${id}: only in new`)
  return problems
}

export function tableStore(db: Kysely<any>, table: string, key: string): KyselyTableStore {
  return new KyselyTableStore(db, table, key)
}
