/**
 * Writes inside a session transaction are mirrored after the commit and dropped on abort. FerretDB
 * v1 has no transactions: this file runs only against a server that has them (MONGODB_URL pointing
 * at a replica set or sharded cluster) and is reported as skipped otherwise; the commit/abort
 * bookkeeping itself is covered by transaction-buffer.test.ts everywhere.
 */
import type { Cutover } from '@cutover/core'
import mongoose from 'mongoose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTestDatabase, mongodbUrl, type TestDatabase, uniqueName } from '../../../test/setup/services.js'
import { cutoverPlugin } from '../src/index.js'
import { expectStoresEqual, shadowCopyCutover } from './harness.js'

async function supportsTransactions(): Promise<boolean> {
  const probe = mongoose.createConnection(mongodbUrl(), { serverSelectionTimeoutMS: 10_000 })
  try {
    await probe.asPromise()
    const hello = await probe.db!.admin().command({ hello: 1 })
    return Boolean(hello.setName) || hello.msg === 'isdbgrid'
  } finally {
    await probe.close()
  }
}

const supported = await supportsTransactions()

describe.runIf(supported)('transactions', () => {
  let control: TestDatabase
  let connection: mongoose.Connection
  let cutover: Cutover
  let Note: mongoose.Model<{ title: string }>
  const enqueued = () => cutover.metrics.counter('mirror.enqueued', { migration: 'notes', direction: 'old-to-new' })

  beforeAll(async () => {
    control = await createTestDatabase('cutover_txn')
    const db = control.db
    connection = mongoose.createConnection(mongodbUrl(), { dbName: uniqueName('cutover_txn'), monitorCommands: true })
    await connection.asPromise()
    const engine: { cutover?: Cutover } = {}
    const schema = new mongoose.Schema({ title: String }, { versionKey: false })
    schema.plugin(cutoverPlugin, { cutover: () => engine.cutover as Cutover, migration: 'notes' })
    Note = connection.model<{ title: string }>('Note', schema)
    const Copy = connection.model('NoteCopy', new mongoose.Schema({ title: String }, { versionKey: false }), 'note_copies')
    await Note.createCollection()
    await Copy.createCollection()
    cutover = await shadowCopyCutover('notes', Note, Copy, db)
    engine.cutover = cutover
  })
  afterAll(async () => {
    await cutover?.close()
    await connection?.dropDatabase().catch(() => {})
    await connection?.close()
    await control?.drop()
  })

  it('mirrors after commit, not before', async () => {
    const before = enqueued()
    const session = await connection.startSession()
    await session.withTransaction(async () => {
      const [note] = await Note.create([{ title: 'draft' }], { session })
      await Note.updateOne({ _id: note!._id }, { $set: { title: 'final' } }, { session })
      expect(enqueued() - before).toBe(0)
    })
    await session.endSession()
    await cutover.drain()
    expect(enqueued() - before).toBe(2) // two committed writes of one document (the queue coalesces them by key)
    await expectStoresEqual(cutover.migration('notes').migration)
  })

  it('drops the mirror events of an aborted transaction', async () => {
    const before = enqueued()
    const session = await connection.startSession()
    session.startTransaction()
    await Note.create([{ title: 'never' }], { session })
    await session.abortTransaction()
    await session.endSession()
    await cutover.drain()
    expect(enqueued() - before).toBe(0)
    expect(await Note.countDocuments({ title: 'never' })).toBe(0)
  })
})

describe.skipIf(supported)('transactions (server without them)', () => {
  it.skip('FerretDB v1 has no transactions: the commit/abort path is covered by transaction-buffer.test.ts', () => {})
})
