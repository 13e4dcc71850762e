/**
 * The users example end to end through a Cutover-wrapped Kysely: the full name split into first
 * and last name on the new side; v1-shaped reads compared, routed per key, and served from the new
 * store; writes mirrored forward, then back after cutover.
 */
import { rampReadSide, withCutoverContext, WriteRejectedError } from '@cutover/core'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { createHarness, type Harness, storeDifferences } from '../packages/kysely-plugin/test/harness.js'
import { usersHarness } from '../packages/kysely-plugin/test/users-fixture.js'

const PEOPLE = [
  { user_id: 1, full_name: 'Ada King Lovelace', email: 'ada@example.com' },
  { user_id: 2, full_name: 'Grace Hopper', email: 'grace@example.com' },
  { user_id: 3, full_name: 'Plato', email: 'plato@example.com' },
  ...Array.from({ length: 37 }, (_, i) => ({ user_id: 10 + i, full_name: `Person ${10 + i}`, email: `p${10 + i}@example.com` })),
]

describe('Kysely plugin: the users example through every phase', () => {
  let h: Harness
  const metric = (name: string, extra: Record<string, string> = {}) => h.cutover.metrics.counter(name, { migration: 'users', ...extra })

  beforeAll(async () => {
    // legacy_full_name is a snapshot the v1 shape cannot keep up once v2 code writes (after cutover).
    h = await createHarness(usersHarness('cutover_kusers', { compare: { ignore: ['legacy_full_name'] } }))
  })
  afterAll(async () => {
    await h?.close()
  })

  it('shadow: writes through the old schema arrive split in the new one', async () => {
    await h.cutover.setPhase('users', 'shadow', { actor: 'test' })
    await h.app.insertInto('users').values(PEOPLE).execute()
    await h.app.updateTable('users').set({ full_name: 'Grace Brewster Hopper' }).where('user_id', '=', 2).execute()
    await h.app.deleteFrom('users').where('user_id', '=', 46).execute()
    await h.cutover.drain()
    expect(await storeDifferences(h.cutover, 'users')).toEqual([])
    const grace = await h.neu.db.selectFrom('users').selectAll().where('id', '=', 2).executeTakeFirstOrThrow()
    expect(grace).toMatchObject({ first_name: 'Grace', last_name: 'Brewster Hopper', legacy_full_name: 'Grace Brewster Hopper' })
    expect(await h.neu.db.selectFrom('users').select('id').where('id', '=', 46).execute()).toEqual([])
  })

  it('compare: sampled reads are compared off the request path and mismatches named by key', async () => {
    await h.cutover.setPhase('users', 'compare', { actor: 'test', compareSample: 1 })
    const equalBefore = metric('compare.equal')
    // Translatable (email is copied): the translated query runs on the new store too.
    const byEmail = await h.app.selectFrom('users').selectAll().where('email', '=', 'ada@example.com').execute()
    expect(byEmail).toEqual([PEOPLE[0]])
    // Not translatable (full_name is split): compared by the keys it returned.
    const byName = await h.app.selectFrom('users').select(['user_id', 'email']).where('full_name', 'like', 'Person 1%').execute()
    expect(byName).toHaveLength(10)
    await vi.waitFor(() => expect(metric('compare.equal')).toBe(equalBefore + 2))

    // The new store drifts: the next comparison says so, and the caller still gets the old rows.
    await sql`update users set last_name = 'Byron' where id = 1`.execute(h.neu.db)
    const mismatchBefore = metric('compare.mismatch')
    const warn = vi.spyOn(h.cutover.logger, 'warn')
    const again = await h.app.selectFrom('users').select(['user_id', 'full_name']).where('user_id', '=', 1).execute()
    expect(again).toEqual([{ user_id: 1, full_name: 'Ada King Lovelace' }])
    await vi.waitFor(() => expect(metric('compare.mismatch')).toBe(mismatchBefore + 1))
    const report = warn.mock.calls.find(([message]) => message === 'read mismatch between old and new store')?.[1] as { different: { key: string; fields: { path: string }[] }[] }
    expect(report.different).toEqual([{ key: '1', fields: expect.arrayContaining([expect.objectContaining({ path: 'last_name' })]) }])
    warn.mockRestore()

    // A row only the new store has is found by the translated query.
    await sql`insert into users (id, first_name, last_name, email) values (999, 'Ghost', null, 'ada@example.com')`.execute(h.neu.db)
    const missingBefore = metric('compare.mismatch')
    await h.app.selectFrom('users').selectAll().where('email', '=', 'ada@example.com').execute()
    await vi.waitFor(() => expect(metric('compare.mismatch')).toBe(missingBefore + 1))
    await sql`delete from users where id = 999`.execute(h.neu.db)

    // Key lookups are compared by the keys they ask for, so a key only the new store has is caught.
    await sql`insert into users (id, first_name, last_name, email) values (998, 'Only', 'New', 'only@example.com')`.execute(h.neu.db)
    const lookupMismatches = metric('compare.mismatch')
    const lookupsEqual = metric('compare.equal')
    const found = await Promise.all([998, 2, 3, 10].map((id) => h.app.selectFrom('users').selectAll().where('user_id', '=', id).execute()))
    expect(found.map((rows) => rows.length)).toEqual([0, 1, 1, 1])
    await vi.waitFor(() => expect(metric('compare.mismatch') + metric('compare.equal')).toBe(lookupMismatches + lookupsEqual + 4))
    expect(metric('compare.mismatch')).toBe(lookupMismatches + 1)
    await sql`delete from users where id = 998`.execute(h.neu.db)
    await sql`update users set last_name = 'King Lovelace' where id = 1`.execute(h.neu.db)
  })

  it('ramp: each routing key reads one side consistently, v1-shaped, with fallback and untranslatable reads on old', async () => {
    await h.cutover.setPhase('users', 'ramp', { actor: 'test', readPercent: 50, compareSample: 0 })
    // Mark every new-side name so the side that served a read is visible in its result.
    await sql`update users set last_name = last_name || ' (new)' where last_name is not null`.execute(h.neu.db)
    const read = (routingKey: number) =>
      withCutoverContext({ routingKey }, () => h.app.selectFrom('users').select(['user_id', 'full_name', 'email']).where('user_id', '=', 2).executeTakeFirstOrThrow())
    const sides = { old: 0, new: 0 }
    for (let routingKey = 1; routingKey <= 40; routingKey++) {
      const expected = rampReadSide(50, { routingKey })
      sides[expected]++
      for (let i = 0; i < 3; i++) {
        const row = await read(routingKey)
        expect(row).toEqual({
          user_id: 2,
          full_name: expected === 'new' ? 'Grace Brewster Hopper (new)' : 'Grace Brewster Hopper',
          email: 'grace@example.com',
        })
      }
    }
    expect(sides.old).toBeGreaterThan(5)
    expect(sides.new).toBeGreaterThan(5)

    const newKey = Array.from({ length: 100 }, (_, i) => i + 1).find((k) => rampReadSide(50, { routingKey: k }) === 'new') as number
    // Whole rows come back in the old shape, ordered and limited as asked.
    const page = await withCutoverContext({ routingKey: newKey }, () => h.app.selectFrom('users').selectAll().orderBy('user_id', 'desc').limit(2).execute())
    expect(page).toEqual([
      { user_id: 45, full_name: 'Person 45 (new)', email: 'p45@example.com' },
      { user_id: 44, full_name: 'Person 44 (new)', email: 'p44@example.com' },
    ])
    // Untranslatable (filters on the split column): stays on old, counted.
    const untranslatable = metric('read.untranslatable')
    const byName = await withCutoverContext({ routingKey: newKey }, () => h.app.selectFrom('users').select('user_id').where('full_name', '=', 'Plato').execute())
    expect(byName).toEqual([{ user_id: 3 }])
    expect(metric('read.untranslatable')).toBe(untranslatable + 1)
    // New store failing: the read falls back to old.
    await sql`alter table users rename to users_away`.execute(h.neu.db)
    const fallback = metric('read.fallback')
    expect(await withCutoverContext({ routingKey: newKey }, () => read(newKey))).toEqual({ user_id: 2, full_name: 'Grace Brewster Hopper', email: 'grace@example.com' })
    expect(metric('read.fallback')).toBe(fallback + 1)
    await sql`alter table users_away rename to users`.execute(h.neu.db)
    await sql`update users set last_name = replace(last_name, ' (new)', '')`.execute(h.neu.db)
    expect(await storeDifferences(h.cutover, 'users')).toEqual([])

    // Sampled both ways: a read served by the new store is compared with the old one too.
    await h.cutover.setPhase('users', 'ramp', { actor: 'test', compareSample: 1 })
    const equal = metric('compare.equal')
    const served = metric('read.ok', { side: 'new' })
    await withCutoverContext({ routingKey: newKey }, () => h.app.selectFrom('users').selectAll().where('email', '=', 'plato@example.com').execute())
    expect(metric('read.ok', { side: 'new' })).toBe(served + 1)
    await vi.waitFor(() => expect(metric('compare.equal')).toBe(equal + 1))
    await h.cutover.setPhase('users', 'ramp', { actor: 'test', compareSample: 0 })
  })

  it('cutover: reads come from new, old-table writes are refused, new-table writes are mirrored back', async () => {
    await h.cutover.setPhase('users', 'cutover', { actor: 'test' })
    await sql`update users set email = 'ada@new.example.com' where id = 1`.execute(h.neu.db) // visible only if read from new
    expect(await h.app.selectFrom('users').selectAll().where('user_id', '=', 1).executeTakeFirst()).toEqual({
      user_id: 1,
      full_name: 'Ada King Lovelace',
      email: 'ada@new.example.com',
    })
    await expect(h.app.updateTable('users').set({ email: 'x@example.com' }).where('user_id', '=', 2).execute()).rejects.toBeInstanceOf(WriteRejectedError)

    await h.appNew.insertInto('users').values({ id: 100, first_name: 'Alan', last_name: 'Turing', email: 'alan@example.com', legacy_full_name: null }).execute()
    await h.appNew.updateTable('users').set({ last_name: 'Mathison Turing' }).where('id', '=', 100).execute()
    await h.appNew.updateTable('users').set({ email: 'ada@example.com' }).where('id', '=', 1).execute()
    await h.appNew.transaction().execute(async (trx) => {
      await trx.deleteFrom('users').where('id', '=', 3).execute()
    })
    await h.cutover.drain()
    expect(await h.old.db.selectFrom('users').selectAll().where('user_id', 'in', [1, 3, 100]).orderBy('user_id').execute()).toEqual([
      { user_id: 1, full_name: 'Ada King Lovelace', email: 'ada@example.com' },
      { user_id: 100, full_name: 'Alan Mathison Turing', email: 'alan@example.com' },
    ])
    expect(await storeDifferences(h.cutover, 'users')).toEqual([])
  })

  it('complete: inside the revert window the old table still gets the reverse mirror; after release it is neither read, written nor mirrored to', async () => {
    await h.cutover.setPhase('users', 'complete', { actor: 'test' })
    await h.appNew.updateTable('users').set({ email: 'alan@window.example.com' }).where('id', '=', 100).execute()
    await h.cutover.drain()
    expect(await h.old.db.selectFrom('users').select('email').where('user_id', '=', 100).executeTakeFirst()).toEqual({ email: 'alan@window.example.com' })

    await h.cutover.releaseSafetyNet('users', { actor: 'test', reason: 'window not needed' })
    const mirroredBack = h.cutover.metrics.counter('mirror.enqueued', { migration: 'users', direction: 'new-to-old' })
    await h.appNew.updateTable('users').set({ email: 'alan@new.example.com' }).where('id', '=', 100).execute()
    await h.cutover.drain()
    expect(h.cutover.metrics.counter('mirror.enqueued', { migration: 'users', direction: 'new-to-old' })).toBe(mirroredBack)
    expect(await h.app.selectFrom('users').select('email').where('user_id', '=', 100).executeTakeFirst()).toEqual({ email: 'alan@new.example.com' })
    expect(await h.old.db.selectFrom('users').select('email').where('user_id', '=', 100).executeTakeFirst()).toEqual({ email: 'alan@window.example.com' })
    await expect(h.app.deleteFrom('users').where('user_id', '=', 100).execute()).rejects.toBeInstanceOf(WriteRejectedError)
  })
})

