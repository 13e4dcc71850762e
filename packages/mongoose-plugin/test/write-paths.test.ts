/**
 * Every Mongoose write path, mirrored MongoDB → MongoDB (a `MongooseModelStore` on a second
 * database as the new side): after each write the stores are equal under the core comparator and
 * the write was handed to the mirror exactly once per document it changed.
 */
import { createCutover, type Cutover, defineMapper, defineMigration, type Migration, silentLogger, WriteRejectedError } from '@cutover/core'
import mongoose, { Schema } from 'mongoose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { createTestDatabase, createTestMongo, type TestDatabase, type TestMongo } from '../../../test/setup/services.js'
import { cutoverPlugin, MongooseModelStore } from '../src/index.js'
import { expectStoresEqual } from './harness.js'

const person = z.object({ _id: z.string(), name: z.string(), age: z.number().nullish(), tags: z.array(z.string()).optional() })

interface PersonDoc {
  name: string
  age?: number
  tags?: string[]
}

interface World {
  readonly cutover: Cutover
  readonly migration: Migration<any, any>
  readonly Person: mongoose.Model<PersonDoc>
  readonly oldMongo: TestMongo
  readonly newMongo: TestMongo
  enqueued(): number
  unmirrored(): number
  close(): Promise<void>
}

async function world(control: TestDatabase, name: string, staleSideWrites: 'strict' | 'permissive' = 'strict'): Promise<World> {
  const oldMongo = await createTestMongo(`cutover_wp_old`, { monitorCommands: true })
  const newMongo = await createTestMongo(`cutover_wp_new`, { monitorCommands: true })
  const engine: { cutover?: Cutover } = {}
  const schema = new Schema({ name: { type: String, required: true }, age: Number, tags: [String] })
  // The engine is created after the model (its old store is built from the model): pass it lazily.
  schema.plugin(cutoverPlugin, { cutover: () => engine.cutover as Cutover, migration: name })
  const Person = oldMongo.connection.model<PersonDoc>('Person', schema)
  const Copy = newMongo.connection.model('Person', new Schema({ name: String, age: Number, tags: [String] }))
  const migration = defineMigration({
    name,
    gates: false,
    old: new MongooseModelStore(Person),
    new: new MongooseModelStore(Copy),
    mapper: defineMapper({ old: person, new: person, forward: (r) => r, backward: (r) => r, lossless: true }),
    mirror: { recheckDelayMs: false, retry: { attempts: 2, baseDelayMs: 5, maxDelayMs: 10 } },
    staleSideWrites,
  })
  const cutover = await createCutover({ migrations: [migration], control: control.db, env: {}, pollIntervalMs: false, logger: silentLogger })
  engine.cutover = cutover
  await cutover.setPhase(name, 'shadow', { actor: 'test' })
  const labels = { migration: name, direction: 'old-to-new' }
  return {
    cutover,
    migration,
    Person,
    oldMongo,
    newMongo,
    enqueued: () => cutover.metrics.counter('mirror.enqueued', labels),
    unmirrored: () => cutover.metrics.counter('write.unmirrored', { migration: name, target: Person.collection.collectionName }),
    async close() {
      await cutover.close()
      await oldMongo.drop()
      await newMongo.drop()
    },
  }
}

