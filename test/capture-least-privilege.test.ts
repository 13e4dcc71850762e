/**
 * Change-log capture with least privilege: the application connects as a role that owns its table
 * and has no privilege at all on schema `cutover`, while the capture's install, its worker, the
 * stores and the control tables use an installer role (not a superuser) that was granted TRIGGER
 * and DML on the table. The application's writes through the wrapper are logged by the SECURITY
 * DEFINER triggers and mirrored, its own catalog (Kysely's introspection) shows no Cutover table,
 * and a table the application drops and recreates is captured again after a re-install.
 */
import { randomBytes } from 'node:crypto'
import { CapturePrivilegeError, captureStatus, copy, createCutover, type Cutover, defineMigration, fieldMapper, installCapture, silentLogger } from '@cutover/core'
import { KyselyTableStore, withCutover } from '@cutover/kysely-plugin'
import { Kysely, PostgresDialect, sql } from 'kysely'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { storeDifferences } from '../packages/kysely-plugin/test/harness.js'
import { databaseUrl, kyselyFor, withDatabase } from './setup/services.js'

const PERSON_DDL = 'create table person (id serial primary key, first_name varchar(255), gender varchar(50) not null)'
const personMapper = fieldMapper({
  old: z.object({ id: z.number().int(), first_name: z.string().nullable(), gender: z.string() }),
  new: z.object({ id: z.number().int(), first_name: z.string().nullable(), gender: z.string() }),
  fields: [copy('id'), copy('first_name'), copy('gender')],
})

