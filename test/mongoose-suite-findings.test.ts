/**
 * What Mongoose's own test suite (run on FerretDB through the plugin, as a differential against runs
 * without it) found, each reproduced here on FerretDB + PostgreSQL:
 *
 * - A write reaches the driver in the tick the application made it. `Model.create([a, b])` saves
 *   its documents in parallel; an `await` in the plugin before the driver call let them meet the
 *   connection pool in another order, MongoDB stored them in another order, and an unsorted
 *   `find()` (population's tests rely on natural order) returned them in another order.
 * - A key lookup served from the new store returns each document once (`$in` with a key twice
 *   returns one document from MongoDB), and a lookup of several keys with a limit but no key sort
 *   stays on MongoDB: which documents MongoDB returns first is its natural order, which the new
 *   store does not know.
 */
import { copy, createCutover, type Cutover, defineMapper, defineMigration, fieldMapper, rename, silentLogger, withCutoverContext } from '@cutover/core'
import { KyselyQueryReader, KyselyTableStore } from '@cutover/kysely-plugin'
import { cutoverPlugin, MongooseModelStore } from '@cutover/mongoose-plugin'
import type { Kysely } from 'kysely'
import mongoose, { Schema } from 'mongoose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { createTestDatabase, createTestMongo, type TestDatabase, type TestMongo } from './setup/services.js'

interface FanDoc {
  name: string
}

