/**
 * Writes of documents with legal but unusual keys: `_id: null` (an upsert of `{ _id: null }`
 * stores one), and keys of mixed types under a `Mixed` key path. Each key is mirrored when it has
 * a Store form that reads the same document back, and otherwise reported as unmirrored and
 * counted; one such key never costs the other keys of the same write their mirroring.
 */
import { createCutover, type Cutover, defineMapper, defineMigration, keyString, type Migration, silentLogger, withCutoverContext } from '@cutover/core'
import mongoose, { Schema } from 'mongoose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { createTestDatabase, createTestMongo, type TestDatabase, type TestMongo } from '../../../test/setup/services.js'
import { cutoverPlugin, MongooseModelStore } from '../src/index.js'
import { readAll } from './harness.js'

const shape = z.object({ _id: z.union([z.string(), z.number()]), title: z.string() })

describe('writes with unusual keys are mirrored or reported, never skipped silently', () => {
  let control: TestDatabase
  let oldMongo: TestMongo
  let newMongo: TestMongo
  let cutover: Cutover
  let migration: Migration<any, any>
  let Thing: mongoose.Model<any>
  const unmirrored = () => cutover.metrics.counter('write.unmirrored', { migration: 'things', target: Thing.collection.collectionName })
  const mirroredKeys = async () => (await readAll(migration.new)).map((row) => keyString(row._id as string)).sort()

  beforeAll(async () => {
    control = await createTestDatabase('cutover_keys')
    oldMongo = await createTestMongo('cutover_keys_old')
    newMongo = await createTestMongo('cutover_keys_new')
    const engine: { cutover?: Cutover } = {}
    const schema = new Schema({ _id: Schema.Types.Mixed, title: String })
    schema.plugin(cutoverPlugin, { cutover: () => engine.cutover as Cutover, migration: 'things' })
    Thing = oldMongo.connection.model('Thing', schema)
    migration = defineMigration({
      name: 'things',
      old: new MongooseModelStore(Thing),
      new: new MongooseModelStore(newMongo.connection.model('Thing', new Schema({ _id: Schema.Types.Mixed, title: String }))),
      mapper: defineMapper({ old: shape, new: shape, forward: (r) => r, backward: (r) => r }),
      mirror: { recheckDelayMs: false },
    })
    cutover = await createCutover({ migrations: [migration], control: control.db, env: { CUTOVER_THINGS_PHASE: 'shadow' }, pollIntervalMs: false, logger: silentLogger })
    engine.cutover = cutover
  })
  afterAll(async () => {
    await cutover?.close()
    await oldMongo?.drop()
    await newMongo?.drop()
    await control?.drop()
  })

  it('one write of mixed key types: strings and numbers are mirrored, a Date and an embedded document are reported', async () => {
    const before = unmirrored()
    await Thing.insertMany([
      { _id: 'k-1', title: 'string' },
      { _id: 7, title: 'number' },
      { _id: new Date(0), title: 'date' },
      { _id: { region: 'eu', n: 1 }, title: 'embedded' },
      { _id: 'k-2', title: 'string after' },
    ])
    await cutover.drain()
    expect(await mirroredKeys()).toEqual(['7', 'k-1', 'k-2'])
    expect(unmirrored() - before).toBe(2)
  })

  it('an upsert that stores `_id: null` is reported, and updates of it are too', async () => {
    const before = unmirrored()
    await Thing.updateOne({ _id: null }, { $set: { title: 'null key' } }, { upsert: true })
    expect(await Thing.collection.countDocuments({ _id: null } as object)).toBe(1)
    await Thing.updateOne({ _id: null }, { $set: { title: 'null key, again' } })
    await Thing.deleteOne({ _id: null })
    await cutover.drain()
    expect(unmirrored() - before).toBe(3)
    expect(await mirroredKeys()).toEqual(['7', 'k-1', 'k-2'])
  })

  it('in ramp, a read by a key that has no Store form stays on MongoDB (the new store never gets it)', async () => {
    await cutover.setPhase('things', 'compare', { actor: 'test', compareSample: 0, force: true, reason: 'unusual keys test' })
    await cutover.setPhase('things', 'ramp', { actor: 'test', readPercent: 100, compareSample: 0, force: true, reason: 'unusual keys test' })
    await withCutoverContext({ routingKey: 'user-1' }, async () => {
      expect((await Thing.findById(new Date(0)).lean<{ title: string }>())?.title).toBe('date')
      expect((await Thing.findById(7).lean<{ title: string }>())?.title).toBe('number')
    })
    expect(cutover.metrics.counter('read.ok', { migration: 'things', side: 'new' })).toBe(1)
  })
})
