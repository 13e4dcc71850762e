/**
 * A compound `_id` (`_id: { tenant: String, n: Number }`) end to end, MongoDB (Mongoose, through
 * the plugin) → PostgreSQL with a composite primary key (tenant, n): the key crosses the Store
 * boundary as the composite key `[tenant, n]` (the sub-document's paths in schema order), so
 * mirroring, key lookups, compared and routed reads, and backfill all meet one key on both sides.
 */
import {
  backfill,
  compositeKey,
  createCutover,
  type Cutover,
  defineMapper,
  defineMigration,
  ensureSchema,
  keyString,
  type KeyValue,
  type Migration,
  type Row,
  silentLogger,
  storeRecordKey,
  withCutoverContext,
} from '@cutover/core'
import { KyselyTableStore } from '@cutover/kysely-plugin'
import { cutoverPlugin, MongooseModelStore } from '@cutover/mongoose-plugin'
import { type Kysely, sql } from 'kysely'
import mongoose, { Schema } from 'mongoose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { readAll } from '../packages/mongoose-plugin/test/harness.js'
import { createTestDatabase, createTestMongo, type TestDatabase, type TestMongo } from './setup/services.js'

const oldShape = z.object({ _id: z.tuple([z.string(), z.number()]), title: z.string(), __v: z.number().optional() })
const newShape = z.object({ tenant: z.string(), n: z.number(), title: z.string() })
const mapper = defineMapper({
  old: oldShape,
  new: newShape,
  forward: ({ _id: [tenant, n], title }) => ({ tenant, n, title }),
  backward: ({ tenant, n, title }) => ({ _id: [tenant, n] as [string, number], title }),
})

/** The stores hold the same records under the same keys, each side keyed as its store keys it. */
async function expectSameKeys(migration: Migration<any, any>): Promise<string[]> {
  const keysOf = async (side: 'old' | 'new') =>
    (await readAll(migration[side])).map((row: Row) => keyString(storeRecordKey(migration[side], migration.key[side], row) as KeyValue)).sort()
  const keys = await keysOf('old')
  expect(await keysOf('new')).toEqual(keys)
  for (const row of await readAll(migration.old)) {
    const found = await migration.new.get([row._id as KeyValue])
    expect([...found.values()]).toEqual([expect.objectContaining(mapper.forward(row))])
  }
  return keys
}

