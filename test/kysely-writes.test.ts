/**
 * Every write form through a Cutover-wrapped Kysely, inside and outside transactions, ends with the
 * old and the new store equal under the core comparator; rolled-back writes are never mirrored.
 */
import { copy, fieldMapper } from '@cutover/core'
import { Kysely, PostgresDialect, sql } from 'kysely'
import pg from 'pg'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { type RawWritePolicy, withCutover } from '../packages/kysely-plugin/src/index.js'
import { allRecords, createHarness, type Harness, storeDifferences, tableStore } from '../packages/kysely-plugin/test/harness.js'

const accounts = fieldMapper({
  old: z.object({ id: z.number(), name: z.string(), balance: z.number() }),
  // The new schema forbids what the old one allowed: negative balances are rejected by the mapper.
  new: z.object({ id: z.number(), name: z.string(), balance: z.number().nonnegative() }),
  fields: [copy('id'), copy('name'), copy('balance')],
})

describe('Kysely plugin: writes are mirrored once committed', () => {
  let h: Harness
  const labels = { migration: 'accounts', direction: 'old-to-new' }
  const enqueued = () => h.cutover.metrics.counter('mirror.enqueued', labels)
  const unmirrored = () => h.cutover.metrics.counter('write.unmirrored', { migration: 'accounts', target: 'accounts' })
  const settle = async () => {
    await h.cutover.drain()
    expect(await storeDifferences(h.cutover, 'accounts')).toEqual([])
  }
  const names = async () => (await allRecords(h.stores.new)).map((r) => `${r.id}:${r.name}:${r.balance}`)

  beforeAll(async () => {
    h = await createHarness({
      prefix: 'cutover_kwrites',
      oldDdl: [
        'create table accounts (id integer primary key, name text not null, balance integer not null default 0)',
        'create table incoming (id integer primary key, name text not null, balance integer not null)',
      ],
      newDdl: ['create table accounts (id integer primary key, name text not null, balance integer not null default 0)'],
      migrations: (old, neu) => [
        {
          name: 'accounts',
          old: tableStore(old, 'accounts', 'id'),
          new: tableStore(neu, 'accounts', 'id'),
          mapper: accounts,
          mirror: { recheckDelayMs: false },
        },
      ],
      oldTables: { accounts: { migration: 'accounts', side: 'old' } },
    })
    await h.cutover.setPhase('accounts', 'shadow', { actor: 'test' })
  })
  afterAll(async () => {
    await h?.close()
  })
  beforeEach(async () => {
    await h.cutover.drain()
    await sql`truncate accounts, incoming`.execute(h.old.db)
    await sql`truncate accounts`.execute(h.neu.db)
  })

  it('mirrors single-row and multi-row inserts; the caller gets its own result back', async () => {
    const single = await h.app.insertInto('accounts').values({ id: 1, name: 'a', balance: 10 }).executeTakeFirst()
    expect(single.numInsertedOrUpdatedRows).toBe(1n)
    const returned = await h.app
      .insertInto('accounts')
      .values([
        { id: 2, name: 'b', balance: 20 },
        { id: 3, name: 'c', balance: 30 },
      ])
      .returning(['name'])
      .execute()
    expect(returned).toEqual([{ name: 'b' }, { name: 'c' }])
    await settle()
    expect(await names()).toEqual(['1:a:10', '2:b:20', '3:c:30'])
  })

  it('mirrors insert … select and both kinds of on conflict', async () => {
    await h.old.db.insertInto('incoming').values([
      { id: 1, name: 'x', balance: 1 },
      { id: 2, name: 'y', balance: 2 },
    ]).execute()
    await h.app.insertInto('accounts').columns(['id', 'name', 'balance']).expression((eb) => eb.selectFrom('incoming').select(['id', 'name', 'balance'])).execute()
    await h.app
      .insertInto('accounts')
      .values([
        { id: 2, name: 'y2', balance: 22 },
        { id: 3, name: 'z', balance: 3 },
      ])
      .onConflict((oc) => oc.column('id').doUpdateSet((eb) => ({ name: eb.ref('excluded.name'), balance: eb.ref('excluded.balance') })))
      .execute()
    const before = enqueued()
    const nothing = await h.app.insertInto('accounts').values({ id: 1, name: 'ignored', balance: 0 }).onConflict((oc) => oc.column('id').doNothing()).returningAll().execute()
    expect(nothing).toEqual([])
    expect(enqueued()).toBe(before) // nothing changed, nothing to mirror
    await settle()
    expect(await names()).toEqual(['1:x:1', '2:y2:22', '3:z:3'])
  })

  it('mirrors updates: one row, many rows, and with FROM; results are the caller’s', async () => {
    await h.app.insertInto('accounts').values([1, 2, 3, 4].map((id) => ({ id, name: `n${id}`, balance: id }))).execute()
    await h.old.db.insertInto('incoming').values({ id: 4, name: 'from-incoming', balance: 400 }).execute()
    const one = await h.app.updateTable('accounts').set({ name: 'one' }).where('id', '=', 1).executeTakeFirst()
    expect(one.numUpdatedRows).toBe(1n)
    const many = await h.app.updateTable('accounts').set((eb) => ({ balance: eb('balance', '+', 100) })).where('id', 'in', [2, 3]).returning(['id', 'balance']).execute()
    expect(many.sort((a, b) => a.id - b.id)).toEqual([
      { id: 2, balance: 102 },
      { id: 3, balance: 103 },
    ])
    await h.app
      .updateTable('accounts as a')
      .from('incoming as i')
      .set((eb) => ({ name: eb.ref('i.name'), balance: eb.ref('i.balance') }))
      .whereRef('a.id', '=', 'i.id')
      .execute()
    await settle()
    expect(await names()).toEqual(['1:one:1', '2:n2:102', '3:n3:103', '4:from-incoming:400'])
  })

  it('mirrors deletes, including with USING', async () => {
    await h.app.insertInto('accounts').values([1, 2, 3, 4].map((id) => ({ id, name: `n${id}`, balance: id }))).execute()
    await h.old.db.insertInto('incoming').values({ id: 4, name: 'gone', balance: 0 }).execute()
    await settle()
    const deleted = await h.app.deleteFrom('accounts').where('id', '=', 1).executeTakeFirst()
    expect(deleted.numDeletedRows).toBe(1n)
    await h.app.deleteFrom('accounts as a').using('incoming as i').whereRef('a.id', '=', 'i.id').execute()
    await settle()
    expect(await names()).toEqual(['2:n2:2', '3:n3:3'])
  })

  it('mirrors MERGE (insert, update and delete branches)', async () => {
    await h.app.insertInto('accounts').values([1, 2, 3].map((id) => ({ id, name: `n${id}`, balance: id }))).execute()
    await h.old.db.insertInto('incoming').values([
      { id: 1, name: 'merged', balance: 11 },
      { id: 2, name: 'delete me', balance: -1 },
      { id: 5, name: 'inserted', balance: 5 },
    ]).execute()
    const result = await h.app
      .mergeInto('accounts as t')
      .using('incoming as s', 't.id', 's.id')
      .whenMatchedAnd('s.balance', '<', 0)
      .thenDelete()
      .whenMatched()
      .thenUpdateSet((eb: any) => ({ name: eb.ref('s.name'), balance: eb.ref('s.balance') }))
      .whenNotMatched()
      .thenInsertValues((eb: any) => ({ id: eb.ref('s.id'), name: eb.ref('s.name'), balance: eb.ref('s.balance') }))
      .executeTakeFirst()
    expect(result.numChangedRows).toBe(3n)
    await settle()
    expect(await names()).toEqual(['1:merged:11', '3:n3:3', '5:inserted:5'])
  })

  it('buffers writes in a transaction until COMMIT', async () => {
    const before = enqueued()
    await h.app.transaction().execute(async (trx) => {
      await trx.insertInto('accounts').values({ id: 1, name: 'in trx', balance: 1 }).execute()
      await trx.updateTable('accounts').set({ balance: 2 }).where('id', '=', 1).execute()
      expect(enqueued()).toBe(before) // not yet committed: nothing handed to the mirror
    })
    expect(enqueued()).toBe(before + 2)
    await settle()
    expect(await names()).toEqual(['1:in trx:2'])
  })

  it('drops the writes of a rolled-back transaction', async () => {
    await h.app.insertInto('accounts').values({ id: 1, name: 'kept', balance: 1 }).execute()
    await settle()
    const before = enqueued()
    await expect(
      h.app.transaction().execute(async (trx) => {
        await trx.insertInto('accounts').values({ id: 2, name: 'rolled back', balance: 2 }).execute()
        await trx.updateTable('accounts').set({ name: 'changed' }).where('id', '=', 1).execute()
        throw new Error('abort')
      }),
    ).rejects.toThrow('abort')
    expect(enqueued()).toBe(before)
    await settle()
    expect(await names()).toEqual(['1:kept:1'])
  })

  it('trims the writes after a savepoint that is rolled back to (controlled transactions)', async () => {
    const before = enqueued()
    const trx = await h.app.startTransaction().execute()
    await trx.insertInto('accounts').values({ id: 1, name: 'before savepoint', balance: 1 }).execute()
    const sp = await trx.savepoint('sp1').execute()
    await sp.insertInto('accounts').values({ id: 2, name: 'after savepoint', balance: 2 }).execute()
    await sp.updateTable('accounts').set({ name: 'changed after savepoint' }).where('id', '=', 1).execute()
    const back = await sp.rollbackToSavepoint('sp1').execute()
    const sp2 = await back.savepoint('sp2').execute()
    await sp2.insertInto('accounts').values({ id: 3, name: 'released', balance: 3 }).execute()
    const released = await sp2.releaseSavepoint('sp2').execute()
    await released.commit().execute()
    expect(enqueued()).toBe(before + 2) // keys 1 and 3; the writes rolled back to sp1 are gone
    await settle()
    expect(await names()).toEqual(['1:before savepoint:1', '3:released:3'])
  })

  it('follows hand-written BEGIN / SAVEPOINT / ROLLBACK TO / COMMIT on one connection', async () => {
    const before = enqueued()
    await h.app.connection().execute(async (conn) => {
      await sql`begin`.execute(conn)
      await conn.insertInto('accounts').values({ id: 1, name: 'raw trx', balance: 1 }).execute()
      await sql`savepoint s1`.execute(conn)
      await conn.insertInto('accounts').values({ id: 2, name: 'undone', balance: 2 }).execute()
      await sql`rollback to savepoint s1`.execute(conn)
      expect(enqueued()).toBe(before)
      await sql`commit`.execute(conn)
      await sql`begin`.execute(conn)
      await conn.insertInto('accounts').values({ id: 9, name: 'never', balance: 9 }).execute()
      await sql`rollback`.execute(conn)
    })
    expect(enqueued()).toBe(before + 1)
    await settle()
    expect(await names()).toEqual(['1:raw trx:1'])
  })

  it('reports raw SQL writes it cannot attribute, and mirrors those a policy attributes', async () => {
    const before = unmirrored()
    await sql`insert into accounts (id, name, balance) values (1, 'raw', 1)`.execute(h.app)
    expect(unmirrored()).toBe(before + 1)
    await h.app.with('moved', (db) => db.updateTable('accounts').set({ balance: 5 }).returning('id')).selectFrom('moved').selectAll().execute()
    expect(unmirrored()).toBe(before + 2)
    await h.cutover.drain()
    expect(await names()).toEqual([]) // really not mirrored: reconciliation's job
  })

  it('mirrors raw writes a policy attributes, and stays quiet about those it ignores', async () => {
    const withPolicy = (rawWrites: RawWritePolicy) =>
      new Kysely<any>({
        dialect: withCutover(new PostgresDialect({ pool: new pg.Pool({ connectionString: h.old.url, max: 2 }) }), {
          cutover: h.cutover,
          tables: { accounts: { migration: 'accounts', side: 'old', rawWrites } },
        }),
      })
    // The application knows its raw statement: `insert … values ($1, …)` writes the key in $1.
    const attributing = withPolicy((query) => (query.sql.startsWith('insert into accounts') ? [query.parameters[0] as number] : undefined))
    const ignoring = withPolicy('ignore')
    try {
      const before = unmirrored()
      await sql`insert into accounts (id, name, balance) values (${7}, 'attributed', 7)`.execute(attributing)
      await h.cutover.drain()
      await sql`update accounts set balance = 70 where id = 7`.execute(attributing) // not attributed: reported
      expect(unmirrored()).toBe(before + 1)
      await sql`insert into accounts (id, name, balance) values (8, 'ignored', 8)`.execute(ignoring)
      expect(unmirrored()).toBe(before + 1)
      await h.cutover.drain()
      expect(await names()).toEqual(['7:attributed:7']) // the unattributed update really was not mirrored
    } finally {
      await attributing.destroy()
      await ignoring.destroy()
    }
  })

  it('dead-letters a record the mapper rejects, with its key and field; the application write succeeds', async () => {
    await h.app.insertInto('accounts').values([
      { id: 1, name: 'fine', balance: 1 },
      { id: 2, name: 'overdrawn', balance: -5 },
    ]).execute()
    await h.cutover.drain()
    const letters = (await h.cutover.deadLetters!.open('accounts')).filter((letter) => letter.reasonCode === 'MAPPER_REJECTED')
    expect(letters.map((l) => ({ key: l.key, fields: l.fields, op: l.op }))).toEqual([{ key: '2', fields: ['balance'], op: 'upsert' }])
    expect(await storeDifferences(h.cutover, 'accounts').catch((error: Error) => error.message)).toMatch(/rejected record "2"/)
    expect(await names()).toEqual(['1:fine:1'])
    await h.cutover.deadLetters!.resolve(letters.map((l) => l.id), 'test')
  })
})
