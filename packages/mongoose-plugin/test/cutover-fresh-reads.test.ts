/**
 * After cutover, under `staleSideWrites: 'permissive'`, a Mongoose write still reaches MongoDB and
 * is mirrored forward; until the mirror has applied it, reads of that key stay on MongoDB. Mongoose
 * accepts a document, or any object with an `_id`, wherever a key goes (`findById(doc)`,
 * `{ _id: doc }`, `findById({ _id: id })`): that is the
 * `_id`, and it must be recognised as the key the write queued (found by Mongoose's own suite, where
 * `User.findById(user)` right after `User.create` came back null from the new store).
 */
import { createCutover, type Cutover, defineMapper, defineMigration, silentLogger } from '@cutover/core'
import mongoose, { Schema } from 'mongoose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { createTestDatabase, createTestMongo, type TestDatabase, type TestMongo } from '../../../test/setup/services.js'
import { cutoverPlugin, MongooseModelStore } from '../src/index.js'

const shape = z.looseObject({ _id: z.string(), name: z.string() })

describe('cutover: reads of a key written but not yet mirrored forward', () => {
  let control: TestDatabase
  let oldMongo: TestMongo
  let newMongo: TestMongo
  let cutover: Cutover
  let User: mongoose.Model<any>
  let newStore: MongooseModelStore

  beforeAll(async () => {
    control = await createTestDatabase('cutover_fresh')
    oldMongo = await createTestMongo('cutover_fresh_old')
    newMongo = await createTestMongo('cutover_fresh_new')
    const engine: { cutover?: Cutover } = {}
    newStore = new MongooseModelStore(newMongo.connection.model('User', new Schema({ name: String })))
    const schema = new Schema({ name: String })
    schema.plugin(cutoverPlugin, { cutover: () => engine.cutover as Cutover, migration: 'users' })
    User = oldMongo.connection.model('User', schema)
    cutover = await createCutover({
      migrations: [
        defineMigration({
          name: 'users',
          gates: false,
          old: new MongooseModelStore(User),
          new: newStore,
          mapper: defineMapper({ old: shape, new: shape, forward: (r) => r, backward: (r) => r }),
          staleSideWrites: 'permissive',
          mirror: { recheckDelayMs: false },
        }),
      ],
      control: control.db,
      env: { CUTOVER_USERS_PHASE: 'cutover', CUTOVER_USERS_COMPARE_SAMPLE: '0' },
      pollIntervalMs: false,
      logger: silentLogger,
    })
    engine.cutover = cutover
  })
  afterAll(async () => {
    await cutover?.close()
    await oldMongo?.drop()
    await newMongo?.drop()
    await control?.drop()
  })

  it('findById(document) and { _id: document } right after create are served by MongoDB', async () => {
    const upsert = newStore.upsert.bind(newStore)
    newStore.upsert = async (records, mode) => {
      await new Promise((resolve) => setTimeout(resolve, 300))
      return upsert(records, mode)
    }
    try {
      const user = await User.create({ name: 'teeee' })
      expect((await User.findById(user).select('name').exec())?.name).toBe('teeee')
      expect(((await User.findOne({ _id: user }).lean().exec()) as { name?: string } | null)?.name).toBe('teeee')
      expect((await User.findById(user._id).exec())?.name).toBe('teeee')
      expect((await User.findById({ _id: user._id }).exec())?.name).toBe('teeee')
      expect(cutover.metrics.counter('read.fresh_fallback', { migration: 'users' })).toBe(4)
    } finally {
      newStore.upsert = upsert
    }
    await cutover.drain()
  })
})
