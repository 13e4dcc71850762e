/**
 * Reads through the plugin, MongoDB → MongoDB with renamed fields (a field-map mapper), so that
 * filter translation, comparison, ramp routing and hydration are all exercised.
 */
import {
  copy,
  createCutover,
  type Cutover,
  defineMigration,
  fieldMapper,
  type LogFields,
  type Logger,
  type Migration,
  rampReadSide,
  rename,
  withCutoverContext,
} from '@cutover/core'
import mongoose, { Schema } from 'mongoose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { createTestDatabase, createTestMongo, type TestDatabase, type TestMongo } from '../../../test/setup/services.js'
import { cutoverPlugin, MongooseModelStore } from '../src/index.js'
import { translateQuery } from '../src/read/query-translation.js'
import { expectStoresEqual } from './harness.js'

interface PersonDoc {
  name: string
  age?: number
  city?: string
}

const oldShape = z.object({ _id: z.string(), name: z.string(), age: z.number().nullish(), city: z.string().nullish() })
const newShape = z.object({ _id: z.string(), fullName: z.string(), years: z.number().nullish(), town: z.string().nullish() })

function capturingLogger(): Logger & { warnings: Array<{ message: string; fields?: LogFields }> } {
  const warnings: Array<{ message: string; fields?: LogFields }> = []
  return { warnings, debug() {}, info() {}, error() {}, warn: (message, fields) => void warnings.push({ message, ...(fields ? { fields } : {}) }) }
}