describe('every Mongoose write path is mirrored exactly once', () => {
  let control: TestDatabase
  let w: World

  /** Runs a write, drains, and checks the enqueued count and that both stores are equal. */
  async function mirrored(expected: number, write: () => Promise<unknown>): Promise<void> {
    const before = w.enqueued()
    await write()
    await w.cutover.drain()
    expect(w.enqueued() - before).toBe(expected)
    await expectStoresEqual(w.migration)
  }

  beforeAll(async () => {
    control = await createTestDatabase('cutover_wp')
    w = await world(control, 'people')
  })
  afterAll(async () => {
    await w?.close()
    await control?.drop()
  })

  it('save (insert and update), create, insertOne', async () => {
    const ada = new w.Person({ name: 'Ada', age: 36 })
    await mirrored(1, () => ada.save())
    ada.age = 37
    await mirrored(1, () => ada.save())
    await mirrored(0, () => ada.save()) // nothing modified: no write, nothing mirrored
    await mirrored(2, () => w.Person.create([{ name: 'Grace', age: 85 }, { name: 'Edsger', age: 72 }]))
    await mirrored(1, () => w.Person.insertOne({ name: 'Barbara', age: 40 }))
    expect(await w.Person.countDocuments()).toBe(4)
  })

  it('insertMany, with rawResult and with an ordered:false partial failure', async () => {
    await mirrored(3, () => w.Person.insertMany([{ name: 'a1' }, { name: 'a2' }, { name: 'a3' }]))
    await mirrored(2, async () => {
      const result = await w.Person.insertMany([{ name: 'r1' }, { name: 'r2' }], { rawResult: true })
      expect(result.insertedCount).toBe(2)
    })
    const existing = await w.Person.findOne({ name: 'a1' }).lean()
    await mirrored(2, async () => {
      const error = await w.Person.insertMany([{ name: 'p1' }, { _id: existing!._id, name: 'duplicate' }, { name: 'p2' }], { ordered: false }).catch((e: unknown) => e)
      expect((error as { code?: number }).code).toBe(11000) // the application still sees its error
    })
    expect(await w.Person.countDocuments({ name: { $in: ['p1', 'p2'] } })).toBe(2)
    expect((await w.Person.findById(existing!._id).lean())?.name).toBe('a1')
  })

  it('bulkWrite with inserts, updates by _id and by filter, deletes and an upsert', async () => {
    const [x, y] = await w.Person.create([{ name: 'bx', age: 1 }, { name: 'by', age: 2 }])
    // Five operations touching four documents (x is updated, then deleted): four keys mirrored.
    await mirrored(4, () =>
      w.Person.bulkWrite([
        { insertOne: { document: { name: 'bw-new', age: 3 } } },
        { updateOne: { filter: { _id: x!._id }, update: { $set: { age: 10 } } } },
        { updateOne: { filter: { name: 'by' }, update: { $inc: { age: 5 } } } },
        { deleteOne: { filter: { _id: x!._id } } },
        { updateOne: { filter: { name: 'bw-upserted' }, update: { $set: { age: 99 } }, upsert: true } },
      ]),
    )
    expect((await w.Person.findById(y!._id).lean())?.age).toBe(7)
    expect(await w.Person.exists({ name: 'bw-upserted' })).toBeTruthy()
  })

  it('bulkSave fires save and bulkWrite hooks but mirrors each document once', async () => {
    const docs = await w.Person.create([{ name: 's1', age: 1 }, { name: 's2', age: 2 }])
    docs[0]!.age = 11
    docs[1]!.age = 22
    const fresh = new w.Person({ name: 's3', age: 3 })
    await mirrored(3, () => w.Person.bulkSave([docs[0]!, docs[1]!, fresh]))
    expect((await w.Person.findById(docs[1]!._id).lean())?.age).toBe(22)
  })

  it('updateOne, updateMany, replaceOne (by filter and by _id), and no-op updates', async () => {
    await w.Person.create([{ name: 'u1', age: 50 }, { name: 'u2', age: 51 }, { name: 'u3', age: 52 }])
    await mirrored(1, () => w.Person.updateOne({ name: 'u1' }, { $set: { tags: ['x'] } }))
    await mirrored(3, () => w.Person.updateMany({ name: { $in: ['u1', 'u2', 'u3'] } }, { $inc: { age: 1 } }))
    const u2 = await w.Person.findOne({ name: 'u2' }).lean()
    await mirrored(1, () => w.Person.replaceOne({ _id: u2!._id }, { name: 'u2-replaced', age: 1 }))
    await mirrored(1, () => w.Person.replaceOne({ name: 'u3' }, { name: 'u3-replaced' }))
    await mirrored(0, () => w.Person.updateOne({ name: 'nobody' }, { $set: { age: 1 } }))
    await mirrored(0, () => w.Person.updateMany({ age: { $gt: 10_000 } }, { $set: { age: 1 } }))
    expect((await w.Person.findOne({ name: 'u1' }).lean())?.age).toBe(51)
  })

  it('findOneAndUpdate/Replace/Delete and findByIdAnd*', async () => {
    const [f1, f2] = await w.Person.create([{ name: 'f1', age: 1 }, { name: 'f2', age: 2 }, { name: 'f3', age: 3 }])
    await mirrored(1, async () => {
      const before = await w.Person.findOneAndUpdate({ name: 'f1' }, { $set: { age: 100 } })
      expect(before?.age).toBe(1) // Mongoose still gets the document it asked for, not result metadata
    })
    await mirrored(1, async () => {
      const after = await w.Person.findOneAndReplace({ name: 'f3' }, { name: 'f3-replaced', age: 33 }, { new: true })
      expect(after?.name).toBe('f3-replaced')
    })
    await mirrored(1, () => w.Person.findByIdAndUpdate(f2!._id, { $set: { tags: ['t'] } }))
    await mirrored(1, () => w.Person.findOneAndDelete({ name: 'f3-replaced' }))
    await mirrored(1, () => w.Person.findByIdAndDelete(f1!._id))
    await mirrored(0, () => w.Person.findOneAndUpdate({ name: 'nobody' }, { $set: { age: 1 } }))
    const raw = await w.Person.findOneAndUpdate({ _id: f2!._id }, { $set: { age: 5 } }, { includeResultMetadata: true, new: true })
    expect(raw.value?.age).toBe(5)
    await w.cutover.drain()
    await expectStoresEqual(w.migration)
  })

  it('deleteOne, deleteMany and doc.deleteOne()', async () => {
    const docs = await w.Person.create([{ name: 'd1', age: 70 }, { name: 'd2', age: 70 }, { name: 'd3', age: 70 }, { name: 'd4', age: 80 }])
    await mirrored(1, () => w.Person.deleteOne({ name: 'd1' }))
    await mirrored(2, () => w.Person.deleteMany({ age: 70 }))
    await mirrored(1, () => docs[3]!.deleteOne())
    await mirrored(0, () => w.Person.deleteMany({ name: 'nobody' }))
    expect(await w.Person.countDocuments({ name: /^d/ })).toBe(0)
  })

  it('upserts through updateOne, updateMany, findOneAndUpdate (returning the old null) and replaceOne', async () => {
    await mirrored(1, () => w.Person.updateOne({ name: 'up1' }, { $set: { age: 1 } }, { upsert: true }))
    await mirrored(1, () => w.Person.updateMany({ name: 'up2' }, { $set: { age: 2 } }, { upsert: true }))
    await mirrored(1, async () => {
      const before = await w.Person.findOneAndUpdate({ name: 'up3' }, { $set: { age: 3 } }, { upsert: true })
      expect(before).toBeNull()
    })
    await mirrored(1, () => w.Person.replaceOne({ name: 'up4' }, { name: 'up4', age: 4 }, { upsert: true }))
    await mirrored(1, () => w.Person.updateOne({ name: 'up1' }, { $set: { age: 11 } }, { upsert: true }))
    expect(await w.Person.countDocuments({ name: /^up/ })).toBe(4)
  })

  it('concurrent writers on the same documents end equal', async () => {
    const docs = await w.Person.create(Array.from({ length: 10 }, (_, i) => ({ name: `c${i}`, age: 0 })))
    const writers = Array.from({ length: 8 }, (_, writer) =>
      (async () => {
        for (let round = 0; round < 25; round++) {
          const doc = docs[(writer + round) % docs.length]!
          if (round % 3 === 0) await w.Person.updateOne({ _id: doc._id }, { $inc: { age: 1 } })
          else if (round % 3 === 1) await w.Person.findByIdAndUpdate(doc._id, { $set: { tags: [`w${writer}r${round}`] } })
          else await w.Person.updateMany({ _id: { $in: docs.map((d) => d._id) }, age: { $gte: 0 } }, { $inc: { age: 1 } })
        }
      })(),
    )
    await Promise.all(writers)
    await w.cutover.drain()
    await expectStoresEqual(w.migration)
  })

  it('inserts and whole findOneAnd* results after the write reach the mirror as exact images, without a read-back', async () => {
    const store = w.migration.old as MongooseModelStore
    const get = store.get.bind(store)
    let readBack = 0
    store.get = (keys) => {
      readBack += keys.length
      return get(keys)
    }
    try {
      const reads = async (write: () => Promise<unknown>, expected: number) => {
        const before = readBack
        await write()
        await w.cutover.drain()
        await expectStoresEqual(w.migration)
        expect(readBack - before).toBe(expected)
      }
      const [i1] = await (async () => {
        let created: Array<{ _id: unknown }> = []
        await reads(async () => (created = await w.Person.create([{ name: 'i1', age: 1, tags: ['a'] }, { name: 'i2' }])), 0)
        return created
      })()
      await reads(() => w.Person.insertMany([{ name: 'i3', age: 3 }, { name: 'i4', tags: [] }]), 0)
      await reads(() => w.Person.insertMany([{ name: 'i5' }, { _id: i1!._id, name: 'duplicate' }, { name: 'i6' }], { ordered: false }).catch(() => {}), 0)
      await reads(() => w.Person.findByIdAndUpdate(i1!._id, { $set: { age: 10 } }, { new: true }), 0)
      await reads(() => w.Person.findOneAndReplace({ name: 'i2' }, { name: 'i2', age: 2 }, { returnDocument: 'after' }), 0)
      await reads(() => w.Person.findOneAndUpdate({ name: 'i7' }, { $set: { age: 7 } }, { new: true, upsert: true }), 0)
      // Not the state after the write (a projected result is not whole either; FerretDB v1 cannot project one): read back.
      await reads(() => w.Person.findByIdAndUpdate(i1!._id, { $set: { age: 12 } }), 1)
      await reads(() => w.Person.updateOne({ _id: i1!._id }, { $set: { age: 13 } }), 1)
    } finally {
      store.get = get
    }
  })

  it('concurrent writers returning new documents and writers that do not end equal', async () => {
    const docs = await w.Person.create(Array.from({ length: 6 }, (_, i) => ({ name: `n${i}`, age: 0 })))
    const writers = Array.from({ length: 8 }, (_, writer) =>
      (async () => {
        for (let round = 0; round < 25; round++) {
          const doc = docs[(writer + round) % docs.length]!
          if (round % 2 === 0) await w.Person.findByIdAndUpdate(doc._id, { $inc: { age: 1 }, $set: { tags: [`w${writer}r${round}`] } }, { new: true })
          else await w.Person.updateOne({ _id: doc._id }, { $inc: { age: 1 } })
        }
      })(),
    )
    await Promise.all(writers)
    await w.cutover.drain()
    await expectStoresEqual(w.migration)
  })

  it('reports writes that bypass middleware (Model.collection, connection.db) as unmirrored, mirroring only the keys they name', async () => {
    const before = { enqueued: w.enqueued(), unmirrored: w.unmirrored() }
    await w.Person.collection.insertOne({ name: 'raw1' })
    await w.oldMongo.connection.db!.collection(w.Person.collection.collectionName).updateOne({ name: 'raw1' }, { $set: { age: 1 } })
    await w.Person.collection.deleteMany({ name: 'raw1' })
    await w.cutover.drain()
    expect(w.unmirrored() - before.unmirrored).toBe(3)
    // The insert names its key, so that key is handed to the mirror too; the filters by name do not.
    expect(w.enqueued() - before.enqueued).toBe(1)
    // Writes through the plugin and the mirror's own store writes are not reported.
    await w.Person.create({ name: 'observed' })
    await w.cutover.drain()
    expect(w.unmirrored() - before.unmirrored).toBe(3)
  })
})

