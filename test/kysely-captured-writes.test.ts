/**
 * With the change log capturing a table (`capture: 'change-log'`), the triggers mirror every write
 * whatever its keys, so the wrapper leaves the application's statements exactly as written in every
 * phase: Kysely's log shows the caller's statement, with no `returning … as "__cutover_key"` added.
 * What the wrapper would have used the keys for — read-your-writes in `ramp` — is kept by sending
 * the migration's reads to the old store for a short while after such a write.
 */
import { ChangeLogWorker, copy, DeadLetterTable, fieldMapper, type MigrationDefinition, type Phase, withCutoverContext } from '@cutover/core'
import { withCutover } from '@cutover/kysely-plugin'
import { Kysely, type LogEvent, PostgresDialect, sql } from 'kysely'
import pg from 'pg'
import Cursor from 'pg-cursor'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { createHarness, type Harness, storeDifferences, tableStore } from '../packages/kysely-plugin/test/harness.js'

const PERSON_DDL = 'create table person (id serial primary key, first_name text, gender text not null)'
const personMapper = fieldMapper({
  old: z.object({ id: z.number().int(), first_name: z.string().nullable(), gender: z.string() }),
  new: z.object({ id: z.number().int(), first_name: z.string().nullable(), gender: z.string() }),
  fields: [copy('id'), copy('first_name'), copy('gender')],
})

/** `person` migrated between two databases with a `copy` mapper, and `settings` (capture, policies) on top. */
function personHarness(prefix: string, settings: Pick<MigrationDefinition<any, any>, 'capture' | 'staleSideWrites'>): Promise<Harness> {
  return createHarness({
    prefix,
    oldDdl: [PERSON_DDL],
    newDdl: [PERSON_DDL],
    migrations: (old, neu) => [{ name: 'person', old: tableStore(old, 'person', 'id'), new: tableStore(neu, 'person', 'id'), mapper: personMapper, ...settings }],
    oldTables: { person: { migration: 'person', side: 'old' } },
  })
}

