/**
 * The behaviour every `Store` must share, run against each implementation on its real service.
 * The jobs (mirror, backfill, verify, reconcile) rely on exactly these semantics, so a store that
 * passes here can serve as either side of any migration.
 */
import { Kysely, PostgresDialect, sql } from 'kysely'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Store } from '@cutover/core'
import { KyselyTableStore } from '@cutover/kysely-plugin'
import { MongooseModelStore } from '@cutover/mongoose-plugin'
import { Schema } from 'mongoose'
import { MemoryStore } from '../packages/core/test/memory-store.js'
import { createTestDatabase, createTestMongo, type TestDatabase, type TestMongo } from './setup/services.js'

interface Subject {
  readonly store: Store
  /** Resets the store to empty. */
  clear(): Promise<void>
}

function storeContract(name: string, open: () => Promise<Subject>, close: () => Promise<void>) {
  describe(`Store contract: ${name}`, () => {
    let subject: Subject
    beforeAll(async () => {
      subject = await open()
    })
    afterAll(close)

    const fresh = async () => {
      await subject.clear()
      return subject.store
    }

    it('gets only the keys that exist, by key text, for numeric or text keys', async () => {
      const store = await fresh()
      await store.upsert([{ id: 1, name: 'a', v: 1 }, { id: 2, name: 'b', v: 1 }], { kind: 'overwrite' })
      const found = await store.get([1, '2', 3])
      expect([...found.keys()].sort()).toEqual(['1', '2'])
      expect(found.get('1')).toMatchObject({ id: 1, name: 'a' })
      expect((await store.get([])).size).toBe(0)
    })

    it('scans in key order, after a key, up to a limit, each record exactly once', async () => {
      const store = await fresh()
      const ids = [5, 3, 11, 1, 8, 2, 13, 21, 34, 55, 89, 144]
      await store.upsert(ids.map((id) => ({ id, name: `n${id}`, v: 1 })), { kind: 'overwrite' })
      const seen: number[] = []
      let after: number | undefined
      for (;;) {
        const page = await store.scan({ ...(after === undefined ? {} : { after }), limit: 5 })
        if (page.length === 0) break
        expect(page.length).toBeLessThanOrEqual(5)
        seen.push(...page.map((r) => Number(r.id)))
        after = Number(page.at(-1)!.id)
      }
      expect(seen).toEqual([...ids].sort((a, b) => a - b))
    })

    it('overwrite inserts and replaces', async () => {
      const store = await fresh()
      expect(await store.upsert([{ id: 1, name: 'a', v: 1 }], { kind: 'overwrite' })).toEqual({ written: 1, skipped: 0 })
      expect(await store.upsert([{ id: 1, name: 'b', v: 1 }, { id: 2, name: 'c', v: 1 }], { kind: 'overwrite' })).toEqual({ written: 2, skipped: 0 })
      expect((await store.get([1])).get('1')).toMatchObject({ name: 'b' })
    })

    it('insert-if-absent never touches an existing record', async () => {
      const store = await fresh()
      await store.upsert([{ id: 1, name: 'mirrored', v: 9 }], { kind: 'overwrite' })
      const result = await store.upsert([{ id: 1, name: 'backfilled', v: 1 }, { id: 2, name: 'backfilled', v: 1 }], { kind: 'insert-if-absent' })
      expect(result).toEqual({ written: 1, skipped: 1 })
      expect((await store.get([1])).get('1')).toMatchObject({ name: 'mirrored', v: 9 })
      expect((await store.get([2])).get('2')).toMatchObject({ name: 'backfilled' })
    })

    it('version-guard replaces only older versions and inserts absent records', async () => {
      const store = await fresh()
      await store.upsert([{ id: 1, name: 'v5', v: 5 }, { id: 2, name: 'v5', v: 5 }], { kind: 'overwrite' })
      const result = await store.upsert(
        [{ id: 1, name: 'v4', v: 4 }, { id: 2, name: 'v6', v: 6 }, { id: 3, name: 'v1', v: 1 }],
        { kind: 'version-guard', field: 'v' },
      )
      expect(result).toEqual({ written: 2, skipped: 1 })
      const rows = await store.get([1, 2, 3])
      expect(rows.get('1')).toMatchObject({ name: 'v5', v: 5 })
      expect(rows.get('2')).toMatchObject({ name: 'v6', v: 6 })
      expect(rows.get('3')).toMatchObject({ name: 'v1', v: 1 })
      // An equal version is not newer: the stored record stays.
      expect(await store.upsert([{ id: 2, name: 'same', v: 6 }], { kind: 'version-guard', field: 'v' })).toEqual({ written: 0, skipped: 1 })
    })

    it('deletes, counting the records that existed, idempotently', async () => {
      const store = await fresh()
      await store.upsert([{ id: 1, name: 'a', v: 1 }, { id: 2, name: 'b', v: 1 }], { kind: 'overwrite' })
      expect(await store.delete([1, 3])).toBe(1)
      expect(await store.delete([1])).toBe(0)
      expect([...(await store.get([1, 2])).keys()]).toEqual(['2'])
    })
  })
}

