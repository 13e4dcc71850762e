/**
 * Fields marked sensitive (`compare.sensitive`) never appear in clear in a table Cutover writes, nor
 * in an error it raises: the new table's constraints refuse rows, so that PostgreSQL's errors echo
 * them ("Failing row contains (…)", "Key (email)=(…)"), and then every row of every table in the
 * `cutover` schema and every error are searched for the values.
 */
import { randomBytes } from 'node:crypto'
import { backfill, createCutover, defineMigration, silentLogger, StoreError } from '@cutover/core'
import { KyselyTableStore } from '@cutover/kysely-plugin'
import { sql } from 'kysely'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { DeadLetterTable } from '../packages/core/src/control/dead-letters.js'
import { QuarantineTable } from '../packages/core/src/control/quarantine.js'
import { PayloadSealer } from '../packages/core/src/control/sealed-payload.js'
import { peopleMapper } from './fixtures/people.js'
import { createTestDatabase, type TestDatabase } from './setup/services.js'

const SECRET = 'sensitive.person@example.org'
const KEY = { id: 'p1', secret: randomBytes(32) }

let oldDb: TestDatabase
let newDb: TestDatabase

beforeAll(async () => {
  ;[oldDb, newDb] = await Promise.all([createTestDatabase('cutover_sensitive_old'), createTestDatabase('cutover_sensitive_new')])
})
afterAll(async () => {
  await Promise.all([oldDb?.drop(), newDb?.drop()])
})
beforeEach(async () => {
  await sql`drop table if exists people`.execute(oldDb.db)
  await sql`drop table if exists people_v2`.execute(newDb.db)
  await sql`drop schema if exists cutover cascade`.execute(newDb.db)
  await sql`create table people (id integer primary key, full_name text not null, email text not null, version integer not null default 1)`.execute(oldDb.db)
  await sql`insert into people values (1, 'Ann Lee', ${SECRET}, 1), (2, 'Bo Ray', 'bo@example.com', 1), (3, 'Cy Dee', 'dup@example.com', 1), (4, 'Di Fox', 'dup@example.com', 1)`.execute(oldDb.db)
  // The new side refuses the secret row by a CHECK (detail: the failing row) and duplicate emails by a
  // unique index (detail: the key value).
  await sql`create table people_v2 (id integer primary key, first_name text not null, last_name text, email text not null unique check (email not like 'sensitive%'), version integer not null)`.execute(newDb.db)
})

const migration = () =>
  defineMigration({
    name: 'people',
    old: new KyselyTableStore(oldDb.db, 'people', 'id'),
    new: new KyselyTableStore(newDb.db, 'people_v2', 'id'),
    mapper: peopleMapper,
    compare: { sensitive: ['email'] },
    mirror: { retry: { attempts: 1, baseDelayMs: 1, maxDelayMs: 1 }, recheckDelayMs: false },
  })

/** Every row of every table in the `cutover` schema, as text. */
async function controlTablesText(): Promise<string> {
  const { rows: tables } = await sql<{ name: string }>`select table_name as name from information_schema.tables where table_schema = 'cutover'`.execute(newDb.db)
  let text = ''
  for (const { name } of tables) {
    const { rows } = await sql<{ t: string }>`select t::text as t from ${sql.table(`cutover.${name}`)} t`.execute(newDb.db)
    text += rows.map((r) => r.t).join('\n')
  }
  return text
}

function errorText(error: unknown): string {
  const seen = new Set<unknown>()
  const walk = (value: unknown): string => {
    if (value === null || typeof value !== 'object' || seen.has(value)) return String(value)
    seen.add(value)
    const own = Object.getOwnPropertyNames(value).map((name) => `${name}=${walk((value as Record<string, unknown>)[name])}`)
    return own.join('\n')
  }
  return walk(error)
}

