/**
 * Installing, removing and inspecting the change-log capture of a migration's PostgreSQL sides.
 * All three are idempotent, and install/remove are serialized per database by an advisory lock, so
 * every application instance may call them at start-up.
 */
import { type Kysely, sql, type Transaction } from 'kysely'
import type { Side } from '../model/phase.js'
import type { Migration } from '../model/migration.js'
import type { CapturableTable } from '../model/store.js'
import { CapturePrivilegeError, CaptureTableMissingError, CaptureUnsupportedError } from './capture-errors.js'
import { CAPTURE_SCHEMA_SQL, captureObjects, type CaptureObjects, installSql, removeSql } from './capture-sql.js'

/** The sides captured by default: every side whose store is a capturable PostgreSQL table. */
export function capturableSides(migration: Migration<any, any>): Side[] {
  return (['old', 'new'] as const).filter((side) => migration[side].capture !== undefined)
}

export function captureTable(migration: Migration<any, any>, side: Side): CapturableTable {
  const table = migration[side].capture
  if (!table) throw new CaptureUnsupportedError(migration.name, side, migration[side].name)
  return table
}

export function objectsFor(migration: Migration<any, any>, side: Side): CaptureObjects {
  const table = captureTable(migration, side)
  return captureObjects(migration.name, side, table.table, table.keyColumns)
}

/** Creates (or re-creates) the triggers of the given sides; the change log and its tables if missing. */
export async function installCapture(migration: Migration<any, any>, sides: readonly Side[] = capturableSides(migration)): Promise<void> {
  await forEachSide(migration, sides, async (trx, objects, side) => {
    await checkPrivileges(trx, migration.name, objects)
    await runAll(trx, [...CAPTURE_SCHEMA_SQL, ...installSql(objects, migration.name, side)], migration.name, objects)
  })
}

/** Drops the triggers and function of the given sides and their unapplied log entries. */
export async function removeCapture(migration: Migration<any, any>, sides: readonly Side[] = capturableSides(migration)): Promise<void> {
  await forEachSide(migration, sides, async (trx, objects) => {
    if (!(await hasChangeLog(trx))) return
    await runAll(trx, removeSql(objects), migration.name, objects)
  })
}

/** Runs `work` for each side in a transaction of its own, serialized with every other install or removal. */
async function forEachSide(
  migration: Migration<any, any>,
  sides: readonly Side[],
  work: (trx: Transaction<any>, objects: CaptureObjects, side: Side) => Promise<void>,
): Promise<void> {
  for (const side of sides) {
    const table = captureTable(migration, side)
    const objects = objectsFor(migration, side)
    await table.run(() =>
      table.db.transaction().execute(async (trx) => {
        await sql`select pg_advisory_xact_lock(hashtext('cutover.capture'))`.execute(trx)
        await work(trx, objects, side)
      }),
    )
  }
}

export interface CaptureStatus {
  readonly migration: string
  readonly side: Side
  readonly table: string
  /** All three triggers present and enabled. */
  readonly installed: boolean
  /** Triggers present (of 3): anything between 0 and 3 is a partial install to repair. */
  readonly triggers: number
  /** Unapplied entries in the change log. */
  readonly pending: number
  /** Age of the oldest unapplied entry: the worker's lag. */
  readonly lagMs: number
  /** TRUNCATEs reported and not yet resolved by a resync. */
  readonly resyncsPending: number
}

export async function captureStatus(migration: Migration<any, any>, sides: readonly Side[] = capturableSides(migration)): Promise<CaptureStatus[]> {
  const statuses: CaptureStatus[] = []
  for (const side of sides) {
    const table = captureTable(migration, side)
    const objects = objectsFor(migration, side)
    statuses.push(
      await table.run(async () => {
        await checkLogPrivileges(table.db, migration.name, objects)
        return sideStatus(table.db, migration.name, side, objects)
      }),
    )
  }
  return statuses
}

async function sideStatus(db: Kysely<any>, migration: string, side: Side, objects: CaptureObjects): Promise<CaptureStatus> {
  const names = Object.values(objects.triggers)
  const { rows: triggerRows } = await sql<{ n: number }>`
    select count(*)::int as n from pg_trigger t
     where t.tgrelid = to_regclass(${objects.table.sql}) and t.tgname = any(${names}) and t.tgenabled <> 'D'`.execute(db)
  const triggers = triggerRows[0]?.n ?? 0
  let pending = 0
  let lagMs = 0
  let resyncsPending = 0
  if (await hasChangeLog(db)) {
    const { rows } = await sql<{ pending: number; lag_ms: number | null }>`
      select count(*)::int as pending, (extract(epoch from clock_timestamp() - min(logged_at)) * 1000)::float8 as lag_ms
        from cutover.change_log where capture = ${objects.capture}`.execute(db)
    pending = rows[0]?.pending ?? 0
    lagMs = rows[0]?.lag_ms ?? 0
    const { rows: resyncs } = await sql<{ n: number }>`
      select count(*)::int as n from cutover.capture_resyncs where capture = ${objects.capture} and resolved_at is null`.execute(db)
    resyncsPending = resyncs[0]?.n ?? 0
  }
  return { migration, side, table: `${objects.table.schema}.${objects.table.name}`, installed: triggers === names.length, triggers, pending, lagMs, resyncsPending }
}