storeContract(
  'MemoryStore (reference)',
  async () => {
    const store = new MemoryStore('memory', 'id')
    return { store, clear: async () => store.rows.clear() }
  },
  async () => {},
)

let database: TestDatabase
storeContract(
  'KyselyTableStore (PostgreSQL)',
  async () => {
    database = await createTestDatabase('cutover_contract')
    await sql`create table things (id integer primary key, name text not null, v integer not null)`.execute(database.db)
    return {
      store: new KyselyTableStore(database.db, 'things', 'id'),
      clear: async () => void (await sql`truncate things`.execute(database.db)),
    }
  },
  async () => database?.drop(),
)

let mongo: TestMongo
storeContract(
  'MongooseModelStore (MongoDB wire protocol)',
  async () => {
    mongo = await createTestMongo('cutover_contract')
    const Thing = mongo.connection.model('Thing', new Schema({ id: { type: Number, required: true, unique: true }, name: String, v: Number }))
    await Thing.init()
    return {
      store: new MongooseModelStore(Thing, { keyField: 'id' }),
      clear: async () => void (await Thing.collection.deleteMany({})),
    }
  },
  async () => mongo?.drop(),
)

describe('KyselyTableStore: large writes', () => {
  let db: TestDatabase
  beforeAll(async () => {
    db = await createTestDatabase('cutover_large_upsert')
    await sql`create table wide (id integer primary key, a text, b text, c text, d integer check (d >= 0))`.execute(db.db)
  })
  afterAll(async () => db?.drop())

  it('writes more rows than one statement can bind parameters for (5 columns × 20,000 rows)', async () => {
    const store = new KyselyTableStore(db.db, 'wide', 'id')
    const rows = Array.from({ length: 20_000 }, (_, i) => ({ id: i, a: `a${i}`, b: `b${i}`, c: `c${i}`, d: i }))
    expect(await store.upsert(rows, { kind: 'insert-if-absent' })).toEqual({ written: 20_000, skipped: 0 })
    expect(await store.upsert(rows, { kind: 'insert-if-absent' })).toEqual({ written: 0, skipped: 20_000 })
    const { rows: [count] } = await sql<{ n: string }>`select count(*) as n from wide`.execute(db.db)
    expect(Number(count!.n)).toBe(20_000)
  })

  it('keeps a write split over several statements all-or-nothing', async () => {
    const store = new KyselyTableStore(db.db, 'wide', 'id')
    await sql`truncate wide`.execute(db.db)
    // The last row breaks the check constraint; it lands in the last of several statements.
    const rows = Array.from({ length: 20_000 }, (_, i) => ({ id: i, a: 'a', b: 'b', c: 'c', d: i === 19_999 ? -1 : i }))
    await expect(store.upsert(rows, { kind: 'overwrite' })).rejects.toThrow(/wide_d_check/)
    const { rows: [count] } = await sql<{ n: string }>`select count(*) as n from wide`.execute(db.db)
    expect(Number(count!.n)).toBe(0)
  })
})

