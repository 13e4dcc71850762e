/**
 * The demo's two databases: embedded PostgreSQL (PGlite, PostgreSQL 17 in WebAssembly) by default,
 * so that `pnpm demo` needs nothing but Node; two fresh databases on the server of DATABASE_URL
 * when it is set (dropped at the end).
 */
import { PGlite } from '@electric-sql/pglite'
import { type Dialect, Kysely, PostgresDialect } from 'kysely'
import { PGliteDialect } from 'kysely-pglite-dialect'
import pg from 'pg'

export interface DemoDatabase {
  readonly label: string
  readonly db: Kysely<any>
  /** Another dialect on the same database, for the application's own (wrapped) Kysely. */
  dialect(): Dialect
}

export interface DemoDatabases {
  readonly where: string
  readonly old: DemoDatabase
  readonly new: DemoDatabase
  close(): Promise<void>
}

export async function openDatabases(): Promise<DemoDatabases> {
  const url = process.env.DATABASE_URL
  return url ? serverDatabases(url) : embeddedDatabases()
}

async function embeddedDatabases(): Promise<DemoDatabases> {
  const [oldPg, newPg] = await Promise.all([PGlite.create(), PGlite.create()])
  // One PGlite is one connection. Every Kysely on it (Cutover's and the application's) shares one
  // driver, whose queue hands the connection to one caller at a time, so that no statement of one
  // lands inside another's transaction.
  const database = (label: string, client: PGlite): DemoDatabase => {
    const inner = new PGliteDialect(client)
    const driver = inner.createDriver()
    const dialect: Dialect = {
      createAdapter: () => inner.createAdapter(),
      createDriver: () => driver,
      createQueryCompiler: () => inner.createQueryCompiler(),
      createIntrospector: (db) => inner.createIntrospector(db),
    }
    return { label, db: new Kysely<any>({ dialect }), dialect: () => dialect }
  }
  return {
    where: 'embedded PostgreSQL (PGlite); set DATABASE_URL to use a server',
    old: database('old (embedded)', oldPg),
    new: database('new (embedded)', newPg),
    close: async () => {
      // Destroying a Kysely on a PGlite closes it; close what is still open.
      await Promise.all([oldPg, newPg].filter((client) => !client.closed).map((client) => client.close()))
    },
  }
}

async function serverDatabases(url: string): Promise<DemoDatabases> {
  const names = { old: `cutover_demo_old_${process.pid}`, new: `cutover_demo_new_${process.pid}` }
  const admin = new pg.Client({ connectionString: url })
  await admin.connect()
  for (const name of Object.values(names)) await admin.query(`create database "${name}"`)
  const urlOf = (name: string) => Object.assign(new URL(url), { pathname: `/${name}` }).toString()
  const pools: pg.Pool[] = []
  const database = (label: string, name: string): DemoDatabase => {
    const dialect = () => {
      const pool = new pg.Pool({ connectionString: urlOf(name), max: 5 })
      pools.push(pool)
      return new PostgresDialect({ pool })
    }
    return { label, db: new Kysely<any>({ dialect: dialect() }), dialect }
  }
  return {
    where: `PostgreSQL at ${new URL(url).host}`,
    old: database(`old (${names.old})`, names.old),
    new: database(`new (${names.new})`, names.new),
    close: async () => {
      await Promise.all(pools.map((pool) => pool.end().catch(() => undefined)))
      for (const name of Object.values(names)) await admin.query(`drop database if exists "${name}" with (force)`)
      await admin.end()
    },
  }
}