describe('change-log capture for an application role without privileges on schema cutover', () => {
  const suffix = `${process.pid}_${randomBytes(4).toString('hex')}`
  const appRole = `cutover_lp_app_${suffix}`
  const installer = `cutover_lp_inst_${suffix}`
  const oldName = `cutover_lp_old_${suffix}`
  const newName = `cutover_lp_new_${suffix}`
  const admin = kyselyFor(databaseUrl(), 1)
  const as = (role: string, database: string) => {
    const url = new URL(withDatabase(databaseUrl(), database))
    url.username = role
    url.password = ''
    return url.toString()
  }
  const closables: Kysely<any>[] = []
  const open = (url: string, max = 2) => {
    const db = kyselyFor(url, max)
    closables.push(db)
    return db
  }
  let cutover: Cutover
  let app: Kysely<any>
  let appOwn: Kysely<any>
  let oldStoreDb: Kysely<any>

  beforeAll(async () => {
    await sql.raw(`create role "${appRole}" login`).execute(admin)
    await sql.raw(`create role "${installer}" login`).execute(admin)
    await sql.raw(`create database "${oldName}" owner "${appRole}"`).execute(admin)
    await sql.raw(`create database "${newName}" owner "${installer}"`).execute(admin)
    // What an operator grants the installer on the application's database: CREATE for the
    // `cutover` schema, and TRIGGER plus DML on the tables the application (their owner) creates.
    await sql.raw(`grant create, connect on database "${oldName}" to "${installer}"`).execute(admin)
    appOwn = open(as(appRole, oldName), 1)
    await sql.raw(`alter default privileges in schema public grant select, insert, update, delete, trigger on tables to "${installer}"`).execute(appOwn)
    await sql.raw(PERSON_DDL).execute(appOwn)
    oldStoreDb = open(as(installer, oldName), 4)
    const newStoreDb = open(as(installer, newName), 4)
    await sql.raw(PERSON_DDL).execute(newStoreDb)
    cutover = await createCutover({
      migrations: [
        defineMigration({
          name: 'person',
          old: new KyselyTableStore(oldStoreDb, 'person', 'id'),
          new: new KyselyTableStore(newStoreDb, 'person', 'id'),
          mapper: personMapper,
          capture: { mode: 'change-log', install: true, workers: 1, pollIntervalMs: 20 },
          // In `cutover` the application still writes the old table: applied and mirrored forward.
          staleSideWrites: 'permissive',
          gates: false,
        }),
      ],
      control: oldStoreDb,
      env: {},
      pollIntervalMs: false,
      logger: silentLogger,
    })
    const pool = new pg.Pool({ connectionString: as(appRole, oldName), max: 2 })
    pool.on('error', () => {})
    app = new Kysely<any>({ dialect: withCutover(new PostgresDialect({ pool }), { cutover, tables: { person: { migration: 'person', side: 'old' } } }) })
    closables.push(app)
  })

  afterAll(async () => {
    await cutover?.close().catch(() => {})
    for (const db of closables.reverse()) await db.destroy().catch(() => {})
    await new Promise((resolve) => setTimeout(resolve, 100))
    for (const name of [oldName, newName]) await sql.raw(`drop database if exists "${name}" with (force)`).execute(admin)
    for (const role of [appRole, installer]) await sql.raw(`drop role if exists "${role}"`).execute(admin)
    await admin.destroy()
  })

  it('the application role has no USAGE on schema cutover, and the capture is installed', async () => {
    const { rows } = await sql<{ usage: boolean }>`select has_schema_privilege(current_user, 'cutover', 'USAGE') as usage`.execute(appOwn)
    expect(rows[0]?.usage).toBe(false)
    expect((await captureStatus(cutover.migration('person').migration, ['old']))[0]?.installed).toBe(true)
    expect(cutover.migration('person').changeLog?.captures('old')).toBe(true)
  })

  for (const phase of ['shadow', 'compare', 'ramp', 'cutover'] as const) {
    it(`in ${phase}, the application's writes through the wrapper are logged and mirrored`, async () => {
      await cutover.setPhase('person', phase, { actor: 'test', force: true, reason: 'test', ...(phase === 'ramp' ? { readPercent: 100 } : {}) })
      await app.transaction().execute(async (trx) => {
        await trx.insertInto('person').values({ first_name: `Foo ${phase}`, gender: 'male' }).execute()
      })
      const { id } = await app.insertInto('person').values({ first_name: `Bar ${phase}`, gender: 'female' }).returning('id').executeTakeFirstOrThrow()
      await app.updateTable('person').set({ gender: 'other' }).where('first_name', '=', `Foo ${phase}`).execute()
      await app.deleteFrom('person').where('id', '=', id).execute()
      await cutover.drain()
      expect(await storeDifferences(cutover, 'person')).toEqual([])
      expect((await captureStatus(cutover.migration('person').migration, ['old']))[0]?.pending).toBe(0)
    })
  }

  it("Kysely's introspection through the application's connection lists no cutover table", async () => {
    const tables = await app.introspection.getTables()
    expect(tables.map((table) => `${table.schema}.${table.name}`)).toEqual(['public.person'])
  })

  it("an engine whose captured store connects as the application's role is refused at start, naming the missing privilege", async () => {
    // The workers and read-your-writes read the change log through the store's connection: a store
    // built on the application's role would fail every round. Start-up says so, not PostgreSQL later.
    const started = createCutover({
      migrations: [
        defineMigration({
          name: 'person',
          old: new KyselyTableStore(appOwn, 'person', 'id'),
          new: cutover.migration('person').migration.new,
          mapper: personMapper,
          capture: { mode: 'change-log', workers: 1 },
          gates: false,
        }),
      ],
      control: oldStoreDb,
      env: {},
      pollIntervalMs: false,
      fleet: false,
      signalIntervalMs: false,
      logger: silentLogger,
    })
    const error = await started.then(
      async (engine) => {
        await engine.close()
        return undefined
      },
      (failure: unknown) => failure,
    )
    expect(error).toBeInstanceOf(CapturePrivilegeError)
    expect(error).toMatchObject({ code: 'CAPTURE_PRIVILEGE_MISSING', role: appRole })
    expect((error as Error).message).toContain('USAGE on schema cutover')
  })

  it('a table the application drops and recreates is captured again once the installer re-installs', async () => {
    await cutover.setPhase('person', 'rollback', { actor: 'test', force: true, reason: 'test' })
    await cutover.setPhase('person', 'shadow', { actor: 'test', force: true, reason: 'test' })
    await sql`drop table person`.execute(appOwn)
    await sql.raw(PERSON_DDL).execute(appOwn)
    await sql`delete from person`.execute(cutover.migration('person').migration.new.capture?.db ?? appOwn)
    expect((await captureStatus(cutover.migration('person').migration, ['old']))[0]?.installed).toBe(false)
    await installCapture(cutover.migration('person').migration, ['old'])
    await app.insertInto('person').values({ first_name: 'Baz', gender: 'male' }).execute()
    await cutover.drain()
    expect(await storeDifferences(cutover, 'person')).toEqual([])
    const mirrored = await cutover.migration('person').migration.new.get([1])
    expect([...mirrored.values()].map((row) => row.first_name)).toEqual(['Baz'])
  })
})