/**
 * The workers and read-your-writes use the captured store's connection to read and empty the change
 * log. The application's role need not (and, so that its own catalog stays its own, should not) see
 * schema `cutover`: a store built on that role's connection is refused here, at start-up, with the
 * privilege named, rather than failing every worker round later.
 */
async function checkLogPrivileges(db: Kysely<any>, migration: string, objects: CaptureObjects): Promise<void> {
  // Looking up a namespace needs no privilege; `to_regclass('cutover.…')` would need USAGE already.
  const { rows } = await sql<{ role: string; usage: boolean | null }>`
    select current_user as role,
           case when to_regnamespace('cutover') is null then null else has_schema_privilege('cutover', 'USAGE') end as usage`.execute(db)
  const row = rows[0]
  if (!row || row.usage !== false) return
  const table = `${objects.table.schema}.${objects.table.name}`
  throw new CapturePrivilegeError(migration, table, "USAGE on schema cutover (the store's connection reads the change log; build the captured store on the installer's role, not the application's)", row.role)
}

async function hasChangeLog(db: Kysely<any>): Promise<boolean> {
  const { rows } = await sql<{ present: boolean }>`select to_regclass('cutover.change_log') is not null as present`.execute(db)
  return rows[0]?.present === true
}

/**
 * Checks up front what PostgreSQL would refuse half-way, so the error names the privilege: CREATE on
 * the database (for the `cutover` schema) or on that schema, and TRIGGER on the table.
 */
async function checkPrivileges(db: Kysely<any>, migration: string, objects: CaptureObjects): Promise<void> {
  const table = `${objects.table.schema}.${objects.table.name}`
  const { rows } = await sql<{ role: string; exists: boolean; schema_present: boolean; create_db: boolean; create_schema: boolean | null; trigger: boolean | null }>`
    select current_user as role,
           to_regclass(${objects.table.sql}) is not null as exists,
           to_regnamespace('cutover') is not null as schema_present,
           has_database_privilege(current_database(), 'CREATE') as create_db,
           case when to_regnamespace('cutover') is null then null else has_schema_privilege('cutover', 'CREATE') end as create_schema,
           case when to_regclass(${objects.table.sql}) is null then null else has_table_privilege(to_regclass(${objects.table.sql}), 'TRIGGER') end as trigger`.execute(db)
  const row = rows[0]
  if (!row) return
  if (!row.exists) throw new CaptureTableMissingError(migration, table)
  if (!row.schema_present && !row.create_db) throw new CapturePrivilegeError(migration, table, 'CREATE on the database (to create the cutover schema)', row.role)
  if (row.schema_present && row.create_schema === false) throw new CapturePrivilegeError(migration, table, 'CREATE on schema cutover', row.role)
  if (row.trigger === false) throw new CapturePrivilegeError(migration, table, `TRIGGER on table ${table}`, row.role)
}

async function runAll(db: Kysely<any>, statements: readonly string[], migration: string, objects: CaptureObjects): Promise<void> {
  for (const statement of statements) {
    try {
      await sql.raw(statement).execute(db)
    } catch (error) {
      throw translateDatabaseError(error, migration, objects)
    }
  }
}

/** Insufficient privilege (42501) and "must be owner" become `CapturePrivilegeError`. */
function translateDatabaseError(error: unknown, migration: string, objects: CaptureObjects): unknown {
  const code = (error as { code?: string }).code
  const message = error instanceof Error ? error.message : String(error)
  if (code !== '42501') return error
  const table = `${objects.table.schema}.${objects.table.name}`
  const privilege = /must be owner of (\w+) (.+)/.exec(message)
  const role = /role "?([^" ]+)"?/.exec(message)?.[1] ?? 'current role'
  return new CapturePrivilegeError(migration, table, privilege ? `ownership of ${privilege[1]} ${privilege[2]}` : message.replace(/^permission denied for /, 'privileges on '), role, { cause: error })
}
