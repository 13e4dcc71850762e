/**
 * Shared set-up for the plugin's tests: a MongoDB-wire database per test file (with command
 * monitoring, as the plugin recommends), a control database on PostgreSQL, and helpers that read
 * both stores whole and compare them under the core's comparator.
 */
import { compareRecords, type KeyValue, keyString, type Migration, type Row, type Store } from '@cutover/core'
import { Kysely, PostgresDialect } from 'kysely'
import mongoose, { type Connection } from 'mongoose'
import pg from 'pg'
import { expect } from 'vitest'
import { mongodbUrl, uniqueName } from '../../../test/setup/services.js'

export interface MonitoredMongo {
  readonly name: string
  readonly connection: Connection
  drop(): Promise<void>
}

export async function createMonitoredMongo(prefix: string): Promise<MonitoredMongo> {
  const name = uniqueName(prefix)
  const connection = mongoose.createConnection(mongodbUrl(), { dbName: name, serverSelectionTimeoutMS: 10_000, monitorCommands: true })
  await connection.asPromise()
  return {
    name,
    connection,
    async drop() {
      await connection.dropDatabase().catch(() => {})
      await connection.close()
    },
  }
}

export async function readAll(store: Store): Promise<Row[]> {
  const rows: Row[] = []
  let after: KeyValue | undefined
  for (;;) {
    const page = await store.scan({ ...(after === undefined ? {} : { after }), limit: 500 })
    if (page.length === 0) return rows
    rows.push(...page)
    after = page.at(-1)?.[store.keyField] as KeyValue
  }
}

/** Every old record mapped forward equals the new record with its key, and no key is on one side only. */
export async function expectStoresEqual(migration: Migration<any, any>, options: { skipRejected?: boolean } = {}): Promise<number> {
  const oldRows = await readAll(migration.old)
  const newRows = new Map((await readAll(migration.new)).map((row) => [keyString(row[migration.key.new] as KeyValue), row]))
  const problems: unknown[] = []
  let compared = 0
  for (const row of oldRows) {
    const key = keyString(row[migration.key.old] as KeyValue)
    let expected: Row
    try {
      expected = migration.mapper.forward(row, { key, migration: migration.name })
    } catch (error) {
      if (options.skipRejected) {
        newRows.delete(key)
        continue
      }
      throw error
    }
    const actual = newRows.get(key)
    newRows.delete(key)
    if (!actual) {
      problems.push({ key, missingInNew: true })
      continue
    }
    const projected = Object.fromEntries(Object.keys(expected).map((field) => [field, actual[field]]))
    const comparison = compareRecords(expected, projected, migration.compare)
    if (!comparison.equal) problems.push({ key, differences: comparison.differences })
    compared++
  }
  for (const key of newRows.keys()) problems.push({ key, missingInOld: true })
  expect(problems).toEqual([])
  return compared
}

/**
 * A Kysely on `url` whose pool ignores errors of idle clients. `createTestDatabase().drop()` ends the
 * pool and then drops the database `with (force)`; a backend still closing at that moment gets
 * "terminating connection due to administrator command", which an idle pg client emits as an
 * `error` event nobody listens to (an uncaught exception). Register it with `track`.
 */
export function quietKysely(url: string): Kysely<any> {
  const pool = new pg.Pool({ connectionString: url, max: 10 })
  pool.on('error', () => {})
  return new Kysely<any>({ dialect: new PostgresDialect({ pool }) })
}
