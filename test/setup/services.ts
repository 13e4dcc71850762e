/**
 * Per-test-file access to the real services started by the global setup. Every helper creates
 * something of its own (a database, a Mongo database name) so that test files run in parallel and
 * leave nothing behind.
 */
import { randomBytes } from 'node:crypto'
import { Kysely, PostgresDialect } from 'kysely'
import mongoose, { type Connection } from 'mongoose'
import pg from 'pg'
import { inject } from 'vitest'

export function databaseUrl(): string {
  return inject('databaseUrl')
}

export function mongodbUrl(): string {
  return inject('mongodbUrl')
}

export function uniqueName(prefix: string): string {
  return `${prefix}_${process.pid}_${randomBytes(4).toString('hex')}`
}

export interface TestDatabase {
  readonly name: string
  readonly url: string
  /** A Kysely instance on this database (closed by `drop`). */
  readonly db: Kysely<any>
  /** Drops the database, closing `db` and any pool passed to `track`. */
  drop(): Promise<void>
  /** Registers a pool or Kysely instance to be closed before the database is dropped. */
  track(closable: { destroy(): Promise<void> } | { end(): Promise<void> }): void
}

/** Creates a fresh PostgreSQL database for one test file. */
export async function createTestDatabase(prefix = 'cutover_test'): Promise<TestDatabase> {
  const name = uniqueName(prefix)
  const admin = new pg.Client({ connectionString: databaseUrl() })
  await admin.connect()
  try {
    await admin.query(`create database "${name}"`)
  } finally {
    await admin.end()
  }
  const url = withDatabase(databaseUrl(), name)
  const db = kyselyFor(url)
  const tracked: Array<{ destroy(): Promise<void> } | { end(): Promise<void> }> = [db]
  return {
    name,
    url,
    db,
    track: (closable) => void tracked.push(closable),
    async drop() {
      for (const closable of tracked.reverse()) {
        await ('destroy' in closable ? closable.destroy() : closable.end()).catch(() => {})
      }
      // pg-pool's end() resolves before the server has seen every socket close; a forced drop in
      // that gap terminates those backends and the pool reports 57P01 as an unhandled error.
      await new Promise((resolve) => setTimeout(resolve, 100))
      const client = new pg.Client({ connectionString: databaseUrl() })
      await client.connect()
      try {
        await client.query(`drop database if exists "${name}" with (force)`)
      } finally {
        await client.end()
      }
    },
  }
}

/**
 * A Kysely instance on an existing database URL with its own pool. The pool ignores errors of idle
 * clients: when a test database is dropped `with (force)`, a backend still closing gets
 * "terminating connection due to administrator command", which an idle pg client emits as an
 * `error` event nobody listens to (an uncaught exception). Queries still reject as usual.
 */
export function kyselyFor<DB = any>(url: string, max = 10): Kysely<DB> {
  const pool = new pg.Pool({ connectionString: url, max })
  pool.on('error', () => {})
  return new Kysely<DB>({ dialect: new PostgresDialect({ pool }) })
}

export function withDatabase(url: string, database: string): string {
  const parsed = new URL(url)
  parsed.pathname = `/${database}`
  return parsed.toString()
}

export interface TestMongo {
  readonly name: string
  readonly connection: Connection
  drop(): Promise<void>
}

/**
 * Opens a Mongoose connection to a fresh database on the MongoDB-wire server. `monitorCommands`
 * is what the Mongoose plugin recommends, so that writes bypassing Mongoose are detected.
 */
export async function createTestMongo(prefix = 'cutover_test', options: { monitorCommands?: boolean } = {}): Promise<TestMongo> {
  const name = uniqueName(prefix)
  const connection = mongoose.createConnection(mongodbUrl(), { dbName: name, serverSelectionTimeoutMS: 10_000, monitorCommands: options.monitorCommands ?? false })
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
