/**
 * Nothing the plugin does in the background (comparison lookups, comparisons, captures) may throw
 * into the application's process. Compared reads of documents without a usable key — a
 * `{ _id: false }` schema, `_id: null`, a lean `transform` deleting `_id`, a result answered from a
 * cache by `skipMiddlewareFunction` — are the cases that used to end the process with a TypeError
 * from `KeyLookupBatch`'s timer.
 */
import { createCutover, type Cutover, defineMapper, defineMigration, type LogFields, type Logger } from '@cutover/core'
import mongoose, { Schema } from 'mongoose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { createTestDatabase, createTestMongo, type TestDatabase, type TestMongo } from '../../../test/setup/services.js'
import { cutoverPlugin, MongooseModelStore } from '../src/index.js'

const shape = z.object({ _id: z.string().nullish(), title: z.string().nullish() }).passthrough()

function collectingLogger(): Logger & { entries: Array<{ level: string; message: string; fields?: LogFields }> } {
  const entries: Array<{ level: string; message: string; fields?: LogFields }> = []
  const log = (level: string) => (message: string, fields?: LogFields) => void entries.push({ level, message, ...(fields ? { fields } : {}) })
  return { entries, debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') }
}

/** Everything the process would have died of while `fn` and the background work it started ran. */
async function escapedErrors(fn: () => Promise<void>): Promise<unknown[]> {
  const escaped: unknown[] = []
  const onError = (error: unknown) => void escaped.push(error)
  process.on('uncaughtException', onError)
  process.on('unhandledRejection', onError)
  try {
    await fn()
    await new Promise((resolve) => setTimeout(resolve, 300)) // lookups linger 50 ms, comparisons follow
  } finally {
    process.off('uncaughtException', onError)
    process.off('unhandledRejection', onError)
  }
  return escaped
}

describe('background work never throws into the application', () => {
  let control: TestDatabase
  let oldMongo: TestMongo
  let newMongo: TestMongo
  let cutover: Cutover
  const logger = collectingLogger()
  const models: Record<string, mongoose.Model<any>> = {}

  beforeAll(async () => {
    control = await createTestDatabase('cutover_bg')
    oldMongo = await createTestMongo('cutover_bg_old')
    newMongo = await createTestMongo('cutover_bg_new')
    const engine: { cutover?: Cutover } = {}
    const variants = {
      NoId: new Schema({ title: String }, { _id: false }),
      Plain: new Schema({ title: String }),
    }
    const migrations = Object.entries(variants).map(([name, schema]) => {
      const copy = newMongo.connection.model(name, new Schema({ _id: Schema.Types.Mixed, title: String }))
      schema.pre('findOne', function answerFromCache(this: any) {
        if (this.getOptions().comment === 'cached') throw mongoose.skipMiddlewareFunction({ title: 'from the cache' })
      })
      schema.plugin(cutoverPlugin, { cutover: () => engine.cutover as Cutover, migration: name.toLowerCase() })
      models[name] = oldMongo.connection.model(name, schema)
      return defineMigration({
        gates: false,
        name: name.toLowerCase(),
        old: new MongooseModelStore(models[name]!),
        new: new MongooseModelStore(copy),
        mapper: defineMapper({ old: shape, new: shape, forward: (r) => r, backward: (r) => r }),
        mirror: { recheckDelayMs: false },
      })
    })
    cutover = await createCutover({ migrations, control: control.db, env: {}, pollIntervalMs: false, logger })
    engine.cutover = cutover
    await models.NoId!.collection.insertOne({ title: 'no id in the schema' })
    await models.Plain!.create({ title: 'plain' })
  })
  afterAll(async () => {
    await cutover?.close()
    await oldMongo?.drop()
    await newMongo?.drop()
    await control?.drop()
  })

  /** Walks the migration forward to `phase` (from `off` or `rollback`), each step allowed by the transition table. */
  async function moveTo(migration: string, phase: 'compare' | 'ramp' | 'cutover' | 'rollback'): Promise<void> {
    if (phase === 'rollback') return void (await cutover.setPhase(migration, 'rollback', { actor: 'test' }))
    const current = cutover.migration(migration).phase
    if (current !== 'off' && current !== 'rollback') await cutover.setPhase(migration, 'rollback', { actor: 'test' })
    const path = ['shadow', 'compare', 'ramp', 'cutover'] as const
    for (const step of path.slice(0, path.indexOf(phase) + 1)) {
      await cutover.setPhase(migration, step, { actor: 'test', compareSample: 1, ...(step === 'ramp' ? { readPercent: 100 } : {}) })
    }
  }

  for (const phase of ['compare', 'ramp', 'cutover'] as const) {
    it(`${phase}: compared reads of documents without a usable key raise no uncaughtException or unhandledRejection`, async () => {
      for (const name of Object.keys(models)) await moveTo(name.toLowerCase(), phase)
      const escaped = await escapedErrors(async () => {
        expect(await models.NoId!.find({ title: 'no id in the schema' })).toHaveLength(1)
        // The driver gives an inserted `_id: null` an ObjectId; a null key reaches reads through transforms and projections.
        const nulled = await models.Plain!.find({ title: 'plain' }).lean({ transform: (doc: Record<string, unknown>) => Object.assign(doc, { _id: null }) })
        expect(nulled[0]?._id).toBeNull()
        expect((await models.Plain!.findOne({ title: 'plain' }).select('-_id'))?._id).toBeUndefined()
        const transformed = await models.Plain!.find({ title: 'plain' }).lean({
          transform: (doc: Record<string, unknown>) => {
            delete doc._id
            return doc
          },
        })
        expect(transformed[0]).not.toHaveProperty('_id')
        expect(await models.Plain!.findOne({ title: 'plain' }).comment('cached')).toMatchObject({ title: 'from the cache' })
      })
      expect(escaped).toEqual([])
      await cutover.drain()
      for (const name of Object.keys(models)) await moveTo(name.toLowerCase(), 'rollback')
    })
  }

  it('keyless documents are counted as skipped comparisons; a comparison that throws is counted and logged', async () => {
    const counters = cutover.metrics.snapshot().counters
    expect(counters['compare.skipped{migration=plain}']).toBeGreaterThan(0)
    expect(logger.entries.some((e) => e.message.includes('no usable key'))).toBe(true)

    await moveTo('plain', 'compare')
    const store = cutover.migration('plain').migration.new
    const get = store.get
    store.get = () => {
      throw new Error('new store driver threw synchronously')
    }
    try {
      const failed = cutover.metrics.counter('compare.failed', { migration: 'plain' })
      const escaped = await escapedErrors(async () => void (await models.Plain!.find({ title: 'plain' })))
      expect(escaped).toEqual([])
      expect(cutover.metrics.counter('compare.failed', { migration: 'plain' })).toBe(failed + 1)
      expect(logger.entries.some((e) => e.level === 'warn' && e.message === 'read comparison failed' && String(e.fields?.error).includes('synchronously'))).toBe(true)
    } finally {
      store.get = get
    }
  })
})
