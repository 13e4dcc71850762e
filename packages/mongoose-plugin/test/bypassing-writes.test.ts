/**
 * Writes that bypass the plugin (`Model.collection.*`, `connection.db.collection(…)`) are still
 * reported as unmirrored, and when the write names its keys (inserted `_id`s, a filter pinning
 * `_id`) those keys are also handed to the mirror once the write has finished: the new store gets
 * them, and a ramp read of such a key right after the write does not come back empty from the new
 * store (found by Mongoose's own suite, whose tests seed documents through `Model.collection` and
 * then `findOne` them). Both detection sources: driver command events (`monitorCommands: true`)
 * and Mongoose's operation events (without it).
 */
import { createCutover, type Cutover, defineMapper, defineMigration, silentLogger, withCutoverContext } from '@cutover/core'
import mongoose, { Schema } from 'mongoose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { createTestDatabase, createTestMongo, type TestDatabase, type TestMongo } from '../../../test/setup/services.js'
import { cutoverPlugin, MongooseModelStore } from '../src/index.js'

const shape = z.object({ _id: z.number(), age: z.number().optional(), name: z.string().optional() })

for (const monitorCommands of [true, false]) {
  describe(`writes that bypass the plugin (monitorCommands: ${monitorCommands})`, () => {
    let control: TestDatabase
    let oldMongo: TestMongo
    let newMongo: TestMongo
    let cutover: Cutover
    let Beta: mongoose.Model<any>
    let newStore: MongooseModelStore
    const unmirrored = () => cutover.metrics.counter('write.unmirrored', { migration: 'betas', target: Beta.collection.collectionName })

    beforeAll(async () => {
      control = await createTestDatabase('cutover_bypass')
      oldMongo = await createTestMongo('cutover_bypass_old', { monitorCommands })
      newMongo = await createTestMongo('cutover_bypass_new')
      const engine: { cutover?: Cutover } = {}
      newStore = new MongooseModelStore(newMongo.connection.model('Beta', new Schema({ _id: Number, age: Number, name: String }, { versionKey: false })))
      const schema = new Schema({ _id: Number, age: Number, name: { type: String, default: 'x' } }, { versionKey: false })
      schema.plugin(cutoverPlugin, { cutover: () => engine.cutover as Cutover, migration: 'betas' })
      Beta = oldMongo.connection.model('Beta', schema)
      cutover = await createCutover({
        migrations: [
          defineMigration({
            name: 'betas',
            gates: false,
            old: new MongooseModelStore(Beta),
            new: newStore,
            mapper: defineMapper({ old: shape, new: shape, forward: (r) => r, backward: (r) => r }),
            mirror: { recheckDelayMs: false },
          }),
        ],
        control: control.db,
        env: { CUTOVER_BETAS_PHASE: 'ramp', CUTOVER_BETAS_READ_PERCENT: '100', CUTOVER_BETAS_COMPARE_SAMPLE: '0' },
        pollIntervalMs: false,
        logger: silentLogger,
      })
      engine.cutover = cutover
      await Beta.countDocuments() // the model's first operation binds it (and starts detection)
    })
    afterAll(async () => {
      await cutover?.close()
      await oldMongo?.drop()
      await newMongo?.drop()
      await control?.drop()
    })

    it('are reported, mirrored by key, and read back fresh right after', async () => {
      await withCutoverContext({ routingKey: 'user-1' }, async () => {
        const before = unmirrored()
        await Beta.collection.insertOne({ age: 21, _id: 1 } as any)
        expect((await Beta.findOne({ _id: 1 }).setOptions({ defaults: false }))?.toObject()).toEqual({ _id: 1, age: 21 })
        await Beta.collection.updateOne({ _id: 1 } as any, { $set: { age: 22 } })
        expect(((await Beta.findById(1).lean()) as { age?: number } | null)?.age).toBe(22)
        await cutover.drain()
        expect((await newStore.get([1])).get('1')).toMatchObject({ _id: 1, age: 22 })
        await Beta.collection.deleteOne({ _id: 1 } as any)
        await cutover.drain()
        expect((await newStore.get([1])).size).toBe(0)
        expect(unmirrored() - before).toBe(3)
      })
    })
  })
}
