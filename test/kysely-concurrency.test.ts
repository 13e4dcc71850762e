/**
 * Several writers — in two application instances, each with its own Cutover and mirror queue —
 * update the same keys concurrently. Without a version column the queues may apply one key in a
 * stale order; the re-check must still bring the stores to equal.
 */
import { createCutover, type Cutover, defineMigration, silentLogger, type Store } from '@cutover/core'
import { Kysely, PostgresDialect, sql } from 'kysely'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createHarness, type Harness, storeDifferences } from '../packages/kysely-plugin/test/harness.js'
import { usersMapper, usersHarness } from '../packages/kysely-plugin/test/users-fixture.js'
import { KyselyTableStore, withCutover } from '../packages/kysely-plugin/src/index.js'

const KEYS = Array.from({ length: 10 }, (_, i) => i + 1)

/**
 * The new store with a random pause between the mirror's read of the source and its write: the
 * window in which another instance can write a newer state first, which this write then overwrites.
 */
function slowWrites(store: Store, pause: { ms?: number } = {}): Store {
  return {
    name: store.name,
    keyField: store.keyField,
    get: (keys) => store.get(keys),
    scan: (options) => store.scan(options),
    delete: (keys) => store.delete(keys),
    upsert: async (records, mode) => {
      await new Promise((resolve) => setTimeout(resolve, pause.ms ?? Math.random() * 15))
      return store.upsert(records, mode)
    },
  }
}

describe('Kysely plugin: concurrent writers on the same keys', () => {
  let h: Harness
  let second: { cutover: Cutover; app: Kysely<any> }
  const firstPause: { ms?: number } = {}

  beforeAll(async () => {
    const options = usersHarness('cutover_kconc', { mirror: { recheckDelayMs: 20, batchSize: 3, concurrency: 4 } })
    h = await createHarness({ ...options, migrations: (old, neu, urls) => options.migrations(old, neu, urls).map((m) => ({ ...m, new: slowWrites(m.new, firstPause) })) })
    await h.cutover.setPhase('users', 'shadow', { actor: 'test' })
    // A second application instance: same databases, its own engine, queue and connection pool.
    const cutover = await createCutover({
      migrations: [
        defineMigration({
          name: 'users',
          old: new KyselyTableStore(h.old.db, 'users', 'user_id'),
          new: slowWrites(new KyselyTableStore(h.neu.db, 'users', 'id')),
          mapper: usersMapper,
          key: { old: 'user_id', new: 'id' },
          mirror: { recheckDelayMs: 20, batchSize: 3, concurrency: 4 },
        }),
      ],
      control: h.old.db,
      env: {},
      pollIntervalMs: false,
      logger: silentLogger,
    })
    expect(cutover.migration('users').phase).toBe('shadow') // read from the control table
    const app = new Kysely<any>({
      dialect: withCutover(new PostgresDialect({ pool: new pg.Pool({ connectionString: h.old.url, max: 10 }) }), {
        cutover,
        tables: { users: { migration: 'users', side: 'old' } },
      }),
    })
    second = { cutover, app }
    await h.app.insertInto('users').values(KEYS.map((id) => ({ user_id: id, full_name: 'Start Name', email: `u${id}@example.com` }))).execute()
  })
  afterAll(async () => {
    await second?.cutover.close()
    await second?.app.destroy()
    await h?.close()
  })

  it('ends with equal stores', async () => {
    const writer = async (app: Kysely<any>, writerId: number) => {
      for (let round = 0; round < 60; round++) {
        const id = KEYS[(round * 7 + writerId) % KEYS.length] as number
        if (round % 5 === 4) {
          await app.transaction().execute(async (trx) => {
            await trx.updateTable('users').set({ full_name: `W${writerId} R${round} Trx` }).where('user_id', '=', id).execute()
            await trx.updateTable('users').set({ email: sql`'w${sql.raw(String(writerId))}.' || email` }).where('user_id', '=', id).execute() // one key per transaction: no deadlocks in the workload itself
          })
        } else {
          await app.updateTable('users').set({ full_name: `W${writerId} R${round}` }).where('user_id', '=', id).execute()
        }
      }
    }
    await Promise.all([0, 1, 2, 3].flatMap((w) => [writer(h.app, w), writer(second.app, w + 10)]))
    await Promise.all([h.cutover.drain(), second.cutover.drain()])
    // A re-check may have re-queued a key on either instance: drain until both are quiet.
    await Promise.all([h.cutover.drain(), second.cutover.drain()])
    expect(await storeDifferences(h.cutover, 'users')).toEqual([])
    const applied =
      h.cutover.metrics.counter('mirror.applied', { migration: 'users', direction: 'old-to-new' }) +
      second.cutover.metrics.counter('mirror.applied', { migration: 'users', direction: 'old-to-new' })
    expect(applied).toBeGreaterThan(KEYS.length) // both instances really mirrored
  })

  it('repairs a stale apply: one instance writes an old state after the other wrote the newer one', async () => {
    const id = 5
    firstPause.ms = 300 // the first instance's apply holds its (soon stale) read for 300 ms
    await h.app.updateTable('users').set({ full_name: 'Stale Name' }).where('user_id', '=', id).execute()
    await new Promise((resolve) => setTimeout(resolve, 50)) // its queue has read "Stale Name"
    await second.app.updateTable('users').set({ full_name: 'Fresh Name' }).where('user_id', '=', id).execute()
    await second.cutover.drain() // "Fresh Name" is in the new store; then the stale write lands
    firstPause.ms = 0
    await h.cutover.drain()
    await second.cutover.drain()
    expect(await h.neu.db.selectFrom('users').select(['first_name', 'last_name']).where('id', '=', id).executeTakeFirst()).toEqual({ first_name: 'Fresh', last_name: 'Name' })
    expect(h.cutover.metrics.counter('mirror.recheck_repaired', { migration: 'users', direction: 'old-to-new' })).toBeGreaterThan(0)
    expect(await storeDifferences(h.cutover, 'users')).toEqual([])
  })
})