describe('writes on a table the change log captures run as written', () => {
  let h: Harness
  let app: Kysely<any>
  const log: string[] = []

  beforeAll(async () => {
    h = await personHarness('cutover_kcapw', { capture: { mode: 'change-log', install: true, workers: 1, pollIntervalMs: 20 } })
    app = new Kysely<any>({
      dialect: withCutover(new PostgresDialect({ pool: new pg.Pool({ connectionString: h.old.url, max: 4 }) }), {
        cutover: h.cutover,
        tables: { person: { migration: 'person', side: 'old' } },
      }),
      log: (event: LogEvent) => void log.push(event.query.sql),
    })
    h.old.track(app)
  })

  afterAll(async () => {
    await h?.close()
  })

  for (const phase of ['shadow', 'compare', 'ramp'] as const satisfies readonly Phase[]) {
    it(`in ${phase}, Kysely's log shows an insert, update and delete of unnamed keys as the caller wrote them, and the change is mirrored`, async () => {
      await moveTo(h, phase)
      log.length = 0
      await app.transaction().execute(async (trx) => {
        await trx.insertInto('person').values({ first_name: 'Foo', gender: 'male' }).execute()
      })
      await app.updateTable('person').set({ gender: 'other' }).where('first_name', '=', 'Foo').execute()
      await app.deleteFrom('person').where('gender', '=', 'nobody').execute()
      expect(log).toEqual([
        'begin',
        'insert into "person" ("first_name", "gender") values ($1, $2)',
        'commit',
        'update "person" set "gender" = $1 where "first_name" = $2',
        'delete from "person" where "gender" = $1',
      ])
      await h.cutover.drain()
      expect(await storeDifferences(h.cutover, 'person')).toEqual([])
    })
  }

  it('in ramp, a read right after a write of unknown keys is served by the old store, which has it', async () => {
    await moveTo(h, 'ramp')
    const fallbacks = () => h.cutover.metrics.counter('read.fresh_fallback', { migration: 'person', reason: 'unkeyed_write' })
    const before = fallbacks()
    const { id } = await app.insertInto('person').values({ first_name: 'Bar', gender: 'female' }).returning('id').executeTakeFirstOrThrow()
    const read = await withCutoverContext({ routingKey: 'user-1' }, () => app.selectFrom('person').selectAll().where('id', '=', id).executeTakeFirst())
    expect(read).toEqual({ id, first_name: 'Bar', gender: 'female' })
    expect(fallbacks()).toBe(before + 1)
  })

  it('in ramp, reads go back to the new store as soon as the log has applied a write of unknown keys', async () => {
    await moveTo(h, 'ramp')
    const runtime = h.cutover.migration('person')
    const fallbacks = () => h.cutover.metrics.counter('read.fresh_fallback', { migration: 'person', reason: 'unkeyed_write' })
    await app.updateTable('person').set({ gender: 'applied' }).where('first_name', '=', 'Bar').execute()
    await h.cutover.drain()
    // Two polls of the log (every 200 ms): the first reads where it stands, the second sees that
    // nothing at or below that is left. A fixed window (it was 5 s) would keep reads off longer.
    const read = () => withCutoverContext({ routingKey: 'user-1' }, () => app.selectFrom('person').select('gender').where('first_name', '=', 'Bar').execute())
    expect(await servedByNewWithin(3_000, fallbacks, read)).toEqual([{ gender: 'applied' }])
    expect(runtime.unkeyedWritePending('old')).toBe(false)
  })

  it('in ramp, streamed, raw SQL, WITH and MERGE writes are mirrored by the log as written, not reported as unmirrored', async () => {
    await moveTo(h, 'ramp')
    const pool = new pg.Pool({ connectionString: h.old.url, max: 2 })
    const streaming = new Kysely<any>({ dialect: withCutover(new PostgresDialect({ pool, cursor: Cursor }), { cutover: h.cutover, tables: { person: { migration: 'person', side: 'old' } } }) })
    h.old.track(streaming)
    const unmirrored = () => h.cutover.metrics.counter('write.unmirrored', { migration: 'person', target: 'person' })
    const fallbacks = (reason: string) => h.cutover.metrics.counter('read.fresh_fallback', { migration: 'person', reason })
    const before = { unmirrored: unmirrored(), unmirroredReads: fallbacks('unmirrored_write'), unkeyedReads: fallbacks('unkeyed_write') }
    const streamed = []
    for await (const row of streaming.insertInto('person').values({ first_name: 'Streamed', gender: 'male' }).returning(['id']).stream()) streamed.push(row)
    await sql`update person set gender = 'raw' where first_name = 'Streamed'`.execute(app)
    log.length = 0
    await app
      .with('moved', (db) => db.updateTable('person').set({ gender: 'cte' }).where('first_name', '=', 'Nobody').returning('id'))
      .selectFrom('moved')
      .selectAll()
      .execute()
    await app
      .mergeInto('person as p')
      .using('person as s', 'p.id', 's.id')
      .whenMatched()
      .thenUpdateSet({ first_name: sql`s.first_name` })
      .execute()
    // Exactly the caller's statements: no RETURNING added, no follow-up query listing a MERGE's keys.
    expect(log).toEqual([
      'with "moved" as (update "person" set "gender" = $1 where "first_name" = $2 returning "id") select * from "moved"',
      'merge into "person" as "p" using "person" as "s" on "p"."id" = "s"."id" when matched then update set "first_name" = s.first_name',
    ])
    // The new store may not have them yet: the read is served by the old one, as after any write
    // of unknown keys (for seconds), not shut off from the new store for a minute.
    const read = await withCutoverContext({ routingKey: 'user-1' }, () => app.selectFrom('person').select('gender').where('first_name', '=', 'Streamed').execute())
    expect(read).toEqual([{ gender: 'raw' }])
    expect(unmirrored()).toBe(before.unmirrored)
    expect(fallbacks('unmirrored_write')).toBe(before.unmirroredReads)
    expect(fallbacks('unkeyed_write')).toBe(before.unkeyedReads + 1)
    await h.cutover.drain()
    expect(await storeDifferences(h.cutover, 'person')).toEqual([])
  })
})