describe('KyselyTableStore: column types on both write paths', () => {
  let db: TestDatabase
  let logged: Kysely<any>
  const statements: string[] = []
  beforeAll(async () => {
    db = await createTestDatabase('cutover_upsert_types')
    logged = new Kysely<any>({
      dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: db.url, max: 2 }) }),
      log: (event) => void statements.push(event.query.sql),
    })
    db.track(logged)
    await sql`create type mood as enum ('calm', 'busy')`.execute(db.db)
    const columns = sql.raw(`id bigint primary key, amount numeric(12, 2), label varchar(10), flag boolean, at timestamptz,
      day date, doc jsonb, list jsonb, bytes bytea, uid uuid, feeling mood, made text not null default 'by default'`)
    await sql`create table typed (${columns})`.execute(db.db)
    await sql`create table typed_tags (${columns}, tags text[])`.execute(db.db)
  })
  afterAll(async () => db?.drop())

  const record = (id: number) => ({
    id: BigInt(id),
    amount: '1234.50',
    label: `l${id}`,
    flag: id % 2 === 0,
    at: new Date(Date.UTC(2024, 4, 1, 9, 30, id % 60, 123)),
    day: '2024-05-01',
    doc: { nested: { id, quote: 'a "quoted", {braced} \\ value' } },
    list: [1, 'two', { three: 3 }],
    bytes: Buffer.from([0, id % 256, 255]),
    uid: '1b4e28ba-2fa1-11d2-883f-0016541e4dd3',
    feeling: id % 2 === 0 ? 'calm' : 'busy',
    made: 'explicitly',
  })

  async function roundTrip(table: string, extra: (id: number) => object) {
    const store = new KyselyTableStore(logged, table, 'id')
    const written = [1, 2, 3].map((id) => ({ ...record(id), ...extra(id) }))
    statements.length = 0
    expect(await store.upsert(written, { kind: 'overwrite' })).toEqual({ written: 3, skipped: 0 })
    const read = await store.get([1, 2, 3])
    for (const expected of written) {
      const row = read.get(String(expected.id)) as Record<string, unknown>
      expect({ ...row, id: BigInt(row.id as string), amount: row.amount, day: (row.day as Date).toISOString().slice(0, 10) }).toEqual({
        ...expected,
        amount: '1234.50',
        day: new Date(2024, 4, 1).toISOString().slice(0, 10),
      })
    }
    return statements.join('\n')
  }

  it('carries every scalar and json type through unnest', async () => {
    expect(await roundTrip('typed', () => ({}))).toMatch(/unnest/)
  })

  it('takes the VALUES path for array columns, with the same results', async () => {
    const issued = await roundTrip('typed_tags', (id) => ({ tags: [`t${id}`, 'x,y "z"'] }))
    expect(issued).not.toMatch(/unnest/)
  })

  it('gives a column a record lacks its default (VALUES path), and mixes nothing up', async () => {
    const store = new KyselyTableStore(logged, 'typed', 'id')
    statements.length = 0
    const { made: _made, ...withoutMade } = record(10)
    await store.upsert([withoutMade, record(11)], { kind: 'insert-if-absent' })
    expect(statements.join('\n')).not.toMatch(/unnest/)
    const read = await store.get([10, 11])
    expect(read.get('10')?.made).toBe('by default')
    expect(read.get('11')?.made).toBe('explicitly')
  })

  it('rereads the catalog when the table gains a column', async () => {
    const store = new KyselyTableStore(logged, 'typed', 'id')
    await store.upsert([record(20)], { kind: 'overwrite' })
    await sql`alter table typed add column note text`.execute(db.db)
    statements.length = 0
    await store.upsert([{ ...record(21), note: 'new column' }, { ...record(22), note: null }], { kind: 'overwrite' })
    expect(statements.join('\n')).toMatch(/unnest/)
    expect((await store.get([21])).get('21')?.note).toBe('new column')
  })
})