describe('Mongoose suite findings', () => {
  let pg: TestDatabase
  let db: Kysely<any>
  let mongo: TestMongo
  let cutover: Cutover
  let Fan: mongoose.Model<FanDoc>
  const counter = (name: string, labels: Record<string, string> = {}) => cutover.metrics.counter(name, { migration: 'fans', ...labels })

  beforeAll(async () => {
    pg = await createTestDatabase('cutover_mongoose_suite')
    db = pg.db
    mongo = await createTestMongo('cutover_mongoose_suite', { monitorCommands: true })
    await db.schema.createTable('fans').addColumn('id', 'text', (c) => c.primaryKey()).addColumn('name', 'text', (c) => c.notNull()).execute()
    const engine: { cutover?: Cutover } = {}
    const schema = new Schema<FanDoc>({ name: { type: String, required: true } }, { versionKey: false })
    schema.plugin(cutoverPlugin, { cutover: () => engine.cutover, migration: 'fans', reader: new KyselyQueryReader(db, 'fans') })
    Fan = mongo.connection.model<FanDoc>('Fan', schema)
    cutover = await createCutover({
      migrations: [
        defineMigration({
          name: 'fans',
          gates: false,
          old: new MongooseModelStore(Fan),
          new: new KyselyTableStore(db, 'fans', 'id'),
          mapper: fieldMapper({ old: z.object({ _id: z.string(), name: z.string() }), new: z.object({ id: z.string(), name: z.string() }), fields: [rename('_id', 'id'), copy('name')] }),
          mirror: { recheckDelayMs: false },
        }),
      ],
      control: db,
      env: {},
      pollIntervalMs: false,
      logger: silentLogger,
    })
    engine.cutover = cutover
    await cutover.setPhase('fans', 'shadow', { actor: 'test' })
  })
  afterAll(async () => {
    await cutover?.close()
    await mongo?.drop()
    await pg?.drop()
  })

  it('a mirrored write reaches the driver in the tick the application made it, so parallel writes are sent in their order', async () => {
    const driver = (Fan.collection as unknown as { collection: Record<string, (...args: unknown[]) => unknown> }).collection
    const sent: string[] = []
    const insertOne = driver.insertOne!
    driver.insertOne = function (this: unknown, document: unknown, ...rest: unknown[]) {
      sent.push((document as FanDoc).name)
      return insertOne.call(this, document, ...rest)
    }
    try {
      // The collection Mongoose's save path writes through (the plugin's observed one).
      const observed = (Fan as unknown as { $__collection: { insertOne(document: object): Promise<unknown> } }).$__collection
      const writes = ['a', 'b', 'c'].map((name) => observed.insertOne({ _id: new mongoose.Types.ObjectId(), name }))
      const sentAtOnce = [...sent]
      await Promise.all(writes)
      expect(sentAtOnce).toEqual(['a', 'b', 'c'])
    } finally {
      driver.insertOne = insertOne
    }
    await cutover.drain()
    expect(counter('mirror.applied', { direction: 'old-to-new' })).toBe(3)
  })

  it('reads served from the new store return what MongoDB returns: each key once, and no page that natural order decides', async () => {
    const [b, a] = await Fan.create([{ name: 'b' }, { name: 'twin' }])
    await Fan.create([{ name: 'twin' }, { name: 'solo' }])
    await cutover.drain()
    await cutover.setPhase('fans', 'compare', { actor: 'test', compareSample: 0 })
    await cutover.setPhase('fans', 'ramp', { actor: 'test', readPercent: 100, compareSample: 0 })
    const served = () => counter('read.ok', { side: 'new' })
    const untranslatable = () => counter('read.untranslatable')
    const read = <T>(query: () => Promise<T>) => withCutoverContext({ routingKey: 'suite' }, query)

    // `$in` naming a key twice: MongoDB returns the document once.
    let before = served()
    const twice = await read(() => Fan.find({ _id: { $in: [a!._id, a!._id] } }).lean().exec())
    expect(served() - before).toBe(1)
    expect(twice.map((d) => String(d._id))).toEqual([String(a!._id)])

    // Several keys, a limit below their number and no sort: which one MongoDB returns first is its
    // natural order. MongoDB serves it.
    before = untranslatable()
    const page = await read(() => Fan.find({ _id: { $in: [b!._id, a!._id] } }).limit(1).lean().exec())
    expect(untranslatable() - before).toBe(1)
    expect(page.map((d) => String(d._id))).toEqual((await Fan.find({ _id: { $in: [b!._id, a!._id] } }).limit(1).lean()).map((d) => String(d._id)))

    // A translated findOne without a sort that more than one document matches: MongoDB serves it.
    before = untranslatable()
    const servedBefore = served()
    const first = await read(() => Fan.findOne({ name: 'twin' }).lean().exec())
    expect(untranslatable() - before).toBe(1)
    expect(served() - servedBefore).toBe(0)
    expect(String(first?._id)).toBe(String((await Fan.findOne({ name: 'twin' }).lean())?._id))
    // One document matches: the new store serves it.
    const only = await read(() => Fan.findOne({ name: 'solo' }).exec())
    expect(served() - servedBefore).toBe(1)
    expect(only?.name).toBe('solo')
    // A skip without a sort stays on MongoDB.
    before = untranslatable()
    await read(() => Fan.find({ name: 'twin' }).skip(1).exec())
    expect(untranslatable() - before).toBe(1)
  })

  it('a model of the same name on another database (useDb) is not bound to the migration: its reads and writes stay its own', async () => {
    // One schema, one `models`/`migration` entry: `useDb` compiles the model again for another
    // database, with the plugin's hooks. Bound to the migration, its writes were mirrored from the
    // wrong database and its key reads served from the other database's rows: missing documents.
    const other = mongo.connection.useDb(`${mongo.name}_tenant2`)
    const TenantFan = other.model<FanDoc>('Fan', Fan.schema)
    const enqueued = () => counter('mirror.enqueued', { direction: 'old-to-new' })
    const read = <T>(query: () => Promise<T>) => withCutoverContext({ routingKey: 'suite' }, query)
    try {
      await cutover.drain()
      const before = enqueued()
      const tenantFan = await TenantFan.create({ name: 'tenant-only' })
      await TenantFan.updateMany({ name: 'tenant-only' }, { $set: { name: 'tenant-renamed' } })
      await cutover.drain()
      expect(enqueued() - before).toBe(0)
      expect(await db.selectFrom('fans').select('id').where('id', '=', String(tenantFan._id)).execute()).toEqual([])
      const servedBefore = counter('read.ok', { side: 'new' })
      const found = await read(() => TenantFan.findById(tenantFan._id).exec())
      expect(found?.name).toBe('tenant-renamed')
      expect(counter('read.ok', { side: 'new' }) - servedBefore).toBe(0)
      // The migrated model itself is still served from the new store.
      const [own] = await Fan.find({ name: 'solo' }).lean()
      const ownServedBefore = counter('read.ok', { side: 'new' })
      expect((await read(() => Fan.findById(own!._id).exec()))?.name).toBe('solo')
      expect(counter('read.ok', { side: 'new' }) - ownServedBefore).toBe(1)
    } finally {
      await other.dropDatabase().catch(() => {})
    }
  })

  it('a document served from the new store is built as MongoDB builds it: stored nulls and fields the schema does not name stay', async () => {
    await db.schema.createTable('notes').addColumn('id', 'text', (c) => c.primaryKey()).addColumn('text', 'text').addColumn('extra', 'text').execute()
    const engine: { cutover?: Cutover } = {}
    // `nested` is a nested path never stored here: a hydrated document has it (empty), MongoDB's lean one does not.
    const schema = new Schema({ text: String, nested: { a: String } }, { versionKey: false, strict: false })
    schema.plugin(cutoverPlugin, { cutover: () => engine.cutover, migration: 'notes' })
    const Note = mongo.connection.model('Note', schema)
    const notes = await createCutover({
      migrations: [
        defineMigration({
          name: 'notes',
          gates: false,
          old: new MongooseModelStore(Note),
          new: new KyselyTableStore(db, 'notes', 'id'),
          mapper: fieldMapper({
            old: z.object({ _id: z.string(), text: z.string().nullable(), extra: z.string().optional() }),
            new: z.object({ id: z.string(), text: z.string().nullable(), extra: z.string().nullish() }),
            fields: [rename('_id', 'id'), copy('text'), copy('extra')],
          }),
          mirror: { recheckDelayMs: false },
          droppedColumns: ['nested'],
        }),
      ],
      control: db,
      env: {},
      pollIntervalMs: false,
      logger: silentLogger,
    })
    engine.cutover = notes
    try {
      await notes.setPhase('notes', 'shadow', { actor: 'test' })
      const note = await Note.create({ text: null, extra: 'kept' })
      await notes.drain()
      await notes.setPhase('notes', 'compare', { actor: 'test', compareSample: 0 })
      await notes.setPhase('notes', 'ramp', { actor: 'test', readPercent: 100, compareSample: 0 })
      const fromMongo = await Note.findById(note._id)
      const served = () => notes.metrics.counter('read.ok', { migration: 'notes', side: 'new' })
      const before = served()
      const fromNew = await withCutoverContext({ routingKey: 'suite' }, () => Note.findById(note._id).exec())
      expect(served() - before).toBe(1)
      expect(fromMongo?.toObject()).toEqual({ _id: note._id, text: null, extra: 'kept' })
      // MongoDB's document: `text` is null (not missing), `extra` is there although the schema does not name it.
      expect(fromNew?.toObject()).toEqual(fromMongo?.toObject())
      expect(fromNew?.isModified()).toBe(false)
      // Lean: MongoDB's stored values, without defaults or minimizing.
      const leanBefore = served()
      const leanFromNew = await withCutoverContext({ routingKey: 'suite' }, () => Note.findById(note._id).lean().exec())
      expect(served() - leanBefore).toBe(1)
      expect(leanFromNew).toEqual(await Note.findById(note._id).lean())
    } finally {
      await notes.close()
    }
  })

  it('a model with a select: false path under a sub-document is read from MongoDB, which leaves that path out', async () => {
    await db.schema.createTable('vaults').addColumn('id', 'text', (c) => c.primaryKey()).addColumn('label', 'text').execute()
    const engine: { cutover?: Cutover } = {}
    const schema = new Schema({ label: String, lock: new Schema({ code: { type: String, select: false } }, { _id: false }) }, { versionKey: false })
    schema.plugin(cutoverPlugin, { cutover: () => engine.cutover, migration: 'vaults' })
    const Vault = mongo.connection.model('Vault', schema)
    const vaults = await createCutover({
      migrations: [
        defineMigration({
          name: 'vaults',
          gates: false,
          old: new MongooseModelStore(Vault),
          new: new KyselyTableStore(db, 'vaults', 'id'),
          mapper: defineMapper({
            old: z.object({ _id: z.string(), label: z.string(), lock: z.object({ code: z.string() }) }),
            new: z.object({ id: z.string(), label: z.string() }),
            forward: (row) => ({ id: row._id, label: row.label }),
            backward: (row) => ({ _id: row.id, label: row.label, lock: { code: 'from-new' } }),
          }),
          mirror: { recheckDelayMs: false },
        }),
      ],
      control: db,
      env: {},
      pollIntervalMs: false,
      logger: silentLogger,
    })
    engine.cutover = vaults
    try {
      await vaults.setPhase('vaults', 'shadow', { actor: 'test' })
      const vault = await Vault.create({ label: 'v', lock: { code: '1234' } })
      await vaults.drain()
      await vaults.setPhase('vaults', 'compare', { actor: 'test', compareSample: 0 })
      await vaults.setPhase('vaults', 'ramp', { actor: 'test', readPercent: 100, compareSample: 0 })
      const before = vaults.metrics.counter('read.untranslatable', { migration: 'vaults' })
      const found = await withCutoverContext({ routingKey: 'suite' }, () => Vault.findById(vault._id).exec())
      expect(vaults.metrics.counter('read.untranslatable', { migration: 'vaults' }) - before).toBe(1)
      expect(found?.lock?.code).toBeUndefined()
    } finally {
      await vaults.close()
    }
  })
})
