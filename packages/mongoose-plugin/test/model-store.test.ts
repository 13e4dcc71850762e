import { compositeKey, StoreError } from '@cutover/core'
import mongoose, { Schema } from 'mongoose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTestMongo, type TestMongo } from '../../../test/setup/services.js'
import { MongooseModelStore } from '../src/index.js'

describe('MongooseModelStore', () => {
  let mongo: TestMongo
  let Thing: mongoose.Model<any>
  let Counter: mongoose.Model<any>
  let store: MongooseModelStore

  beforeAll(async () => {
    mongo = await createTestMongo('cutover_mstore')
    Thing = mongo.connection.model('Thing', new Schema({ name: String, version: Number, at: Date }))
    Counter = mongo.connection.model('Counter', new Schema({ _id: Number, n: Number }))
    store = new MongooseModelStore(Thing)
  })
  afterAll(async () => {
    await mongo?.drop()
  })

  it('upserts, gets by Store keys (ObjectId as hex) and deletes', async () => {
    const a = new mongoose.Types.ObjectId().toHexString()
    const b = new mongoose.Types.ObjectId().toHexString()
    const at = '2024-05-01T09:30:00.000Z'
    expect(await store.upsert([{ _id: a, name: 'a', version: 1, at }, { _id: b, name: 'b', version: 1 }], { kind: 'overwrite' })).toEqual({ written: 2, skipped: 0 })
    const got = await store.get([a, b, new mongoose.Types.ObjectId().toHexString()])
    expect([...got.keys()].sort()).toEqual([a, b].sort())
    expect(got.get(a)).toMatchObject({ _id: a, name: 'a', version: 1 })
    expect((got.get(a)?.at as Date).toISOString()).toBe(at) // cast through the schema: stored as a Date
    const raw = await Thing.collection.findOne({ _id: new mongoose.Types.ObjectId(a) })
    expect(raw?._id).toBeInstanceOf(mongoose.Types.ObjectId)

    expect(await store.upsert([{ _id: a, name: 'a2', version: 2 }], { kind: 'overwrite' })).toEqual({ written: 1, skipped: 0 })
    expect((await store.get([a])).get(a)).toMatchObject({ name: 'a2' })
    expect((await store.get([a])).get(a)?.at).toBeUndefined() // overwrite replaces the whole document

    expect(await store.delete([a, new mongoose.Types.ObjectId().toHexString()])).toBe(1)
    expect((await store.get([a, b])).size).toBe(1)
  })

  it('insert-if-absent never overwrites, and reports written/skipped', async () => {
    const a = new mongoose.Types.ObjectId().toHexString()
    const b = new mongoose.Types.ObjectId().toHexString()
    await store.upsert([{ _id: a, name: 'mirrored', version: 5 }], { kind: 'overwrite' })
    const result = await store.upsert([{ _id: a, name: 'backfill', version: 1 }, { _id: b, name: 'backfill', version: 1 }], { kind: 'insert-if-absent' })
    expect(result).toEqual({ written: 1, skipped: 1 })
    const got = await store.get([a, b])
    expect(got.get(a)?.name).toBe('mirrored')
    expect(got.get(b)?.name).toBe('backfill')
  })

  it('version-guard replaces only older records', async () => {
    const a = new mongoose.Types.ObjectId().toHexString()
    const b = new mongoose.Types.ObjectId().toHexString()
    const c = new mongoose.Types.ObjectId().toHexString()
    await store.upsert([{ _id: a, name: 'v5', version: 5 }, { _id: b, name: 'v5', version: 5 }], { kind: 'overwrite' })
    const result = await store.upsert(
      [{ _id: a, name: 'v4', version: 4 }, { _id: b, name: 'v6', version: 6 }, { _id: c, name: 'v1', version: 1 }],
      { kind: 'version-guard', field: 'version' },
    )
    expect(result).toEqual({ written: 2, skipped: 1 })
    const got = await store.get([a, b, c])
    expect(got.get(a)?.name).toBe('v5')
    expect(got.get(b)?.name).toBe('v6')
    expect(got.get(c)?.name).toBe('v1')
  })

  it('scans in key order from a cursor, with numeric keys staying numbers', async () => {
    const numbers = new MongooseModelStore(Counter)
    await numbers.upsert(Array.from({ length: 25 }, (_, i) => ({ _id: 25 - i, n: i })), { kind: 'overwrite' })
    const seen: number[] = []
    let after: number | undefined
    for (;;) {
      const page = await numbers.scan({ ...(after === undefined ? {} : { after }), limit: 10 })
      if (page.length === 0) break
      seen.push(...page.map((row) => row._id as number))
      after = page.at(-1)?._id as number
    }
    expect(seen).toEqual(Array.from({ length: 25 }, (_, i) => i + 1))
    expect((await numbers.get(['7'])).get('7')).toMatchObject({ _id: 7, n: 18 })
  })

  it('keys a sub-schema _id as a composite key in the sub-schema path order, parts cast by their types', async () => {
    const Owner = mongo.connection.model('Owner', new Schema({ _id: new Schema({ region: String, seq: Number, ref: Schema.Types.ObjectId }, { _id: false }), name: String }))
    const owners = new MongooseModelStore(Owner)
    const ref = new mongoose.Types.ObjectId()
    await owners.upsert([{ _id: compositeKey('eu', '2', ref.toHexString()), name: 'b' }, { _id: compositeKey('eu', 1, ref.toHexString()), name: 'a' }], { kind: 'overwrite' })
    const raw = await Owner.collection.findOne({ name: 'a' })
    expect(Object.keys(raw?._id ?? {})).toEqual(['region', 'seq', 'ref'])
    expect(raw?._id).toEqual({ region: 'eu', seq: 1, ref })
    expect((await owners.scan({ limit: 10 })).map((row) => row._id)).toEqual([['eu', 1, ref.toHexString()], ['eu', 2, ref.toHexString()]])
    expect((await owners.scan({ after: compositeKey('eu', 1, ref.toHexString()), limit: 10 })).map((row) => row.name)).toEqual(['b'])
    expect([...(await owners.get([compositeKey('eu', 2, ref.toHexString())])).values()].map((row) => row.name)).toEqual(['b'])
  })

  it('wraps driver and cast failures in StoreError naming the store and key', async () => {
    const error = await store.upsert([{ _id: new mongoose.Types.ObjectId().toHexString(), at: 'not a date' }], { kind: 'overwrite' }).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(StoreError)
    expect((error as StoreError).code).toBe('STORE_FAILED')
    expect((error as StoreError).key).toMatch(/^[0-9a-f]{24}$/)
    expect((error as StoreError).message).toContain(store.name)
    const noKey = await store.upsert([{ name: 'x' }], { kind: 'overwrite' }).catch((e: unknown) => e)
    expect(noKey).toBeInstanceOf(StoreError)
  })
})
