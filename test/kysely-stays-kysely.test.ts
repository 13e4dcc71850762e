/**
 * Kysely stays Kysely through the wrapper: its `log` sees every statement run for the caller
 * (transaction control included, and the statement as it ran where RETURNING was added), and the
 * wrapper recognizes PostgreSQL's compiler even when Kysely is loaded twice in one process (its
 * CommonJS build next to the ESM one).
 */
import { createRequire } from 'node:module'
import type { Phase } from '@cutover/core'
import * as esm from 'kysely'
import { type Kysely, type LogEvent, PostgresDialect, sql } from 'kysely'
import pg from 'pg'
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest'
import { withCutover } from '../packages/kysely-plugin/src/index.js'
import { createHarness, type Harness } from '../packages/kysely-plugin/test/harness.js'
import { usersHarness } from '../packages/kysely-plugin/test/users-fixture.js'

const cjs = createRequire(import.meta.url)('kysely') as typeof esm

/** What the wrapper adds to a write's RETURNING; removed to compare with the plain run. */
const KEY_SUFFIX = /,? ?(returning )?"?[\w.]*"?\.?"user_id" as "__cutover_key"/g

type Log = string[]
const logTo = (log: Log) => (event: LogEvent) => void log.push(event.query.sql)

/** A transaction, a failed one, and a controlled transaction with savepoints, on the users table. */
async function transactions(db: Kysely<any>, id: number): Promise<void> {
  await db.transaction().execute(async (trx) => {
    await trx.insertInto('users').values({ user_id: id, full_name: 'In Trx', email: 'a@example.com' }).execute()
  })
  await db
    .transaction()
    .execute(async (trx) => {
      await trx.updateTable('users').set({ email: 'b@example.com' }).where('user_id', '=', id).execute()
      throw new Error('abort')
    })
    .catch(() => {})
  const trx = await db.startTransaction().setIsolationLevel('serializable').execute()
  const sp = await trx.savepoint('sp1').execute()
  await sp.updateTable('users').set({ email: 'c@example.com' }).where('user_id', '=', id).execute()
  const back = await sp.rollbackToSavepoint('sp1').execute()
  const sp2 = await back.savepoint('sp2').execute()
  const released = await sp2.releaseSavepoint('sp2').execute()
  await released.commit().execute()
  await db.connection().execute(async (conn) => {
    await sql`begin`.execute(conn)
    await sql`rollback`.execute(conn)
  })
}

describe("Kysely plugin: Kysely's log sees every statement run for the caller", () => {
  let h: Harness
  let plainLog: Log
  let wrappedLog: Log
  let plain: Kysely<any>
  let wrapped: Kysely<any>

  beforeAll(async () => {
    h = await createHarness(usersHarness('cutover_klog'))
    plain = new esm.Kysely<any>({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: h.old.url, max: 2 }) }), log: logTo((plainLog = [])) })
    wrapped = new esm.Kysely<any>({
      dialect: withCutover(new PostgresDialect({ pool: new pg.Pool({ connectionString: h.old.url, max: 2 }) }), { cutover: h.cutover, tables: { users: { migration: 'users', side: 'old' } } }),
      log: logTo((wrappedLog = [])),
    })
  })
  afterAll(async () => {
    await plain?.destroy()
    await wrapped?.destroy()
    await h?.close()
  })
  beforeEach(() => {
    plainLog.length = 0
    wrappedLog.length = 0
  })

  const phases: [Phase, number][] = [
    ['off', 100],
    ['shadow', 200],
    ['compare', 300],
    ['ramp', 400],
  ]
  for (const [phase, id] of phases) {
    it(`in ${phase}: BEGIN, COMMIT, ROLLBACK and savepoints appear in the log as without the wrapper`, async () => {
      if (phase !== 'off') await h.cutover.setPhase('users', phase, { actor: 'test', readPercent: 100 })
      await transactions(plain, id)
      await transactions(wrapped, id + 1)
      const expected = plainLog.map((line) => line.replaceAll(`${id}`, '?'))
      expect(wrappedLog.map((line) => line.replace(KEY_SUFFIX, '').replaceAll(`${id + 1}`, '?'))).toEqual(expected)
      expect(wrappedLog.filter((line) => /^(begin|start transaction|commit|rollback|savepoint|release)/.test(line))).toEqual([
        'begin',
        'commit',
        'begin',
        'rollback',
        'start transaction isolation level serializable',
        'savepoint "sp1"',
        'rollback to "sp1"',
        'savepoint "sp2"',
        'release "sp2"',
        'commit',
        'begin',
        'rollback',
      ])
    })
  }

  it('where RETURNING is added, the log shows the statement that ran, and the caller its own result', async () => {
    await h.cutover.setPhase('users', 'compare', { actor: 'test' }) // back from ramp; writes mirror as in shadow
    await wrapped.insertInto('users').values({ user_id: 900, full_name: 'Logged Write', email: 'x@example.com' }).execute()
    wrappedLog.length = 0
    // Not by key: the keys can only come from RETURNING.
    const result = await wrapped.updateTable('users').set({ full_name: 'Logged Rewrite' }).where('email', '=', 'x@example.com').returning('email').execute()
    expect(result).toEqual([{ email: 'x@example.com' }])
    expect(wrappedLog).toHaveLength(1)
    expect(wrappedLog[0]).toMatch(/^update "users" set "full_name" = \$1 where "email" = \$2 returning "email", .*"user_id" as "__cutover_key"$/)
  })
})

