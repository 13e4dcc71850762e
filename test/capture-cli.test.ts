/**
 * `cutover capture install|status|run|remove` end to end on PostgreSQL (in-process through `main`),
 * and the typed error naming the privilege a database role lacks.
 */
import { CapturePrivilegeError, ensureSchema, installCapture } from '@cutover/core'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { main } from '../packages/core/src/cli/main.js'
import { createPeopleTables, peopleMigration } from './fixtures/people.js'
import { kyselyOn } from './fixtures/capture-accounts.js'
import { createTestDatabase, databaseUrl, type TestDatabase, uniqueName } from './setup/services.js'

let oldDb: TestDatabase
let newDb: TestDatabase
const role = uniqueName('cutover_nopriv')

beforeAll(async () => {
  ;[oldDb, newDb] = await Promise.all([createTestDatabase('cutover_capcli_old'), createTestDatabase('cutover_capcli_new')])
  await ensureSchema(newDb.db)
  await createPeopleTables(oldDb.db, newDb.db, 100)
  process.env.CUTOVER_TEST_OLD_URL = oldDb.url
  process.env.CUTOVER_TEST_NEW_URL = newDb.url
  await sql.raw(`create role "${role}" login`).execute(oldDb.db)
})

afterAll(async () => {
  await Promise.all([oldDb?.drop(), newDb?.drop()])
  const admin = kyselyOn(databaseUrl(), 1)
  await sql.raw(`drop role if exists "${role}"`).execute(admin).catch(() => undefined)
  await admin.destroy()
})

async function cutover(...args: string[]): Promise<{ code: number; result: any; text: string; stderr: string }> {
  let out = ''
  let err = ''
  const stream = (append: (s: string) => void) => ({ isTTY: false, write: (chunk: string) => (append(chunk), true) }) as unknown as NodeJS.WriteStream
  const code = await main([...args, '--config', 'test/fixtures/people.config.ts', '--actor', 'cli-test'], { stdout: stream((s) => (out += s)), stderr: stream((s) => (err += s)) })
  const result = out.split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line)).at(-1)
  return { code, result, text: out, stderr: err }
}

describe('cutover capture', () => {
  it('installs idempotently, reports pending changes, applies them with run --once, and removes', { timeout: 60_000 }, async () => {
    for (let i = 0; i < 2; i++) {
      const install = await cutover('capture', 'install', 'people', '--side', 'old')
      expect(install.code, install.stderr).toBe(0)
      expect(install.result.sides[0]).toMatchObject({ side: 'old', installed: true, pending: 0 })
    }
    await sql`update people set full_name = 'Changed ' || id || ' By Psql', version = version + 1 where id <= 10`.execute(oldDb.db)
    expect((await cutover('capture', 'status', 'people', '--side', 'old')).result.sides[0]).toMatchObject({ installed: true, pending: 10 })
    // The phase the worker follows comes from the control table.
    await sql`insert into cutover.migration_state (migration, phase, updated_by) values ('people', 'shadow', 'test')`.execute(newDb.db)
    const run = await cutover('capture', 'run', 'people', '--side', 'old', '--once')
    expect(run.code, run.stderr).toBe(0)
    expect(run.result.sides[0]).toMatchObject({ pending: 0 })
    const { rows } = await sql<{ first_name: string }>`select first_name from people_v2 where id = 3`.execute(newDb.db)
    expect(rows[0]?.first_name).toBe('Changed')
    for (let i = 0; i < 2; i++) {
      const remove = await cutover('capture', 'remove', 'people', '--side', 'old')
      expect(remove.code, remove.stderr).toBe(0)
      expect(remove.result.sides[0]).toMatchObject({ installed: false, triggers: 0 })
    }
  })

  it('names the privilege a role lacks, one at a time, until it has them all', { timeout: 60_000 }, async () => {
    const url = new URL(oldDb.url)
    url.username = role
    const asRole = kyselyOn(url.toString(), 1)
    oldDb.track(asRole)
    const migration = peopleMigration(asRole, newDb.db, { name: 'people_role' })
    await sql`drop schema if exists cutover cascade`.execute(oldDb.db)
    const attempt = () => installCapture(migration, ['old']).then(() => undefined, (error: unknown) => error)

    const noCreate = await attempt()
    expect(noCreate).toBeInstanceOf(CapturePrivilegeError)
    expect(noCreate).toMatchObject({ code: 'CAPTURE_PRIVILEGE_MISSING', privilege: 'CREATE on the database (to create the cutover schema)', role })

    await sql.raw(`grant create on database "${oldDb.name}" to "${role}"`).execute(oldDb.db)
    const noTrigger = await attempt()
    expect(noTrigger).toMatchObject({ code: 'CAPTURE_PRIVILEGE_MISSING', privilege: 'TRIGGER on table public.people' })
    expect((noTrigger as Error).message).toContain(`role "${role}" lacks TRIGGER on table public.people`)

    await sql.raw(`grant trigger on people to "${role}"`).execute(oldDb.db)
    expect(await attempt()).toBeUndefined()
    await sql.raw(`drop owned by "${role}" cascade`).execute(oldDb.db)
  })
})
