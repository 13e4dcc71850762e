/**
 * Read-your-writes in ramp: a read the new store would serve while this process has a change of
 * its keys that the mirror has not applied yet is served by the old store instead (and counted).
 * The mirror is held back for real: a transaction on the new database locks the row it must write.
 */
import { withCutoverContext } from '@cutover/core'
import { sql } from 'kysely'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createHarness, type Harness } from '../packages/kysely-plugin/test/harness.js'
import { usersHarness } from '../packages/kysely-plugin/test/users-fixture.js'

describe('Kysely plugin: in ramp, the application reads its own writes', () => {
  let h: Harness
  const freshFallbacks = () => h.cutover.metrics.counter('read.fresh_fallback', { migration: 'users' })
  /** Reads as a request whose routing key is in the ramp's percentage (100 %): served by new unless stale. */
  const asRequest = <T>(fn: () => Promise<T>) => withCutoverContext({ routingKey: 7 }, fn)

  beforeAll(async () => {
    h = await createHarness(usersHarness('cutover_kryw'))
    await h.cutover.setPhase('users', 'shadow', { actor: 'test' })
    await h.app
      .insertInto('users')
      .values([
        { user_id: 1, full_name: 'Ada Lovelace', email: 'ada@example.com' },
        { user_id: 2, full_name: 'Grace Hopper', email: 'grace@example.com' },
      ])
      .execute()
    await h.cutover.drain()
    await h.cutover.setPhase('users', 'compare', { actor: 'test' })
    await h.cutover.setPhase('users', 'ramp', { actor: 'test', readPercent: 100, compareSample: 0 })
    // Mark the new side of user 2, so that a read served by the new store shows it.
    await sql`update users set last_name = 'Hopper (new)' where id = 2`.execute(h.neu.db)
  })
  afterAll(async () => {
    await h?.close()
  })

  /** Holds the new store's row `id` locked, so the mirror cannot apply a change of it, until `release`. */
  async function lockNewRow(id: number): Promise<{ release(): Promise<void> }> {
    const client = new pg.Client({ connectionString: h.neu.url })
    await client.connect()
    await client.query('begin')
    await client.query('select 1 from users where id = $1 for update', [id])
    return {
      async release() {
        await client.query('commit')
        await client.end()
      },
    }
  }

  it('an update followed by a read of that key returns the new row while the mirror has not applied it', async () => {
    const lock = await lockNewRow(1)
    try {
      const before = freshFallbacks()
      await h.app.updateTable('users').set({ full_name: 'Ada King Lovelace' }).where('user_id', '=', 1).execute()
      const byKey = await asRequest(() => h.app.selectFrom('users').selectAll().where('user_id', '=', 1).executeTakeFirstOrThrow())
      expect(byKey).toEqual({ user_id: 1, full_name: 'Ada King Lovelace', email: 'ada@example.com' })
      const byKeys = await asRequest(() => h.app.selectFrom('users').select(['user_id', 'full_name']).where('user_id', 'in', [1, 2]).orderBy('user_id').execute())
      expect(byKeys).toEqual([
        { user_id: 1, full_name: 'Ada King Lovelace' },
        { user_id: 2, full_name: 'Grace Hopper' }, // from old: no '(new)'
      ])
      // Not by key: any change still on its way keeps the read on the old store.
      const byEmail = await asRequest(() => h.app.selectFrom('users').select('full_name').where('email', '=', 'ada@example.com').executeTakeFirstOrThrow())
      expect(byEmail).toEqual({ full_name: 'Ada King Lovelace' })
      expect(freshFallbacks()).toBe(before + 3)
      // A key with nothing pending is still served by the new store.
      const other = await asRequest(() => h.app.selectFrom('users').select('full_name').where('user_id', '=', 2).executeTakeFirstOrThrow())
      expect(other).toEqual({ full_name: 'Grace Hopper (new)' })
    } finally {
      await lock.release()
    }
    await h.cutover.drain()
    const before = freshFallbacks()
    const applied = await asRequest(() => h.app.selectFrom('users').select(['full_name']).where('user_id', '=', 1).executeTakeFirstOrThrow())
    expect(applied).toEqual({ full_name: 'Ada King Lovelace' })
    expect(freshFallbacks()).toBe(before) // once applied, the new store serves it
  })

  it('after a write it could not mirror (raw SQL), reads of the migration stay on the old store', async () => {
    const before = h.cutover.metrics.counter('read.fresh_fallback', { migration: 'users', reason: 'unmirrored_write' })
    await sql`update users set full_name = 'Grace Raw Hopper' where user_id = 2`.execute(h.app)
    await h.cutover.drain()
    const row = await asRequest(() => h.app.selectFrom('users').select('full_name').where('user_id', '=', 2).executeTakeFirstOrThrow())
    expect(row).toEqual({ full_name: 'Grace Raw Hopper' }) // the new store still says 'Grace Hopper (new)'
    expect(h.cutover.metrics.counter('read.fresh_fallback', { migration: 'users', reason: 'unmirrored_write' })).toBe(before + 1)
  })
})

describe('Kysely plugin: after cutover, an old-side write let through (permissive) is read back', () => {
  let h: Harness

  beforeAll(async () => {
    h = await createHarness(usersHarness('cutover_krywc', { staleSideWrites: 'permissive' }))
    await h.cutover.setPhase('users', 'shadow', { actor: 'test' })
    await h.app.insertInto('users').values({ user_id: 1, full_name: 'Ada Lovelace', email: 'ada@example.com' }).execute()
    await h.cutover.drain()
    for (const phase of ['compare', 'ramp', 'cutover'] as const) await h.cutover.setPhase('users', phase, { actor: 'test', readPercent: 100 })
  })
  afterAll(async () => {
    await h?.close()
  })

  it('a read of the key it changed is served by the old store until the mirror applies it', async () => {
    const client = new pg.Client({ connectionString: h.neu.url })
    await client.connect()
    try {
      await client.query('begin')
      await client.query('select 1 from users where id = 1 for update') // holds the old → new mirror back
      await h.app.updateTable('users').set({ full_name: 'Ada King Lovelace' }).where('user_id', '=', 1).execute()
      const row = await h.app.selectFrom('users').select('full_name').where('user_id', '=', 1).executeTakeFirstOrThrow()
      expect(row).toEqual({ full_name: 'Ada King Lovelace' })
    } finally {
      await client.query('commit')
      await client.end()
    }
  })
})