describe('Kysely plugin: the guard rolls a ramp back by itself', () => {
  let h: Harness
  beforeAll(async () => {
    h = await createHarness(usersHarness('cutover_kguard', { guards: { maxErrorRate: 0.2, minSamples: 10 } }))
    await h.app.insertInto('users').values(PEOPLE.slice(0, 3)).execute()
    for (const phase of ['shadow', 'compare', 'ramp'] as const) await h.cutover.setPhase('users', phase, { actor: 'test', readPercent: 100, compareSample: 0 })
    await h.app.updateTable('users').set({ email: sql`email` }).execute() // mirror the seed rows
    await h.cutover.drain()
  })
  afterAll(async () => {
    await h?.close()
  })

  it('serves from new until new-store reads fail, then rolls back and serves old', async () => {
    const first = await withCutoverContext({ routingKey: 'u1' }, () => h.app.selectFrom('users').selectAll().where('user_id', '=', 1).execute())
    expect(first).toEqual([PEOPLE[0]])
    expect(h.cutover.metrics.counter('read.ok', { migration: 'users', side: 'new' })).toBeGreaterThan(0)

    await sql`alter table users rename to users_broken`.execute(h.neu.db)
    for (let i = 0; i < 20; i++) {
      const rows = await withCutoverContext({ routingKey: `u${i}` }, () => h.app.selectFrom('users').selectAll().where('user_id', '=', 2).execute())
      expect(rows).toEqual([PEOPLE[1]]) // the caller never sees the failure
    }
    expect(h.cutover.migration('users').phase).toBe('rollback')
    await vi.waitFor(async () => {
      const state = await h.old.db.selectFrom('cutover.migration_state').select(['phase', 'updated_by']).where('migration', '=', 'users').executeTakeFirst()
      expect(state).toEqual({ phase: 'rollback', updated_by: 'cutover:guard' })
    })
    // Rolled back: reads no longer touch the new store.
    const okBefore = h.cutover.metrics.counter('read.error', { migration: 'users', side: 'new' })
    await h.app.selectFrom('users').selectAll().where('user_id', '=', 3).execute()
    expect(h.cutover.metrics.counter('read.error', { migration: 'users', side: 'new' })).toBe(okBefore)

    // …and the mirror old → new goes on, so a retry needs no new backfill.
    await sql`alter table users_broken rename to users`.execute(h.neu.db)
    await h.app.updateTable('users').set({ full_name: 'Grace M. Hopper' }).where('user_id', '=', 2).execute()
    await h.cutover.drain()
    expect(await h.neu.db.selectFrom('users').select(['first_name', 'last_name']).where('id', '=', 2).executeTakeFirst()).toEqual({ first_name: 'Grace', last_name: 'M. Hopper' })
    expect(await storeDifferences(h.cutover, 'users')).toEqual([])
  })
})