describe('Kysely plugin: loaded twice (CommonJS next to ESM), the compiler is still known to be PostgreSQL’s', () => {
  let h: Harness
  let db: esm.Kysely<any>
  /** What reached PostgreSQL (the pg client's own queries), not what any layer above says. */
  const ran: Log = []

  beforeAll(async () => {
    expect(cjs.PostgresQueryCompiler).not.toBe(esm.PostgresQueryCompiler) // two builds of Kysely, really
    h = await createHarness(usersHarness('cutover_kcjs'))
    const pool = new pg.Pool({ connectionString: h.old.url, max: 2 })
    pool.on('connect', (client) => {
      const query = client.query.bind(client) as (...args: unknown[]) => unknown
      ;(client as { query: unknown }).query = (...args: unknown[]) => {
        if (typeof args[0] === 'string' && !args[0].includes('/* cutover:')) ran.push(args[0]) // not the catalog lookup
        return query(...args)
      }
    })
    const dialect = new cjs.PostgresDialect({ pool })
    db = new cjs.Kysely<any>({
      dialect: withCutover(dialect as unknown as esm.Dialect, { cutover: h.cutover, tables: { users: { migration: 'users', side: 'old' } } }) as never,
    }) as unknown as esm.Kysely<any>
    await h.cutover.setPhase('users', 'shadow', { actor: 'test' })
  })
  afterAll(async () => {
    await db?.destroy()
    await h?.close()
  })

  it('writes that name their keys drop RETURNING once the catalog says they may', async () => {
    await db.insertInto('users').values({ user_id: 1, full_name: 'Twice Loaded', email: 't@example.com' }).execute()
    const update = () => db.updateTable('users').set({ email: `${Math.random()}@example.com` }).where('user_id', '=', 1).execute()
    // The catalog lookup runs beside the first writes; until it answers they keep RETURNING.
    for (let attempt = 0; attempt < 50; attempt++) {
      ran.length = 0
      await update()
      if (!ran.some((line) => line.includes('__cutover_key'))) break
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    expect(ran).toEqual(['update "users" set "email" = $1 where "user_id" = $2'])
    await h.cutover.drain()
    expect(await h.neu.db.selectFrom('users').select('email').where('id', '=', 1).executeTakeFirst()).toEqual({ email: expect.stringMatching(/@example.com$/) })
  })

  it('RETURNING is appended to the caller’s text, not recompiled, after the first write of a shape', async () => {
    const compile = vi.spyOn(cjs.PostgresQueryCompiler.prototype, 'compileQuery')
    try {
      const write = (email: string) => db.updateTable('users').set({ full_name: 'Again' }).where('email', '=', email).execute()
      await write('a@example.com')
      compile.mockClear()
      await write('b@example.com')
      expect(compile).toHaveBeenCalledTimes(1) // Kysely's own compile; the wrapper only appended
    } finally {
      compile.mockRestore()
    }
  })
})
