/**
 * MongoDB (Mongoose, through the Cutover plugin) → PostgreSQL (KyselyTableStore): every write path
 * ends with both stores equal under the core comparator, each write mirrored exactly once; reads
 * are compared, translated to SQL, routed and hydrated.
 */
import { copy, createCutover, type Cutover, defineMigration, fieldMapper, type Migration, rampReadSide, rename, silentLogger, withCutoverContext } from '@cutover/core'
import { KyselyQueryReader, KyselyTableStore } from '@cutover/kysely-plugin'
import { cutoverPlugin, MongooseModelStore } from '@cutover/mongoose-plugin'
import { type Kysely, sql } from 'kysely'
import mongoose, { Schema } from 'mongoose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { translateQuery } from '../packages/mongoose-plugin/src/read/query-translation.js'
import { expectStoresEqual } from '../packages/mongoose-plugin/test/harness.js'
import { createTestDatabase, createTestMongo, type TestDatabase, type TestMongo } from './setup/services.js'

interface PersonDoc {
  name: string
  age?: number
  tags?: string[]
}

const oldShape = z.object({ _id: z.string(), name: z.string(), age: z.number().nullish(), tags: z.array(z.string()).optional() })
const newShape = z.object({ id: z.string(), full_name: z.string(), age: z.number().nullish(), tags: z.array(z.string()).nullish() })