describe('sensitive fields at rest', () => {
  it("a StoreError carries PostgreSQL's code and constraint, but neither the failing row nor the key value", async () => {
    const store = new KyselyTableStore(newDb.db, 'people_v2', 'id')
    const check = await store.upsert([{ id: 1, first_name: 'Ann', last_name: 'Lee', email: SECRET, version: 1 }], { kind: 'overwrite' }).catch((e: unknown) => e)
    expect(check).toBeInstanceOf(StoreError)
    expect((check as StoreError).cause).toMatchObject({ code: '23514', constraint: 'people_v2_email_check', detail: 'Failing row contains (…).' })
    expect(errorText(check)).not.toContain(SECRET)
    await store.upsert([{ id: 3, first_name: 'Cy', last_name: 'Dee', email: 'dup@example.com', version: 1 }], { kind: 'overwrite' })
    const unique = await store.upsert([{ id: 4, first_name: 'Di', last_name: 'Fox', email: 'dup@example.com', version: 1 }], { kind: 'overwrite' }).catch((e: unknown) => e)
    expect((unique as StoreError).cause).toMatchObject({ code: '23505', detail: 'Key (email)=(…) already exists.' })
    expect(errorText(unique)).not.toContain('dup@example.com')
  })

  it('dead letters of refused mirrored writes hold the sensitive values encrypted (AES-256-GCM), readable with the key only', async () => {
    process.env.CUTOVER_PAYLOAD_KEY = `${KEY.id}:${KEY.secret.toString('base64')}`
    try {
      const cutover = await createCutover({ migrations: [migration()], control: newDb.db, env: { CUTOVER_PHASE: 'shadow' }, pollIntervalMs: false, logger: silentLogger })
      const runtime = cutover.migration('people')
      runtime.recordWrite('old', { key: 1, op: 'upsert', postImage: { id: 1, full_name: 'Ann Lee', email: SECRET, version: 1 } })
      runtime.recordWrite('old', { key: 2, op: 'upsert' })
      await cutover.drain()
      await cutover.close()
      const text = await controlTablesText()
      expect(text).toContain('$sealed')
      expect(text).not.toContain(SECRET)
      const [entry] = await new DeadLetterTable(newDb.db).open('people')
      expect(entry).toMatchObject({ key: '1', reasonCode: 'STORE_FAILED', payload: { id: 1, full_name: 'Ann Lee', email: SECRET } })
      expect(entry?.reason).not.toContain(SECRET)
      // Without the key (or with another one) the value stays sealed: never guessed, never shown.
      const [locked] = await new DeadLetterTable(newDb.db, { sealer: new PayloadSealer(null) }).open('people')
      expect(locked?.payload).toMatchObject({ id: 1, email: { $sealed: expect.stringMatching(/^v1\.p1\./) } })
      // A sealed value moved to another row does not open there (bound to migration, key and path).
      await sql`insert into cutover.dead_letters (migration, direction, key, op, reason_code, reason, payload) select migration, direction, '99', op, reason_code, reason, payload from cutover.dead_letters where key = '1'`.execute(newDb.db)
      const moved = (await new DeadLetterTable(newDb.db).open('people')).find((e) => e.key === '99')
      expect(moved?.payload).toMatchObject({ email: { $sealed: expect.any(String) } })
    } finally {
      delete process.env.CUTOVER_PAYLOAD_KEY
    }
  })

  it('without a payload key the sensitive values are left out, and a state-based replay still applies the current state', async () => {
    const cutover = await createCutover({ migrations: [migration()], control: newDb.db, env: { CUTOVER_PHASE: 'shadow' }, pollIntervalMs: false, logger: silentLogger })
    const runtime = cutover.migration('people')
    runtime.recordWrite('old', { key: 1, op: 'upsert', postImage: { id: 1, full_name: 'Ann Lee', email: SECRET, version: 1 } })
    await cutover.drain()
    expect(await controlTablesText()).not.toContain(SECRET)
    expect((await new DeadLetterTable(newDb.db).open('people'))[0]?.payload).toMatchObject({ id: 1, full_name: 'Ann Lee', email: { $redacted: true } })
    await sql`alter table people_v2 drop constraint people_v2_email_check`.execute(newDb.db)
    expect(await cutover.replayDeadLetters('people')).toEqual({ replayed: 1, stillFailing: 0 })
    const { rows } = await sql<{ email: string }>`select email from people_v2 where id = 1`.execute(newDb.db)
    expect(rows[0]?.email).toBe(SECRET)
    await cutover.close()
  })

  it('quarantined backfill records hold the sensitive values sealed, and the run leaves no clear value in any control table', async () => {
    process.env.CUTOVER_PAYLOAD_KEY = `${KEY.id}:${KEY.secret.toString('base64')}`
    try {
      const m = migration()
      const { ensureSchema } = await import('../packages/core/src/control/control-schema.js')
      await ensureSchema(newDb.db)
      const summary = await backfill({ migration: m, control: newDb.db, logger: silentLogger })
      expect(summary.counts.quarantined).toBe(2)
      const text = await controlTablesText()
      expect(text).not.toContain(SECRET)
      expect(text).not.toContain('dup@example.com')
      const open = await new QuarantineTable(newDb.db).open('people')
      expect(open.find((r) => r.key === '1')).toMatchObject({ reasonCode: 'STORE_REJECTED', payload: { email: SECRET } })
    } finally {
      delete process.env.CUTOVER_PAYLOAD_KEY
    }
  })
})
