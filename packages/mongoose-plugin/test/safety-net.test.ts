/**
 * The safety net after `complete` on a MongoDB old store (FerretDB): the server cannot be made
 * read-only for one collection, so the plugin refuses every write that reaches the old model, even
 * under `staleSideWrites: 'permissive'`, until `cutover release`; inside the revert window the reverse mirror still keeps the
 * old collection current.
 */
import { createCutover, type Cutover, defineMapper, defineMigration, silentLogger, WriteRejectedError } from '@cutover/core'
import mongoose from 'mongoose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { createTestDatabase, mongodbUrl, type TestDatabase, uniqueName } from '../../../test/setup/services.js'
import { cutoverPlugin, MongooseModelStore } from '../src/index.js'

const titled = z.object({ _id: z.string(), title: z.string() })

describe('the safety net after complete, MongoDB old store', () => {
  let control: TestDatabase
  let connection: mongoose.Connection
  let cutover: Cutover
  let Book: mongoose.Model<any>
  let Copy: mongoose.Model<any>

  beforeAll(async () => {
    control = await createTestDatabase('cutover_mongo_net')
    connection = await mongoose.createConnection(mongodbUrl(), { dbName: uniqueName('cutover_mongo_net') }).asPromise()
    const engine: { cutover?: Cutover } = {}
    const schema = new mongoose.Schema({ title: String }, { versionKey: false })
    schema.plugin(cutoverPlugin, { cutover: () => engine.cutover, migration: 'books' })
    Book = connection.model('Book', schema)
    Copy = connection.model('BookCopy', new mongoose.Schema({ title: String }, { versionKey: false }), 'book_copies')
    const migration = defineMigration({
      name: 'books',
      gates: { shadow: { minDwellMs: 0 }, compare: { minDwellMs: 0 }, ramp: { minFullReadsMs: 0 }, cutover: { minDwellMs: 0 }, complete: { revertWindowMs: 3_600_000 } },
      old: new MongooseModelStore(Book),
      new: new MongooseModelStore(Copy),
      mapper: defineMapper({ old: titled, new: titled, forward: (r) => r, backward: (r) => r, lossless: true }),
      staleSideWrites: 'permissive',
      mirror: { recheckDelayMs: false },
    })
    cutover = await createCutover({ migrations: [migration], control: control.db, env: {}, pollIntervalMs: false, signalIntervalMs: false, logger: silentLogger })
    engine.cutover = cutover
    await Book.create({ title: 'before' })
    for (const phase of ['shadow', 'compare', 'ramp', 'cutover', 'complete'] as const) {
      await cutover.setPhase('books', phase, { actor: 'test', force: true, reason: 'safety net test' })
    }
  })
  afterAll(async () => {
    await cutover?.close()
    await connection?.dropDatabase().catch(() => {})
    await connection?.close()
    await control?.drop()
  })

  it('refuses an old-side write through the plugin even when stale-side writes are permissive, until release', async () => {
    expect(cutover.migration('books').phase).toBe('complete')
    await expect(Book.create({ title: 'late' })).rejects.toBeInstanceOf(WriteRejectedError)
    await expect(Book.updateOne({ title: 'before' }, { title: 'changed' })).rejects.toBeInstanceOf(WriteRejectedError)
    expect(await Book.countDocuments({ title: 'late' })).toBe(0)

    // Inside the revert window the new store's writes still reach the old collection.
    const { _id } = await Copy.create({ title: 'written on new' })
    cutover.migration('books').recordWrite('new', { key: String(_id), op: 'upsert' })
    await cutover.drain()
    expect(await Book.countDocuments({ title: 'written on new' })).toBe(1)

    await cutover.releaseSafetyNet('books', { actor: 'ops', reason: 'archive exported' })
    expect(cutover.migration('books').behavior.mirror).toBe('none')
    // Released: the migration's own policy (here permissive) applies to old-side writes again.
    await expect(Book.create({ title: 'after release' })).resolves.toBeDefined()
  })
})
