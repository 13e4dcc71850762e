/**
 * Faults on the new side while the application writes through a Cutover-wrapped Kysely: no
 * application write fails or waits on the new store; what could not be mirrored is dead-lettered
 * and a replay brings both stores to equal, with nothing lost.
 */
import { Kysely, PostgresDialect, sql } from 'kysely'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createHarness, type Harness, storeDifferences } from '../packages/kysely-plugin/test/harness.js'
import { TcpProxy } from '../packages/kysely-plugin/test/tcp-proxy.js'
import { usersHarness } from '../packages/kysely-plugin/test/users-fixture.js'
import { KyselyTableStore } from '../packages/kysely-plugin/src/index.js'

const WRITES = 2_000

/** 1,500 inserts, 400 updates and 100 deletes from 8 concurrent writers; resolves when all succeeded. */
async function writeLoad(app: Kysely<any>, offset: number): Promise<number> {
  const ops: (() => Promise<unknown>)[] = []
  for (let i = 0; i < 1_500; i++) {
    const id = offset + i
    ops.push(() => app.insertInto('users').values({ user_id: id, full_name: `Person ${id} Smith`, email: `p${id}@example.com` }).execute())
  }
  for (let i = 0; i < 400; i++) {
    const id = offset + i
    ops.push(() => app.updateTable('users').set({ full_name: `Renamed ${id}` }).where('user_id', '=', id).execute())
  }
  for (let i = 0; i < 100; i++) {
    const id = offset + 1_000 + i
    ops.push(() => app.deleteFrom('users').where('user_id', '=', id).execute())
  }
  expect(ops).toHaveLength(WRITES)
  let next = 0
  let done = 0
  // Inserts come first in the list, so every update/delete finds its row.
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < ops.length) {
        const op = ops[next++] as () => Promise<unknown>
        await op()
        done++
      }
    }),
  )
  return done
}

describe('Kysely plugin: new store faults during 2,000 writes', () => {
  let h: Harness
  let proxy: TcpProxy
  let viaProxy: Kysely<any>

  beforeAll(async () => {
    const url = new URL(process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres')
    proxy = await TcpProxy.start({ host: url.hostname, port: Number(url.port || 5432) })
    h = await createHarness(
      usersHarness(
        'cutover_kfaults',
        { mirror: { recheckDelayMs: false, batchSize: 500, retry: { attempts: 2, baseDelayMs: 5, maxDelayMs: 10 } } },
        (_neu, url) => {
          // The new store reaches its database only through the proxy, with a short connect timeout.
          const target = new URL(url)
          target.host = `127.0.0.1:${proxy.port}`
          const pool = new pg.Pool({ connectionString: target.toString(), max: 8, connectionTimeoutMillis: 1_000 })
          pool.on('error', () => {}) // idle clients cut by the proxy
          viaProxy = new Kysely<any>({ dialect: new PostgresDialect({ pool }) })
          return new KyselyTableStore(viaProxy, 'users', 'id')
        },
      ),
    )
    await h.cutover.setPhase('users', 'shadow', { actor: 'test' })
  })
  afterAll(async () => {
    await viaProxy?.destroy().catch(() => {})
    await h?.close()
    await proxy?.close()
  })

  it('with the new database unreachable: writes succeed at once, then a replay brings both stores to equal', async () => {
    proxy.cut()
    const runtime = h.cutover.migration('users')
    expect(await writeLoad(h.app, 0)).toBe(WRITES)
    // Every application write has returned while the mirror is still stuck on the unreachable store.
    expect(runtime.queue('old-to-new').depth).toBeGreaterThan(0)
    expect(h.cutover.metrics.counter('mirror.applied', { migration: 'users', direction: 'old-to-new' })).toBe(0)
    await h.cutover.drain()
    const open = await h.cutover.deadLetters!.countOpen('users')
    expect(open).toBeGreaterThanOrEqual(1_500) // every key written, coalesced per key

    proxy.restore()
    const replay = await h.cutover.replayDeadLetters('users')
    expect(replay.stillFailing).toBe(0)
    expect(replay.replayed).toBe(open)
    expect(await h.cutover.deadLetters!.countOpen('users')).toBe(0)
    expect(await storeDifferences(h.cutover, 'users')).toEqual([])
    expect(await h.neu.db.selectFrom('users').select(sql<number>`count(*)::int`.as('n')).executeTakeFirst()).toEqual({ n: 1_400 })
  })

  it('with the new table gone: the same, and nothing lost', async () => {
    await sql`alter table users rename to users_gone`.execute(h.neu.db)
    expect(await writeLoad(h.app, 10_000)).toBe(WRITES)
    await h.cutover.drain()
    const open = await h.cutover.deadLetters!.countOpen('users')
    expect(open).toBeGreaterThanOrEqual(1_500)
    const reasons = await h.cutover.deadLetters!.countByReason('users')
    expect(Object.keys(reasons)).toEqual(['STORE_FAILED'])

    await sql`alter table users_gone rename to users`.execute(h.neu.db)
    const replay = await h.cutover.replayDeadLetters('users')
    expect(replay).toEqual({ replayed: open, stillFailing: 0 })
    expect(await storeDifferences(h.cutover, 'users')).toEqual([])
    expect(await h.old.db.selectFrom('users').select(sql<number>`count(*)::int`.as('n')).executeTakeFirst()).toEqual({ n: 2_800 })
  })
})
