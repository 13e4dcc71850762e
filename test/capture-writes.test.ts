/**
 * Change-log capture (`capture: 'change-log'`): every committed change of the old table reaches the
 * new one, including the writes interception cannot see or attribute — `.stream()` inserts, writes
 * inside WITH, MERGE on a non-key ON, raw SQL, cascades, trigger-made changes, another client's
 * writes — and a TRUNCATE is reported for a resync. Real PostgreSQL throughout.
 */
import { captureStatus, copy, fieldMapper, installCapture, removeCapture } from '@cutover/core'
import { withCutover } from '@cutover/kysely-plugin'
import { Kysely, PostgresDialect, sql } from 'kysely'
import pg from 'pg'
import Cursor from 'pg-cursor'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { createHarness, type Harness, storeDifferences, tableStore } from '../packages/kysely-plugin/test/harness.js'

const accountsMapper = fieldMapper({
  old: z.object({ id: z.number(), name: z.string(), balance: z.number(), owner: z.number().nullable() }),
  new: z.object({ id: z.number(), name: z.string(), balance: z.number(), owner: z.number().nullable() }),
  fields: [copy('id'), copy('name'), copy('balance'), copy('owner')],
})

describe('change-log capture mirrors every committed change', () => {
  let h: Harness
  const settle = async () => {
    await h.cutover.drain()
    expect(await storeDifferences(h.cutover, 'accounts')).toEqual([])
  }
  const pending = async () => (await captureStatus(h.cutover.migration('accounts').migration, ['old']))[0]?.pending

  beforeAll(async () => {
    h = await createHarness({
      prefix: 'cutover_capw',
      oldDdl: [
        'create table owners (id integer primary key, name text not null)',
        'create table accounts (id integer primary key, name text not null, balance integer not null default 0, owner integer references owners (id) on delete cascade on update cascade)',
        'create table incoming (id integer primary key, name text not null, balance integer not null)',
        'create table audit_trail (id serial primary key, account integer not null)',
        // A trigger of the application's own that writes the migrated table.
        `create function credit_on_audit() returns trigger language plpgsql as $$
           begin update accounts set balance = balance + 1 where id = new.account; return null; end $$`,
        'create trigger credit_on_audit after insert on audit_trail for each row execute function credit_on_audit()',
      ],
      newDdl: ['create table accounts (id integer primary key, name text not null, balance integer not null default 0, owner integer)'],
      migrations: (old, neu) => [
        {
          name: 'accounts',
          old: tableStore(old, 'accounts', 'id'),
          new: tableStore(neu, 'accounts', 'id'),
          mapper: accountsMapper,
          capture: { mode: 'change-log', install: true, workers: 1, pollIntervalMs: 20 },
        },
      ],
      oldTables: { accounts: { migration: 'accounts', side: 'old' } },
    })
    await h.cutover.setPhase('accounts', 'shadow', { actor: 'test' })
    await sql`insert into owners values (1, 'ada'), (2, 'bob')`.execute(h.old.db)
  })

  afterAll(async () => {
    await h?.close()
  })

  it('mirrors plain inserts, updates and deletes without queueing them in memory', async () => {
    await h.app.insertInto('accounts').values([{ id: 1, name: 'a', balance: 1, owner: 1 }, { id: 2, name: 'b', balance: 2, owner: 2 }]).execute()
    await h.app.updateTable('accounts').set({ balance: 10 }).where('id', '=', 1).execute()
    await h.app.insertInto('accounts').values({ id: 3, name: 'c', balance: 3 }).execute()
    await h.app.deleteFrom('accounts').where('id', '=', 3).execute()
    // The in-memory queue lingers 50 ms before applying: had the writes been queued, they would be there.
    expect(h.cutover.migration('accounts').queue('old-to-new').depth).toBe(0)
    await settle()
    expect(await pending()).toBe(0)
  })

  it('mirrors an insert … returning read through .stream()', async () => {
    const pool = new pg.Pool({ connectionString: h.old.url, max: 2 })
    const streaming = new Kysely<any>({ dialect: withCutover(new PostgresDialect({ pool, cursor: Cursor }), { cutover: h.cutover, tables: { accounts: { migration: 'accounts', side: 'old' } } }) })
    h.old.track(streaming)
    const streamed = []
    for await (const row of streaming.insertInto('accounts').values({ id: 10, name: 'streamed', balance: 5 }).returning(['id']).stream()) streamed.push(row)
    expect(streamed).toHaveLength(1)
    await settle()
  })

  it('mirrors writes inside WITH', async () => {
    await sql`with moved as (update accounts set balance = balance * 2 where id in (1, 2) returning id)
              insert into accounts (id, name, balance) select id + 100, 'copy', 0 from moved`.execute(h.app)
    await settle()
  })

  it('mirrors a MERGE whose ON clause is not a key equality', async () => {
    await sql`insert into incoming values (1, 'a', 77), (50, 'new-by-name', 9)`.execute(h.old.db)
    await sql`merge into accounts a using incoming i on a.name = i.name
              when matched then update set balance = i.balance
              when not matched then insert (id, name, balance) values (i.id, i.name, i.balance)`.execute(h.app)
    await settle()
  })

  it('mirrors raw sql writes through the application Kysely', async () => {
    await sql`update accounts set name = upper(name) where balance > 0`.execute(h.app)
    await sql.raw(`delete from accounts where name = 'COPY' and id = 101`).execute(h.app)
    await settle()
  })

  it('mirrors rows changed by ON UPDATE CASCADE and ON DELETE CASCADE', async () => {
    await sql`update owners set id = 20 where id = 2`.execute(h.old.db)
    await settle()
    await sql`delete from owners where id = 1`.execute(h.old.db)
    await settle()
  })

  it('mirrors changes made by the application’s own triggers', async () => {
    await sql`insert into accounts (id, name, balance) values (60, 'credited', 0)`.execute(h.old.db)
    await sql`insert into audit_trail (account) values (60), (60)`.execute(h.old.db)
    await settle()
    const row = await h.stores.new.get([60])
    expect(row.get('60')?.balance).toBe(2)
  })

  it('mirrors a write made by another client (a plain pg connection, as psql would)', async () => {
    const client = new pg.Client({ connectionString: h.old.url })
    await client.connect()
    try {
      await client.query('begin')
      await client.query(`insert into accounts (id, name, balance) values (70, 'psql', 1)`)
      await client.query(`update accounts set balance = 42 where id = 70`)
      await client.query('commit')
      await client.query('begin')
      await client.query(`insert into accounts (id, name, balance) values (71, 'rolled back', 1)`)
      await client.query('rollback')
    } finally {
      await client.end()
    }
    await settle()
    expect((await h.stores.new.get([71])).size).toBe(0)
  })

  it('reports a TRUNCATE as an event needing a resync, and keeps capturing after it', async () => {
    await sql`truncate accounts`.execute(h.old.db)
    await h.cutover.drain()
    expect(h.cutover.metrics.counter('capture.truncated', { migration: 'accounts', direction: 'old-to-new' })).toBe(1)
    const [status] = await captureStatus(h.cutover.migration('accounts').migration, ['old'])
    expect(status?.resyncsPending).toBe(1)
    await h.app.insertInto('accounts').values({ id: 80, name: 'after truncate', balance: 1 }).execute()
    await h.cutover.drain()
    expect((await h.stores.new.get([80])).size).toBe(1)
  })

  it('install and remove are idempotent, and status tells what is installed', async () => {
    const migration = h.cutover.migration('accounts').migration
    await installCapture(migration, ['old'])
    await installCapture(migration, ['old'])
    expect((await captureStatus(migration, ['old']))[0]).toMatchObject({ installed: true, triggers: 3 })
    await removeCapture(migration, ['old'])
    await removeCapture(migration, ['old'])
    expect((await captureStatus(migration, ['old']))[0]).toMatchObject({ installed: false, triggers: 0, pending: 0 })
    await installCapture(migration, ['old'])
  })
})