async function until(condition: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

describe('reads', () => {
  let control: TestDatabase
  let oldMongo: TestMongo
  let newMongo: TestMongo
  let cutover: Cutover
  let migration: Migration<any, any>
  let Person: mongoose.Model<PersonDoc>
  let Copy: mongoose.Model<any>
  let newStore: MongooseModelStore
  const logger = capturingLogger()
  const labels = { migration: 'readers' }
  const counter = (name: string, extra: Record<string, string> = {}) => cutover.metrics.counter(name, { ...labels, ...extra })

  beforeAll(async () => {
    control = await createTestDatabase('cutover_reads')
    oldMongo = await createTestMongo('cutover_reads_old', { monitorCommands: true })
    newMongo = await createTestMongo('cutover_reads_new', { monitorCommands: true })
    const engine: { cutover?: Cutover } = {}
    Copy = newMongo.connection.model('Person', new Schema({ fullName: String, years: Number, town: String }))
    newStore = new MongooseModelStore(Copy)
    const schema = new Schema<PersonDoc>({ name: { type: String, required: true }, age: Number, city: String })
    schema.plugin(cutoverPlugin, { cutover: () => engine.cutover as Cutover, migration: 'readers', reader: newStore })
    Person = oldMongo.connection.model<PersonDoc>('Person', schema)
    migration = defineMigration({
      name: 'readers',
      gates: false,
      old: new MongooseModelStore(Person),
      new: newStore,
      mapper: fieldMapper({ old: oldShape, new: newShape, fields: [copy('_id'), rename('name', 'fullName'), rename('age', 'years'), rename('city', 'town')] }),
      mirror: { recheckDelayMs: false },
    })
    cutover = await createCutover({ migrations: [migration], control: control.db, env: {}, pollIntervalMs: false, logger })
    engine.cutover = cutover
    await cutover.setPhase('readers', 'shadow', { actor: 'test' })
    const cities = ['Paris', 'Lyon', 'Nice', undefined]
    await Person.insertMany(Array.from({ length: 40 }, (_, i) => ({ name: `p${String(i).padStart(2, '0')}`, age: 20 + (i % 15), ...(cities[i % 4] ? { city: cities[i % 4] } : {}) })))
    await cutover.drain()
    await expectStoresEqual(migration)
  })
  afterAll(async () => {
    await cutover?.close()
    await oldMongo?.drop()
    await newMongo?.drop()
    await control?.drop()
  })

  it('translated queries return the same documents from both stores', async () => {
    const queries: Array<{ filter: Record<string, unknown>; sort?: Record<string, 1 | -1>; limit?: number; skip?: number }> = [
      { filter: { age: { $gte: 25, $lt: 30 } }, sort: { age: 1, name: 1 } },
      { filter: { city: { $in: ['Paris', 'Nice'] } }, sort: { name: -1 }, limit: 5, skip: 2 },
      { filter: { city: { $nin: ['Paris'] } }, sort: { name: 1 } },
      { filter: { city: { $exists: false } }, sort: { name: 1 } },
      { filter: { city: null }, sort: { name: 1 } },
      { filter: { city: { $ne: 'Lyon' }, age: { $lte: 22 } }, sort: { name: 1 } },
      { filter: { $or: [{ name: 'p01' }, { $and: [{ age: 34 }, { city: 'Lyon' }] }] }, sort: { name: 1 } },
      { filter: { name: { $eq: 'p07' } } },
      { filter: {}, sort: { age: -1, name: 1 }, limit: 7 },
    ]
    const mapping = { oldKey: '_id', newKey: '_id', fieldMap: migration.mapper.fieldMap, arrayPaths: new Set<string>() }
    for (const q of queries) {
      const fromOld = await Person.find(q.filter).sort(q.sort ?? {}).skip(q.skip ?? 0).limit(q.limit ?? 0).lean()
      const translated = translateQuery({ filter: Person.find(q.filter).cast(Person), sort: q.sort, limit: q.limit, skip: q.skip }, mapping)
      expect(translated.ok).toBe(true)
      if (!translated.ok) continue
      const fromNew = await newStore.find(translated.value)
      expect(fromNew.map((row) => row.fullName)).toEqual(fromOld.map((doc) => doc.name))
      expect(fromOld.length).toBeGreaterThan(0)
      const comparison = cutover.migration('readers').compareRead(fromOld.map((d) => ({ ...d, _id: String(d._id) })), fromNew)
      expect(comparison.equal).toBe(true)
    }
    expect(translateQuery({ filter: { name: /p1/ } }, mapping).ok).toBe(false)
    expect(translateQuery({ filter: { nickname: 'x' } }, mapping).ok).toBe(false)
  })

  it('compare: sampled reads are compared off the request path, by translation or by key, and mismatches name key and field', async () => {
    await cutover.setPhase('readers', 'compare', { actor: 'test', compareSample: 1 })
    const before = counter('compare.equal')
    const ada = await Person.findOne({ name: 'p03' })
    await Person.findById(ada!._id)
    await Person.find({ age: { $gt: 30 } }).sort({ name: 1 })
    await Person.find({ name: /^p1/ }) // untranslatable: compared by key
    await Person.find({ city: 'Paris' }).select({ name: 1 }) // projected: whole documents compared
    expect(await Person.countDocuments({ city: 'Lyon' })).toBe(10)
    await until(() => counter('compare.equal') - before === 6, 'six comparisons')
    expect(counter('compare.mismatch')).toBe(0)

    // The new store drifts (written behind the mirror's back): the next read of that key reports it.
    await Copy.collection.updateOne({ _id: ada!._id }, { $set: { years: 99 } })
    await Person.findById(ada!._id)
    await until(() => counter('compare.mismatch') === 1, 'a mismatch')
    const warning = logger.warnings.find((w) => w.message === 'read mismatch between old and new store')
    expect(JSON.stringify(warning?.fields)).toContain(String(ada!._id))
    expect(JSON.stringify(warning?.fields)).toContain('"path":"years"')
    await Copy.collection.updateOne({ _id: ada!._id }, { $set: { years: ada!.age } })
  })

  it('ramp: routing is consistent per key, hydrated documents behave like MongoDB ones, lean stays lean', async () => {
    await cutover.setPhase('readers', 'ramp', { actor: 'test', readPercent: 50, compareSample: 0 })
    // Mongoose queries are lazy: they must run (exec/await) inside the context, not just be built there.
    const people = await Person.find().sort({ name: 1 }).lean()
    let servedNew = 0
    for (const person of people) {
      const routingKey = `user-${person.name}`
      const expected = rampReadSide(50, { routingKey })
      for (let attempt = 0; attempt < 3; attempt++) {
        const before = counter('read.ok', { side: 'new' })
        const doc = await withCutoverContext({ routingKey }, () => Person.findById(person._id).exec())
        expect(counter('read.ok', { side: 'new' }) - before).toBe(expected === 'new' ? 1 : 0)
        expect(doc?.name).toBe(person.name)
        expect(doc?.age).toBe(person.age)
      }
      if (expected === 'new') servedNew++
    }
    expect(servedNew).toBeGreaterThan(5)
    expect(servedNew).toBeLessThan(people.length - 5)

    const newKey = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'].map((k) => `key-${k}`).find((k) => rampReadSide(50, { routingKey: k }) === 'new')!
    const target = people[5]!
    const before = counter('read.ok', { side: 'new' })
    const hydrated = await withCutoverContext({ routingKey: newKey }, () => Person.findOne({ _id: target._id }).exec())
    const lean = await withCutoverContext({ routingKey: newKey }, () => Person.findById(target._id).lean().exec())
    const list = await withCutoverContext({ routingKey: newKey }, () => Person.find({ age: target.age }).sort({ name: 1 }).exec())
    expect(counter('read.ok', { side: 'new' }) - before).toBe(3)
    expect(hydrated).toBeInstanceOf(Person)
    expect(hydrated!.isNew).toBe(false)
    expect(hydrated!._id).toBeInstanceOf(mongoose.Types.ObjectId)
    expect(lean).not.toBeInstanceOf(Person)
    expect(lean?._id).toBeInstanceOf(mongoose.Types.ObjectId)
    expect(lean?.name).toBe(target.name)
    expect(list.map((d) => d.name)).toEqual((await Person.find({ age: target.age }).sort({ name: 1 }).lean()).map((d) => d.name))
    hydrated!.city = 'Marseille'
    await hydrated!.save()
    await cutover.drain()
    expect((await Person.findById(target._id).lean())?.city).toBe('Marseille')
    await expectStoresEqual(migration)

    const untranslatable = counter('read.untranslatable')
    const viaRegex = await withCutoverContext({ routingKey: newKey }, () => Person.find({ name: /^p0/ }).lean().exec())
    expect(viaRegex).toHaveLength(10)
    expect(counter('read.untranslatable') - untranslatable).toBe(1)

    // A failing new store: the read falls back to MongoDB and the application sees no error.
    const get = newStore.get.bind(newStore)
    newStore.get = async () => {
      throw new Error('new store down')
    }
    try {
      const fallback = counter('read.fallback')
      const doc = await withCutoverContext({ routingKey: newKey }, () => Person.findById(target._id).exec())
      expect(doc?.name).toBe(target.name)
      expect(counter('read.fallback') - fallback).toBe(1)
      expect(counter('read.error', { side: 'new' })).toBeGreaterThan(0)
    } finally {
      newStore.get = get
    }
  })

  it('ramp 100: a read right after a write of the same key sees the write (read-your-writes), and is counted', async () => {
    await cutover.setPhase('readers', 'ramp', { actor: 'test', readPercent: 100, compareSample: 0 })
    const target = (await Person.findOne({ name: 'p11' }).lean())!
    // The mirror is slow to apply: without read-your-writes the new store would serve the old value.
    const upsert = newStore.upsert.bind(newStore)
    newStore.upsert = async (records, mode) => {
      await new Promise((resolve) => setTimeout(resolve, 300))
      return upsert(records, mode)
    }
    try {
      const fresh = counter('read.fresh_fallback')
      const served = counter('read.ok', { side: 'new' })
      await Person.updateOne({ _id: target._id }, { $set: { age: 77 } })
      const asUser = <T>(read: () => Promise<T>) => withCutoverContext({ routingKey: 'user-1' }, read)
      expect((await asUser(() => Person.findById(target._id).exec()))?.age).toBe(77)
      expect((await asUser(() => Person.find({ age: 77 }).lean().exec())).map((d) => d.name)).toEqual(['p11'])
      expect(counter('read.fresh_fallback') - fresh).toBe(2)
      expect(counter('read.ok', { side: 'new' }) - served).toBe(0)
      await cutover.drain()
      expect((await asUser(() => Person.findById(target._id).exec()))?.age).toBe(77)
      expect(counter('read.ok', { side: 'new' }) - served).toBe(1)
    } finally {
      newStore.upsert = upsert
    }
    await Person.updateOne({ _id: target._id }, { $set: { age: target.age } })
    await cutover.drain()
  })

  it('cutover: translatable reads come from the new store, sampled against MongoDB', async () => {
    await cutover.setPhase('readers', 'cutover', { actor: 'test', compareSample: 1 })
    const before = { served: counter('read.ok', { side: 'new' }), equal: counter('compare.equal') }
    const docs = await Person.find({ city: 'Nice' }).sort({ name: 1 })
    const count = await Person.countDocuments({ age: { $gte: 30 } })
    expect(docs.map((d) => d.name)).toEqual((await Person.collection.find({ city: 'Nice' }).sort({ name: 1 }).toArray()).map((d) => d.name))
    expect(count).toBe(await Person.collection.countDocuments({ age: { $gte: 30 } }))
    expect(counter('read.ok', { side: 'new' }) - before.served).toBe(2)
    await until(() => counter('compare.equal') - before.equal === 2, 'two comparisons')
    expect(counter('compare.mismatch')).toBe(1) // the drift planted in the compare test, nothing since
  })
})