describe('Mongoose compound _id → PostgreSQL composite key', () => {
  let pg: TestDatabase
  let db: Kysely<any>
  let mongo: TestMongo
  let cutover: Cutover
  let migration: Migration<any, any>
  let Doc: mongoose.Model<any>
  let store: MongooseModelStore

  beforeAll(async () => {
    pg = await createTestDatabase('cutover_compound')
    db = pg.db
    await ensureSchema(db)
    mongo = await createTestMongo('cutover_compound', { monitorCommands: true })
    await sql`create table docs (tenant text not null, n integer not null, title text not null, primary key (tenant, n))`.execute(db)
    const engine: { cutover?: Cutover } = {}
    const schema = new Schema({ _id: { tenant: String, n: Number }, title: { type: String, required: true } })
    schema.plugin(cutoverPlugin, { cutover: () => engine.cutover as Cutover, migration: 'docs' })
    Doc = mongo.connection.model('Doc', schema)
    store = new MongooseModelStore(Doc)
    migration = defineMigration({
      name: 'docs',
      gates: false,
      old: store,
      new: new KyselyTableStore(db, 'docs', ['tenant', 'n']),
      mapper,
      mirror: { recheckDelayMs: false },
    })
    cutover = await createCutover({ migrations: [migration], control: db, env: {}, pollIntervalMs: false, logger: silentLogger })
    engine.cutover = cutover
  })
  afterAll(async () => {
    await cutover?.close()
    await mongo?.drop()
    await pg?.drop()
  })

  it('MongooseModelStore keys a compound _id as [tenant, n]: get, keyset scan, upsert, delete', async () => {
    await Doc.collection.insertMany([
      { _id: { tenant: 'b', n: 1 }, title: 'b1' },
      { _id: { tenant: 'a', n: 2 }, title: 'a2' },
      { _id: { tenant: 'a', n: 1 }, title: 'a1' },
    ] as any[])
    const found = await store.get([compositeKey('a', 2), compositeKey('b', 1), compositeKey('c', 9)])
    expect([...found.keys()].sort()).toEqual([keyString(['a', 2]), keyString(['b', 1])])
    expect(found.get(keyString(['a', 2]))).toMatchObject({ _id: ['a', 2], title: 'a2' })
    // Keys as strings (a CLI argument, a dead letter) are cast by the sub-document's paths.
    expect((await store.get([compositeKey('a', '1')])).size).toBe(1)
    const first = await store.scan({ limit: 2 })
    expect(first.map((row) => row._id)).toEqual([['a', 1], ['a', 2]])
    const rest = await store.scan({ after: first.at(-1)!._id as KeyValue, limit: 2 })
    expect(rest.map((row) => row._id)).toEqual([['b', 1]])
    expect(await store.upsert([{ _id: compositeKey('c', 3), title: 'c3' }], { kind: 'overwrite' })).toEqual({ written: 1, skipped: 0 })
    expect(await Doc.collection.findOne({ _id: { tenant: 'c', n: 3 } } as any)).toMatchObject({ title: 'c3' })
    expect(await store.delete([compositeKey('c', 3), compositeKey('a', 1), compositeKey('a', 2), compositeKey('b', 1)])).toBe(4)
  })

  it('backfills the collection into the composite-key table', async () => {
    await Doc.collection.insertMany(Array.from({ length: 30 }, (_, i) => ({ _id: { tenant: `t${i % 3}`, n: i }, title: `doc ${i}` })) as any[])
    const summary = await backfill({ migration, control: db })
    expect(summary.counts).toMatchObject({ read: 30, written: 30, quarantined: 0, mismatched: 0 })
    expect(await expectSameKeys(migration)).toHaveLength(30)
  })

  it('mirrors every write path keyed by the compound _id', async () => {
    await cutover.setPhase('docs', 'shadow', { actor: 'test' })
    const doc = await Doc.create({ _id: { tenant: 'x', n: 1 }, title: 'created' })
    doc.title = 'saved'
    await doc.save()
    await Doc.insertMany([{ _id: { tenant: 'x', n: 2 }, title: 'many' }, { _id: { tenant: 'y', n: 2 }, title: 'many' }])
    await Doc.updateOne({ _id: { tenant: 'x', n: 2 } }, { $set: { title: 'updated by key' } })
    await Doc.updateMany({ title: 'many' }, { $set: { title: 'updated by filter' } })
    await Doc.findOneAndUpdate({ _id: { tenant: 't0', n: 0 } }, { $set: { title: 'found and updated' } }, { new: true })
    await Doc.deleteOne({ _id: { tenant: 't1', n: 1 } })
    await Doc.findByIdAndDelete({ tenant: 't2', n: 2 })
    await cutover.drain()
    expect(cutover.metrics.counter('write.unmirrored', { migration: 'docs', target: Doc.collection.collectionName })).toBe(0)
    const keys = await expectSameKeys(migration)
    expect(keys).toContain(keyString(['x', 1]))
    expect(keys).not.toContain(keyString(['t1', 1]))
    const rows = await sql<Row>`select title from docs where tenant = 'y' and n = 2`.execute(db)
    expect(rows.rows).toEqual([{ title: 'updated by filter' }])
  })

  it('compares key reads without mismatches, and serves them from PostgreSQL at ramp 100', async () => {
    await cutover.setPhase('docs', 'compare', { actor: 'test', compareSample: 1 })
    expect(((await Doc.findById({ tenant: 'x', n: 1 }).lean().exec()) as { title?: string } | null)?.title).toBe('saved')
    await Doc.find({ _id: { $in: [{ tenant: 'x', n: 1 }, { tenant: 'x', n: 2 }] } }).exec()
    await cutover.drain()
    await new Promise((resolve) => setTimeout(resolve, 200)) // comparisons run off the request path
    expect(cutover.metrics.counter('compare.mismatch', { migration: 'docs' })).toBe(0)
    expect(cutover.metrics.counter('compare.equal', { migration: 'docs' })).toBeGreaterThanOrEqual(2)

    await cutover.setPhase('docs', 'ramp', { actor: 'test', readPercent: 100, compareSample: 0 })
    await sql`update docs set title = 'only in postgres' where tenant = 'x' and n = 1`.execute(db)
    // Ramp routes by the request's routing key; at 100 % every key goes to the new store.
    await withCutoverContext({ routingKey: 'user-1' }, async () => {
      const served = await Doc.findById({ tenant: 'x', n: 1 }).exec()
      expect(served?.title).toBe('only in postgres')
      expect(served?._id).toMatchObject({ tenant: 'x', n: 1 })
      expect(served?.isNew).toBe(false)
      const lean = await Doc.findOne({ _id: { tenant: 'x', n: 1 } }).lean().exec()
      expect(lean).toMatchObject({ _id: { tenant: 'x', n: 1 }, title: 'only in postgres' })
      // Read-your-writes: a key written but not yet mirrored (the mirror made slow) is read from MongoDB.
      const store = migration.new
      const upsert = store.upsert.bind(store)
      store.upsert = async (records, mode) => {
        await new Promise((resolve) => setTimeout(resolve, 300))
        return upsert(records, mode)
      }
      try {
        await Doc.updateOne({ _id: { tenant: 'x', n: 2 } }, { $set: { title: 'just written' } })
        expect((await Doc.findById({ tenant: 'x', n: 2 }).exec())?.title).toBe('just written')
      } finally {
        store.upsert = upsert
      }
    })
    expect(cutover.metrics.counter('read.ok', { migration: 'docs', side: 'new' })).toBe(2)
    expect(cutover.metrics.counter('read.fresh_fallback', { migration: 'docs' })).toBe(1)
    await cutover.drain()
  })
})