describe('Mongoose → PostgreSQL', () => {
  let pg: TestDatabase
  let db: Kysely<any>
  let mongo: TestMongo
  let cutover: Cutover
  let migration: Migration<any, any>
  let Person: mongoose.Model<PersonDoc>
  const enqueued = () => cutover.metrics.counter('mirror.enqueued', { migration: 'people', direction: 'old-to-new' })
  const counter = (name: string, extra: Record<string, string> = {}) => cutover.metrics.counter(name, { migration: 'people', ...extra })

  async function mirrored(expected: number, write: () => Promise<unknown>): Promise<void> {
    const before = enqueued()
    await write()
    await cutover.drain()
    expect(enqueued() - before).toBe(expected)
    await expectStoresEqual(migration)
  }

  beforeAll(async () => {
    pg = await createTestDatabase('cutover_mongoose_pg')
    db = pg.db
    mongo = await createTestMongo('cutover_mongoose_pg', { monitorCommands: true })
    await db.schema
      .createTable('people')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('full_name', 'text', (c) => c.notNull())
      .addColumn('age', 'integer')
      .addColumn('tags', sql`text[]`)
      .execute()
    const engine: { cutover?: Cutover } = {}
    const schema = new Schema<PersonDoc>({ name: { type: String, required: true }, age: Number, tags: [String] })
    schema.plugin(cutoverPlugin, { cutover: () => engine.cutover as Cutover, migration: 'people', reader: new KyselyQueryReader(db, 'people') })
    Person = mongo.connection.model<PersonDoc>('Person', schema)
    migration = defineMigration({
      name: 'people',
      gates: false,
      old: new MongooseModelStore(Person),
      new: new KyselyTableStore(db, 'people', 'id'),
      mapper: fieldMapper({ old: oldShape, new: newShape, fields: [rename('_id', 'id'), rename('name', 'full_name'), copy('age'), copy('tags')] }),
      mirror: { recheckDelayMs: false },
    })
    cutover = await createCutover({ migrations: [migration], control: db, env: {}, pollIntervalMs: false, logger: silentLogger })
    engine.cutover = cutover
    await cutover.setPhase('people', 'shadow', { actor: 'test' })
  })
  afterAll(async () => {
    await cutover?.close()
    await mongo?.drop()
    await pg?.drop()
  })

  it('document writes: save, create, insertOne, insertMany (rawResult, ordered:false partial failure), bulkSave, doc.deleteOne', async () => {
    const ada = new Person({ name: 'Ada', age: 36, tags: ['math'] })
    await mirrored(1, () => ada.save())
    ada.age = 37
    await mirrored(1, () => ada.save())
    await mirrored(2, () => Person.create([{ name: 'Grace', age: 85 }, { name: 'Edsger', age: 72 }]))
    await mirrored(1, () => Person.insertOne({ name: 'Barbara', age: 40 }))
    await mirrored(3, () => Person.insertMany([{ name: 'm1' }, { name: 'm2' }, { name: 'm3' }]))
    await mirrored(2, () => Person.insertMany([{ name: 'r1' }, { name: 'r2' }], { rawResult: true }))
    await mirrored(2, async () => {
      const error = await Person.insertMany([{ name: 'p1' }, { _id: ada._id, name: 'dup' }, { name: 'p2' }], { ordered: false }).catch((e: unknown) => e)
      expect((error as { code?: number }).code).toBe(11000)
    })
    const [s1, s2] = await Person.create([{ name: 's1' }, { name: 's2' }])
    s1!.age = 1
    s2!.tags = ['x', 'y']
    await mirrored(3, () => Person.bulkSave([s1!, s2!, new Person({ name: 's3' })]))
    await mirrored(1, () => s1!.deleteOne())
    expect(await db.selectFrom('people').select('full_name').where('id', '=', ada._id.toHexString()).executeTakeFirst()).toEqual({ full_name: 'Ada' })
  })

  it('query writes: updateOne, updateMany, replaceOne, findOneAnd*, findByIdAnd*, deleteOne, deleteMany, bulkWrite, upserts', async () => {
    const [q1, q2] = await Person.create([{ name: 'q1', age: 50 }, { name: 'q2', age: 51 }, { name: 'q3', age: 52 }])
    await cutover.drain()
    await mirrored(1, () => Person.updateOne({ name: 'q1' }, { $push: { tags: 'pushed' } }))
    await mirrored(3, () => Person.updateMany({ name: { $in: ['q1', 'q2', 'q3'] } }, { $inc: { age: 1 } }))
    await mirrored(1, () => Person.replaceOne({ _id: q2!._id }, { name: 'q2-replaced', age: 9 }))
    await mirrored(1, () => Person.findOneAndUpdate({ name: 'q3' }, { $set: { age: 3 } }, { new: true }))
    await mirrored(1, () => Person.findOneAndReplace({ name: 'q3' }, { name: 'q3-replaced' }))
    await mirrored(1, () => Person.findByIdAndUpdate(q1!._id, { $unset: { age: 1 } }))
    await mirrored(1, () => Person.findOneAndDelete({ name: 'q3-replaced' }))
    await mirrored(1, () => Person.findByIdAndDelete(q2!._id))
    await mirrored(1, () => Person.updateOne({ name: 'upserted' }, { $set: { age: 1 } }, { upsert: true }))
    await mirrored(1, () => Person.findOneAndUpdate({ name: 'upserted-2' }, { $set: { age: 2 } }, { upsert: true }))
    await mirrored(1, () => Person.deleteOne({ name: 'upserted' }))
    await Person.create([{ name: 'dm', age: 1000 }, { name: 'dm', age: 1000 }])
    await cutover.drain()
    await mirrored(2, () => Person.deleteMany({ age: 1000 }))
    await mirrored(3, () =>
      Person.bulkWrite([
        { insertOne: { document: { name: 'bw1', age: 1 } } },
        { updateOne: { filter: { name: 'upserted-2' }, update: { $set: { age: 22 } } } },
        { updateMany: { filter: { name: 'bw-upsert' }, update: { $set: { age: 3 } }, upsert: true } },
      ]),
    )
    const rows = await db.selectFrom('people').select(['full_name', 'age']).where('full_name', 'in', ['upserted-2', 'bw-upsert']).orderBy('full_name').execute()
    expect(rows).toEqual([{ full_name: 'bw-upsert', age: 3 }, { full_name: 'upserted-2', age: 22 }])
  })

  it('concurrent writers on the same documents end equal', async () => {
    const docs = await Person.create(Array.from({ length: 12 }, (_, i) => ({ name: `cc${i}`, age: 0 })))
    await Promise.all(
      Array.from({ length: 8 }, (_, writer) =>
        (async () => {
          for (let round = 0; round < 30; round++) {
            const doc = docs[(writer * 7 + round) % docs.length]!
            if (round % 4 === 0) await Person.updateOne({ _id: doc._id }, { $inc: { age: 1 } })
            else if (round % 4 === 1) await Person.findByIdAndUpdate(doc._id, { $set: { tags: [`w${writer}`, `r${round}`] } })
            else if (round % 4 === 2) await Person.updateMany({ name: { $in: docs.map((d) => d.name) } }, { $inc: { age: 1 } })
            else {
              const fresh = await Person.findById(doc._id)
              fresh!.age = (fresh!.age ?? 0) + 100
              await fresh!.save()
            }
          }
        })(),
      ),
    )
    await cutover.drain()
    expect(await expectStoresEqual(migration)).toBeGreaterThan(12)
  })

  it('reads: compared via SQL, served from PostgreSQL in ramp and hydrated into documents that save()', async () => {
    await cutover.drain()
    await cutover.setPhase('people', 'compare', { actor: 'test', compareSample: 1 })
    const equalBefore = counter('compare.equal')
    const found = await Person.find({ age: { $gte: 1, $lt: 1000 }, name: { $nin: ['Ada'] } }).sort({ age: -1, name: 1 }).limit(5)
    expect(found.length).toBe(5)
    await Person.findOne({ name: 'Grace' })
    await Person.countDocuments({ $or: [{ age: { $exists: false } }, { age: null }] })
    const deadline = Date.now() + 10_000
    while (counter('compare.equal') - equalBefore < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10))
    expect(counter('compare.equal') - equalBefore).toBe(3)
    expect(counter('compare.mismatch')).toBe(0)

    await cutover.setPhase('people', 'ramp', { actor: 'test', readPercent: 50, compareSample: 0 })
    const routingKey = ['t1', 't2', 't3', 't4', 't5', 't6', 't7', 't8'].find((k) => rampReadSide(50, { routingKey: k }) === 'new')!
    const grace = await Person.findOne({ name: 'Grace' }).lean()
    const servedBefore = counter('read.ok', { side: 'new' })
    const fromPg = await withCutoverContext({ routingKey }, () => Person.findById(grace!._id).exec())
    const listFromPg = await withCutoverContext({ routingKey }, () => Person.find({ age: { $gt: 50 } }).sort({ name: 1 }).lean().exec())
    expect(counter('read.ok', { side: 'new' }) - servedBefore).toBe(2)
    expect(listFromPg.map((d) => d.name)).toEqual((await Person.find({ age: { $gt: 50 } }).sort({ name: 1 }).lean()).map((d) => d.name))
    expect(fromPg).toBeInstanceOf(Person)
    expect(fromPg!.toObject()).toMatchObject({ name: 'Grace', age: 85 })
    fromPg!.age = 86
    await fromPg!.save()
    await cutover.drain()
    expect((await Person.findById(grace!._id).lean())?.age).toBe(86)
    expect(await db.selectFrom('people').select('age').where('id', '=', grace!._id.toHexString()).executeTakeFirst()).toEqual({ age: 86 })
    await expectStoresEqual(migration)
  })

  it('KyselyQueryReader returns what MongoDB returns for the same filter, sort and paging (NULLs, $ne, $nin, $in with null)', async () => {
    await cutover.drain()
    const reader = new KyselyQueryReader(db, 'people')
    const mapping = { oldKey: '_id', newKey: 'id', fieldMap: migration.mapper.fieldMap, arrayPaths: new Set(['tags']) }
    const queries: Array<{ filter: Record<string, unknown>; sort: Record<string, 1 | -1>; limit?: number; skip?: number }> = [
      { filter: { age: { $gte: 20, $lt: 90 } }, sort: { age: 1, name: 1 } },
      { filter: { age: { $ne: 22 } }, sort: { name: 1 } },
      { filter: { age: { $nin: [22, 36] } }, sort: { name: 1 } },
      { filter: { age: { $nin: [null, 22] } }, sort: { name: 1 } },
      { filter: { age: { $in: [null, 85] } }, sort: { name: 1 } },
      { filter: { age: null }, sort: { name: 1 } },
      { filter: { age: { $exists: true } }, sort: { age: -1, name: 1 }, limit: 4, skip: 1 },
      { filter: { $or: [{ name: 'Grace' }, { age: { $lt: 5 } }] }, sort: { name: -1 } },
      { filter: {}, sort: { age: 1, name: 1 }, skip: 3 },
      { filter: { name: { $in: [] } }, sort: { name: 1 } },
    ]
    await Person.create({ name: 'no-age' })
    await cutover.drain()
    for (const q of queries) {
      const fromMongo = await Person.find(q.filter).sort(q.sort).skip(q.skip ?? 0).limit(q.limit ?? 0).lean()
      const translated = translateQuery({ filter: Person.find(q.filter).cast(Person), sort: q.sort, limit: q.limit, skip: q.skip }, mapping)
      if (!translated.ok) throw new Error(`${JSON.stringify(q)}: ${translated.reason}`)
      const fromPg = await reader.find(translated.value)
      expect({ q, names: fromPg.map((row) => row.full_name) }).toEqual({ q, names: fromMongo.map((doc) => doc.name) })
      expect({ q, count: await reader.count(translated.value.filter) }).toEqual({ q, count: await Person.countDocuments(q.filter) })
    }
    await Person.deleteOne({ name: 'no-age' })
  })

  it('writes that bypass middleware are reported with the collection name, not mirrored', async () => {
    const labels = { migration: 'people', target: Person.collection.collectionName }
    const before = cutover.metrics.counter('write.unmirrored', labels)
    await Person.collection.insertOne({ name: 'raw' })
    await mongo.connection.db!.collection('people').deleteMany({ name: 'raw' })
    expect(cutover.metrics.counter('write.unmirrored', labels) - before).toBe(2)
  })
})
