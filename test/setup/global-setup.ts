/**
 * Vitest global setup: makes sure the real services the tests talk to are there.
 *
 * - PostgreSQL at DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres). If nothing
 *   answers, setup fails with how to start it: tests never skip for a missing database.
 * - A MongoDB-wire server at MONGODB_URL, or else FerretDB v1.24.2 built with Go from the module
 *   proxy into .cache/ferretdb (once, reused) and started on a free loopback port for this run.
 */
import pg from 'pg'
import type { TestProject } from 'vitest/node'
import { type RunningFerretDb, startFerretDb } from './ferretdb.js'

const DEFAULT_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/postgres'

declare module 'vitest' {
  export interface ProvidedContext {
    databaseUrl: string
    mongodbUrl: string
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const databaseUrl = process.env.DATABASE_URL ?? DEFAULT_DATABASE_URL
  await checkPostgres(databaseUrl)
  project.provide('databaseUrl', databaseUrl)

  let ferret: RunningFerretDb | undefined
  if (!process.env.MONGODB_URL) ferret = await startFerretDb((line) => process.stderr.write(`[cutover test setup] ${line}\n`))
  const mongodbUrl = process.env.MONGODB_URL ?? (ferret as RunningFerretDb).url
  await waitForPing(mongodbUrl)
  project.provide('mongodbUrl', mongodbUrl)

  return async () => {
    await ferret?.stop()
  }
}

async function checkPostgres(url: string): Promise<void> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 })
  try {
    await client.connect()
    await client.query('select 1')
  } catch (error) {
    throw new Error(
      `PostgreSQL is not reachable at ${redact(url)} (${(error as Error).message}).\n` +
        'Start it (on this machine: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start)\n' +
        'or point DATABASE_URL at a PostgreSQL server the tests may create databases on.',
    )
  } finally {
    await client.end().catch(() => {})
  }
}

async function waitForPing(url: string): Promise<void> {
  const mongoose = await import('mongoose')
  const deadline = Date.now() + 30_000
  let lastError: unknown
  while (Date.now() < deadline) {
    const connection = mongoose.createConnection(url, { serverSelectionTimeoutMS: 2_000 })
    try {
      await connection.asPromise()
      await connection.db!.admin().ping()
      return
    } catch (error) {
      lastError = error
      await new Promise((resolve) => setTimeout(resolve, 200))
    } finally {
      await connection.close().catch(() => {})
    }
  }
  throw new Error(`The MongoDB-wire server at ${redact(url)} did not answer ping: ${String(lastError)}`)
}

function redact(url: string): string {
  return url.replace(/\/\/([^:@/]+):[^@/]+@/, '//$1:***@')
}
