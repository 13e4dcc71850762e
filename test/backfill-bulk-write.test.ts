/**
 * The backfill's bulk write into PostgreSQL (`KyselyTableStore`): rows as one JSON parameter where
 * JSON carries them exactly, insert-if-absent as an anti-join insert with `on conflict` behind it
 * for a racing writer, and `upsertReturning`, whose stored rows stand in for the batch's read-back,
 * so a value the column changes on the way in is still reported.
 */
import { backfill, copy, defineMigration, ensureSchema, fieldMapper } from '@cutover/core'
import { KyselyTableStore } from '@cutover/kysely-plugin'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { createTestDatabase, type TestDatabase } from './setup/services.js'

let db: TestDatabase
beforeAll(async () => {
  db = await createTestDatabase('cutover_bulk_write')
  await sql`create table kinds (id integer primary key, label text, amount numeric(8,2), ratio double precision, flag boolean, doc jsonb, at timestamptz, raw bytea, big bigint)`.execute(db.db)
})
afterAll(async () => {
  await db?.drop()
})

const insertIfAbsent = { kind: 'insert-if-absent' } as const

describe('KyselyTableStore bulk writes', () => {
  it('writes strings, numbers, booleans, nulls and json structures as they read back, and Dates, bytes and bigints too', async () => {
    await sql`truncate kinds`.execute(db.db)
    const store = new KyselyTableStore(db.db, 'kinds', 'id')
    const plain = [
      { id: 1, label: 'a "quoted" \\ line\nbreak', amount: 12.5, ratio: 0.1, flag: true, doc: { nested: [1, 'two', { three: null }] }, at: null, raw: null, big: null },
      { id: 2, label: 'ünïcödé 🎉', amount: '99.99', ratio: -1e-7, flag: false, doc: [1, 2], at: null, raw: null, big: 7 },
      { id: 3, label: null, amount: null, ratio: null, flag: null, doc: null, at: null, raw: null, big: null },
    ]
    const typed = [{ id: 4, label: 'typed', amount: 1, ratio: 1, flag: true, doc: {}, at: new Date('2024-02-29T12:34:56.789Z'), raw: Buffer.from([0, 1, 255]), big: 9007199254740993n }]
    expect(await store.upsert([...plain, ...typed], insertIfAbsent)).toEqual({ written: 4, skipped: 0 })
    const back = await store.get([1, 2, 3, 4])
    expect(back.get('1')).toEqual({ ...plain[0], amount: '12.50' })
    expect(back.get('2')).toEqual({ ...plain[1], big: '7' })
    expect(back.get('3')).toEqual(plain[2])
    expect(back.get('4')).toMatchObject({ at: typed[0]!.at, raw: Buffer.from([0, 1, 255]), big: '9007199254740993' })
  })

  it('upsertReturning answers with the rows as stored, only those it wrote', async () => {
    await sql`truncate kinds`.execute(db.db)
    const store = new KyselyTableStore(db.db, 'kinds', 'id')
    await store.upsert([{ id: 1, label: 'there already' }], insertIfAbsent)
    const result = await store.upsertReturning([{ id: 1, label: 'not written', amount: 2 }, { id: 2, label: 'new', amount: 1.005 }], insertIfAbsent)
    expect({ written: result.written, skipped: result.skipped }).toEqual({ written: 1, skipped: 1 })
    expect([...result.stored.keys()]).toEqual(['2'])
    // numeric(8,2) rounded it: the stored row says so.
    expect(result.stored.get('2')).toMatchObject({ id: 2, label: 'new', amount: '1.01' })
    const overwritten = await store.upsertReturning([{ id: 1, label: 'replaced' }], { kind: 'overwrite' })
    expect(overwritten.stored.get('1')).toMatchObject({ label: 'replaced' })
  })

  it('insert-if-absent with a writer racing it: the key that writer inserted first is skipped, the rest written', async () => {
    await sql`truncate kinds`.execute(db.db)
    const store = new KyselyTableStore(db.db, 'kinds', 'id')
    const rows = Array.from({ length: 100 }, (_, i) => ({ id: i + 1, label: `backfill ${i + 1}` }))
    await db.db.connection().execute(async (racer) => {
      // The racer's insert of key 50 is not committed yet: the anti-join does not see it, and the
      // bulk insert waits on the key's index entry until it commits, then fails with 23505.
      await sql`begin`.execute(racer)
      await sql`insert into kinds (id, label) values (50, 'mirror')`.execute(racer)
      const writing = store.upsert(rows, insertIfAbsent)
      await new Promise((resolve) => setTimeout(resolve, 300))
      await sql`commit`.execute(racer)
      expect(await writing).toEqual({ written: 99, skipped: 1 })
    })
    const back = await store.get([49, 50, 51])
    expect(['49', '50', '51'].map((key) => back.get(key)?.label)).toEqual(['backfill 49', 'mirror', 'backfill 51'])
    expect((await store.get(rows.map((r) => r.id))).size).toBe(100)
  })
})

