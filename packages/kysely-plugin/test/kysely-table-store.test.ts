import { StoreError } from '@cutover/core'
import { sql } from 'kysely'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { createTestDatabase, type TestDatabase } from '../../../test/setup/services.js'
import { KyselyTableStore } from '../src/index.js'

describe('KyselyTableStore on PostgreSQL', () => {
  let pg: TestDatabase

  beforeAll(async () => {
    pg = await createTestDatabase('cutover_kstore')
    await sql`create schema app`.execute(pg.db)
    await sql`create table app.items (id integer primary key, name text, version integer not null default 0, tags text[], meta jsonb)`.execute(pg.db)
    await sql`create table codes (code text primary key, label text)`.execute(pg.db)
    await sql`create table big (id bigint primary key, n integer)`.execute(pg.db)
  })
  afterAll(async () => {
    await pg?.drop()
  })
  beforeEach(async () => {
    await sql`truncate app.items, codes, big`.execute(pg.db)
  })

  const items = () => new KyselyTableStore(pg.db, 'app.items', 'id')

  it('names itself after the schema-qualified table', () => {
    expect(items().name).toBe('postgres:app.items')
    expect(new KyselyTableStore(pg.db, 'codes', 'code').name).toBe('postgres:public.codes')
    expect(items().keyField).toBe('id')
  })

  it('upserts in overwrite mode, then gets by keys (missing keys absent)', async () => {
    const store = items()
    const first = await store.upsert(
      [
        { id: 1, name: 'one', version: 1, tags: ['a', 'b'], meta: { deep: [1, { x: 2 }] } },
        { id: 2, name: 'two', version: 1, tags: [], meta: null },
      ],
      { kind: 'overwrite' },
    )
    expect(first).toEqual({ written: 2, skipped: 0 })
    const second = await store.upsert([{ id: 1, name: 'uno', version: 0, tags: null, meta: [{ a: 1 }] }], { kind: 'overwrite' })
    expect(second).toEqual({ written: 1, skipped: 0 })
    const got = await store.get([1, '2', 3])
    expect([...got.keys()].sort()).toEqual(['1', '2'])
    expect(got.get('1')).toEqual({ id: 1, name: 'uno', version: 0, tags: null, meta: [{ a: 1 }] })
    expect(got.get('2')).toEqual({ id: 2, name: 'two', version: 1, tags: [], meta: null })
  })

  it('insert-if-absent leaves existing rows alone and counts them as skipped', async () => {
    const store = items()
    await store.upsert([{ id: 1, name: 'mirrored', version: 5 }], { kind: 'overwrite' })
    const result = await store.upsert(
      [
        { id: 1, name: 'backfill', version: 1 },
        { id: 2, name: 'backfill', version: 1 },
      ],
      { kind: 'insert-if-absent' },
    )
    expect(result).toEqual({ written: 1, skipped: 1 })
    const got = await store.get([1, 2])
    expect(got.get('1')?.name).toBe('mirrored')
    expect(got.get('2')?.name).toBe('backfill')
  })

  it('version-guard replaces only older rows', async () => {
    const store = items()
    await store.upsert(
      [
        { id: 1, name: 'v5', version: 5 },
        { id: 2, name: 'v5', version: 5 },
        { id: 3, name: 'v5', version: 5 },
      ],
      { kind: 'overwrite' },
    )
    const result = await store.upsert(
      [
        { id: 1, name: 'v4', version: 4 },
        { id: 2, name: 'v5 again', version: 5 },
        { id: 3, name: 'v6', version: 6 },
        { id: 4, name: 'new', version: 1 },
      ],
      { kind: 'version-guard', field: 'version' },
    )
    expect(result).toEqual({ written: 2, skipped: 2 })
    const got = await store.get([1, 2, 3, 4])
    expect([1, 2, 3, 4].map((id) => got.get(String(id))?.name)).toEqual(['v5', 'v5', 'v6', 'new'])
  })

  it('takes the last record of a key repeated in one batch', async () => {
    const store = items()
    const result = await store.upsert(
      [
        { id: 1, name: 'first', version: 1 },
        { id: 1, name: 'last', version: 2 },
      ],
      { kind: 'overwrite' },
    )
    expect(result).toEqual({ written: 1, skipped: 1 })
    expect((await store.get([1])).get('1')?.name).toBe('last')
  })

  it('scans in key order with a keyset cursor', async () => {
    const store = items()
    await store.upsert(
      [5, 3, 9, 1, 7].map((id) => ({ id, name: `n${id}`, version: 0 })),
      { kind: 'overwrite' },
    )
    const page1 = await store.scan({ limit: 2 })
    expect(page1.map((r) => r.id)).toEqual([1, 3])
    const page2 = await store.scan({ after: 3, limit: 2 })
    expect(page2.map((r) => r.id)).toEqual([5, 7])
    const page3 = await store.scan({ after: 7, limit: 2 })
    expect(page3.map((r) => r.id)).toEqual([9])
    expect(await store.scan({ after: 9, limit: 2 })).toEqual([])
  })

  it('deletes by keys and returns how many existed', async () => {
    const store = items()
    await store.upsert([1, 2, 3].map((id) => ({ id, name: 'x', version: 0 })), { kind: 'overwrite' })
    expect(await store.delete([1, 3, 42])).toBe(2)
    expect([...(await store.get([1, 2, 3])).keys()]).toEqual(['2'])
    expect(await store.delete([])).toBe(0)
  })

  it('handles text and bigint keys', async () => {
    const codes = new KyselyTableStore(pg.db, 'codes', 'code')
    await codes.upsert([{ code: 'b', label: 'B' }, { code: 'a', label: 'A' }], { kind: 'overwrite' })
    expect((await codes.scan({ limit: 10 })).map((r) => r.code)).toEqual(['a', 'b'])
    expect((await codes.get(['a'])).get('a')).toEqual({ code: 'a', label: 'A' })

    const big = new KyselyTableStore(pg.db, 'big', 'id')
    const huge = 9_007_199_254_740_993n
    await big.upsert([{ id: huge, n: 1 }], { kind: 'overwrite' })
    const got = await big.get([huge])
    expect(got.get(huge.toString())).toEqual({ id: huge.toString(), n: 1 })
    expect(await big.delete([huge])).toBe(1)
  })

  it('reads and writes only the configured columns, through the row transforms', async () => {
    const store = new KyselyTableStore<{ id: number; label: string }>(pg.db, 'app.items', 'id', {
      columns: ['id', 'name'],
      fromRow: (row) => ({ id: row.id as number, label: String(row.name) }),
      toRow: (record) => ({ id: record.id, name: record.label }),
    })
    await store.upsert([{ id: 1, label: 'L' }], { kind: 'overwrite' })
    expect((await store.get([1])).get('1')).toEqual({ id: 1, label: 'L' })
    const raw = await pg.db.selectFrom('app.items').selectAll().execute()
    expect(raw).toEqual([{ id: 1, name: 'L', version: 0, tags: null, meta: null }])
  })

  it('wraps driver errors in StoreError naming the store and the operation', async () => {
    const missing = new KyselyTableStore(pg.db, 'app.nope', 'id')
    const error = await missing.get([1]).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(StoreError)
    expect(error).toMatchObject({ code: 'STORE_FAILED', store: 'postgres:app.nope', operation: 'get' })
    expect((error as Error).message).toMatch(/does not exist/)
    await expect(missing.upsert([{ id: 1 }], { kind: 'overwrite' })).rejects.toMatchObject({ operation: 'upsert' })
    await expect(missing.delete([1])).rejects.toMatchObject({ operation: 'delete' })
    await expect(missing.scan({ limit: 1 })).rejects.toMatchObject({ operation: 'scan' })
    await expect(items().upsert([{ name: 'no key' }], { kind: 'overwrite' })).rejects.toBeInstanceOf(StoreError)
  })

  it('rejects a malformed table name or a column list without the key at construction', () => {
    expect(() => new KyselyTableStore(pg.db, 'a.b.c', 'id')).toThrow(/schema\.name/)
    expect(() => new KyselyTableStore(pg.db, 'items', 'id', { columns: ['name'] })).toThrow(/key column/)
  })
})