/** Repeats `read` until it is served by the new store (no fallback counted), for at most `ms`; its rows. */
async function servedByNewWithin<T>(ms: number, fallbacks: () => number, read: () => Promise<T>): Promise<T> {
  const deadline = performance.now() + ms
  for (;;) {
    const before = fallbacks()
    const rows = await read()
    if (fallbacks() === before) return rows
    if (performance.now() > deadline) throw new Error(`reads still fell back to the old store after ${ms} ms`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

const ORDER: readonly Phase[] = ['off', 'shadow', 'compare', 'ramp']

async function moveTo(h: Harness, target: Phase): Promise<void> {
  let at = ORDER.indexOf(h.cutover.migration('person').phase)
  while (ORDER[at] !== target) {
    at += 1
    await h.cutover.setPhase('person', ORDER[at] as Phase, { actor: 'test', ...(ORDER[at] === 'ramp' ? { readPercent: 100 } : {}), compareSample: 1 })
  }
}

describe('a write of unknown keys whose log entries no worker has applied yet', () => {
  let h: Harness

  beforeAll(async () => {
    // The workers run elsewhere (`cutover capture run`), and are behind.
    h = await personHarness('cutover_kcaplag', { capture: { mode: 'change-log', install: true, workers: 0 } })
    await moveTo(h, 'ramp')
  })

  afterAll(async () => {
    await h?.close()
  })

  it('keeps reads on the old store for as long as the log holds it, however long that is, and no longer', { timeout: 30_000 }, async () => {
    const fallbacks = () => h.cutover.metrics.counter('read.fresh_fallback', { migration: 'person', reason: 'unkeyed_write' })
    const read = () => withCutoverContext({ routingKey: 'user-1' }, () => h.app.selectFrom('person').select('first_name').where('gender', '=', 'lagging').execute())
    await h.app.insertInto('person').values({ first_name: 'Late', gender: 'lagging' }).execute()
    // Longer than any fixed window would guess: the new store still lacks the row.
    await new Promise((resolve) => setTimeout(resolve, 5_500))
    const before = fallbacks()
    expect(await read()).toEqual([{ first_name: 'Late' }])
    expect(fallbacks()).toBe(before + 1)

    const { migration } = h.cutover.migration('person')
    await new ChangeLogWorker({ migration, direction: 'old-to-new', deadLetters: new DeadLetterTable(h.old.db), phase: () => 'ramp' }).drain()
    expect(await servedByNewWithin(3_000, fallbacks, read)).toEqual([{ first_name: 'Late' }])
  })
})

describe('in cutover, a write the application still makes on the captured old table (permissive) is read back', () => {
  let h: Harness

  beforeAll(async () => {
    h = await personHarness('cutover_kcapstale', {
      staleSideWrites: 'permissive',
      // A worker slower than the application's next query: the read below comes first.
      capture: { mode: 'change-log', install: true, workers: 1, pollIntervalMs: 1_000 },
    })
    await h.app.insertInto('person').values({ first_name: 'Jennifer', gender: 'female' }).execute() // id 1
    await moveTo(h, 'ramp')
    await h.cutover.setPhase('person', 'cutover', { actor: 'test' })
    await h.cutover.drain()
  })

  afterAll(async () => {
    await h?.close()
  })

  it('a read by key right after an update naming that key sees the update, not the new store of before', async () => {
    await h.app.updateTable('person').set({ first_name: 'Jenny' }).where('id', '=', 1).execute()
    const read = await withCutoverContext({ routingKey: 'user-1' }, () => h.app.selectFrom('person').select('first_name').where('id', '=', 1).executeTakeFirst())
    expect(read).toEqual({ first_name: 'Jenny' })
  })

  it('a read right after an insert of an unnamed key sees the row', async () => {
    await h.app.insertInto('person').values({ first_name: 'Arnold', gender: 'male' }).execute()
    const read = await withCutoverContext({ routingKey: 'user-1' }, () => h.app.selectFrom('person').select('first_name').orderBy('id').execute())
    expect(read.map((row) => row.first_name)).toEqual(['Jenny', 'Arnold'])
  })

  it('once the log is applied, both stores agree', async () => {
    await h.cutover.drain()
    expect(await storeDifferences(h.cutover, 'person')).toEqual([])
  })
})