describe('backfill through the returning write', () => {
  it('reports a record the new column stores differently (char(n) pads it), with the read-back taken from the write', async () => {
    const control = await createTestDatabase('cutover_bulk_write_control')
    try {
      await ensureSchema(control.db)
      await sql`create table codes_old (id integer primary key, code text not null)`.execute(db.db)
      await sql`create table codes_new (id integer primary key, code char(6) not null)`.execute(db.db)
      await sql`insert into codes_old select i, case when i = 7 then 'short' else lpad(i::text, 6, 'x') end from generate_series(1, 2000) i`.execute(db.db)
      const mapper = fieldMapper({ old: z.object({ id: z.number().int(), code: z.string() }), new: z.object({ id: z.number().int(), code: z.string() }), fields: [copy('id'), copy('code')] })
      const migration = defineMigration({ name: 'codes', old: new KyselyTableStore(db.db, 'codes_old', 'id'), new: new KyselyTableStore(db.db, 'codes_new', 'id'), mapper })
      const summary = await backfill({ migration, control: control.db, batch: { initial: 500 }, verify: { retries: 1, delayMs: 10 } })
      expect(summary.counts).toMatchObject({ read: 2000, written: 2000, quarantined: 0, mismatched: 1 })
      expect(summary.mismatches).toEqual([{ key: '7', kind: 'DIFFERENT', fields: ['code'] }])
    } finally {
      await control.drop()
    }
  })

  it('a copy already there is read back by key: equal is equal, different is reported', async () => {
    const control = await createTestDatabase('cutover_bulk_write_control')
    try {
      await ensureSchema(control.db)
      await sql`create table names_old (id integer primary key, name text not null)`.execute(db.db)
      await sql`create table names_new (id integer primary key, name text not null)`.execute(db.db)
      await sql`insert into names_old select i, 'n' || i from generate_series(1, 1000) i`.execute(db.db)
      await sql`insert into names_new values (10, 'n10'), (20, 'stale')`.execute(db.db)
      const mapper = fieldMapper({ old: z.object({ id: z.number().int(), name: z.string() }), new: z.object({ id: z.number().int(), name: z.string() }), fields: [copy('id'), copy('name')] })
      const migration = defineMigration({ name: 'names', old: new KyselyTableStore(db.db, 'names_old', 'id'), new: new KyselyTableStore(db.db, 'names_new', 'id'), mapper })
      const summary = await backfill({ migration, control: control.db, verify: { retries: 1, delayMs: 10 } })
      expect(summary.counts).toMatchObject({ read: 1000, written: 998, skipped: 2, mismatched: 1 })
      expect(summary.mismatches).toEqual([{ key: '20', kind: 'DIFFERENT', fields: ['name'] }])
    } finally {
      await control.drop()
    }
  })
})