describe('phases', () => {
  let control: TestDatabase
  let strict: World
  let permissive: World

  beforeAll(async () => {
    control = await createTestDatabase('cutover_wp_phases')
    strict = await world(control, 'strict_people')
    permissive = await world(control, 'lenient_people', 'permissive')
  })
  afterAll(async () => {
    await strict?.close()
    await permissive?.close()
    await control?.drop()
  })

  async function moveTo(w: World, phase: 'cutover' | 'off'): Promise<void> {
    const name = w.migration.name
    if (phase === 'off') return w.cutover.setPhase(name, 'off', { actor: 'test' })
    for (const step of ['compare', 'ramp', 'cutover'] as const) await w.cutover.setPhase(name, step, { actor: 'test' })
  }

  it('off: writes are not mirrored', async () => {
    await strict.cutover.setPhase('strict_people', 'off', { actor: 'test' })
    const before = strict.enqueued()
    await strict.Person.create({ name: 'unmirrored', age: 1 })
    await strict.Person.updateMany({}, { $set: { age: 2 } })
    await strict.cutover.drain()
    expect(strict.enqueued()).toBe(before)
    expect(await strict.Person.countDocuments()).toBe(1)
    expect((await strict.migration.new.scan({ limit: 10 })).length).toBe(0)
    await strict.cutover.setPhase('strict_people', 'shadow', { actor: 'test' })
  })

  it('cutover, strict: every Mongoose write path is rejected with a typed error naming model and phase', async () => {
    const existing = await strict.Person.create({ name: 'before-cutover', age: 1 })
    await strict.cutover.drain()
    await moveTo(strict, 'cutover')
    const attempts: Array<() => Promise<unknown>> = [
      () => strict.Person.create({ name: 'late' }),
      () => strict.Person.insertMany([{ name: 'late' }]),
      () => strict.Person.updateOne({ _id: existing._id }, { $set: { age: 2 } }),
      () => strict.Person.updateMany({}, { $set: { age: 2 } }),
      () => strict.Person.findOneAndUpdate({ name: 'before-cutover' }, { $set: { age: 2 } }),
      () => strict.Person.deleteMany({}),
      () => strict.Person.bulkWrite([{ deleteOne: { filter: { _id: existing._id } } }]),
      () => {
        existing.age = 3
        return existing.save()
      },
    ]
    for (const attempt of attempts) {
      const error = await attempt().catch((e: unknown) => e)
      expect(error).toBeInstanceOf(WriteRejectedError)
      expect((error as WriteRejectedError).code).toBe('WRITE_REJECTED_BY_PHASE')
      expect((error as WriteRejectedError).message).toContain('"Person"')
      expect((error as WriteRejectedError).message).toContain('"cutover"')
    }
    const rejected = (await strict.Person.updateOne({ _id: existing._id }, { $set: { age: 2 } }).catch((e: unknown) => e)) as WriteRejectedError
    expect(rejected.key).toBe(existing._id.toHexString())
    expect(await strict.Person.find({ name: { $ne: 'unmirrored' } }).lean()).toMatchObject([{ name: 'before-cutover', age: 1 }])
  })

  it('cutover, permissive: Mongoose writes are applied and mirrored forward', async () => {
    await moveTo(permissive, 'cutover')
    const before = permissive.enqueued()
    const doc = await permissive.Person.create({ name: 'late but allowed', age: 1 })
    await permissive.Person.updateOne({ _id: doc._id }, { $set: { age: 2 } })
    await permissive.cutover.drain()
    expect(permissive.enqueued() - before).toBe(2)
    expect(permissive.cutover.metrics.counter('write.stale_side', { migration: 'lenient_people' })).toBe(2)
    await expectStoresEqual(permissive.migration)
  })
})

