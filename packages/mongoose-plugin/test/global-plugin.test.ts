/**
 * `mongoose.plugin(cutoverPlugin, { cutover, models })`: one registration for the whole app; only
 * the models named are migrated, and an unknown migration name is a configuration error at the
 * model's compilation, not at its first write. (Schemas come from the same Mongoose instance: a schema
 * of another instance is converted when compiled and loses its event listeners.)
 */
import { ConfigError, type Cutover } from '@cutover/core'
import mongoose from 'mongoose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTestDatabase, mongodbUrl, type TestDatabase, uniqueName } from '../../../test/setup/services.js'
import { cutoverPlugin } from '../src/index.js'
import { expectStoresEqual, shadowCopyCutover } from './harness.js'

describe('global plugin', () => {
  let control: TestDatabase
  let instance: mongoose.Mongoose
  let connection: mongoose.Connection
  let cutover: Cutover

  beforeAll(async () => {
    control = await createTestDatabase('cutover_global')
    const db = control.db
    instance = new mongoose.Mongoose()
    const engine: { cutover?: Cutover } = {}
    instance.plugin(cutoverPlugin, { cutover: () => engine.cutover as Cutover, models: { Book: 'books' } })
    connection = instance.createConnection(mongodbUrl(), { dbName: uniqueName('cutover_global'), monitorCommands: true })
    await connection.asPromise()
    const Book = connection.model('Book', new instance.Schema({ title: String }, { versionKey: false }))
    connection.model('Note', new instance.Schema({ title: String }, { versionKey: false }))
    const Copy = connection.model('BookCopy', new instance.Schema({ title: String }, { versionKey: false }), 'book_copies')
    cutover = await shadowCopyCutover('books', Book, Copy, db)
    engine.cutover = cutover
  })
  afterAll(async () => {
    await cutover?.close()
    await connection?.dropDatabase().catch(() => {})
    await connection?.close()
    await control?.drop()
  })

  it('mirrors the models it names and leaves the others alone', async () => {
    await connection.model('Book').create([{ title: 'Dune' }, { title: 'Emma' }])
    await connection.model('Note').create({ title: 'not migrated' })
    await connection.model('Book').updateOne({ title: 'Emma' }, { $set: { title: 'Emma (2nd ed.)' } })
    await cutover.drain()
    expect(cutover.metrics.counter('mirror.enqueued', { migration: 'books', direction: 'old-to-new' })).toBe(3)
    await expectStoresEqual(cutover.migration('books').migration)
    expect(await connection.model('BookCopy').countDocuments()).toBe(2)
  })

  it('an unknown migration name fails when the model is compiled', () => {
    const schema = new instance.Schema({ title: String })
    schema.plugin(cutoverPlugin, { cutover, migration: 'no_such_migration' })
    expect(() => connection.model('Orphan', schema)).toThrow(ConfigError)
  })
})
