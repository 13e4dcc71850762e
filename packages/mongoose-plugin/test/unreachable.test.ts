/**
 * An unreachable, still-opening or closed MongoDB changes nothing the application sees: writes
 * through the plugin fail as they fail without it (Mongoose's buffering timeout), and
 * `MongooseModelStore` waits for a connection that is opening, fails cleanly on a closed one, and
 * leaves nothing to reject unhandled later.
 */
import { createServer } from 'node:net'
import { createCutover, type Cutover, defineMapper, defineMigration, silentLogger, StoreError } from '@cutover/core'
import mongoose, { Schema } from 'mongoose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { createTestDatabase, createTestMongo, mongodbUrl, uniqueName, type TestDatabase, type TestMongo } from '../../../test/setup/services.js'
import { cutoverPlugin, MongooseModelStore } from '../src/index.js'

const titled = z.object({ _id: z.string(), title: z.string() })
const BUFFER_TIMEOUT_MS = 300

async function closedPort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  await new Promise((resolve) => server.close(resolve))
  return port
}

/** Rejections nobody handled while `fn` ran and for `settleMs` after. */
async function unhandledDuring(fn: () => Promise<void>, settleMs: number): Promise<unknown[]> {
  const unhandled: unknown[] = []
  const onError = (error: unknown) => void unhandled.push(error)
  process.on('unhandledRejection', onError)
  process.on('uncaughtException', onError)
  try {
    await fn()
    await new Promise((resolve) => setTimeout(resolve, settleMs))
  } finally {
    process.off('unhandledRejection', onError)
    process.off('uncaughtException', onError)
  }
  return unhandled
}

describe('an unreachable or closed MongoDB', () => {
  let control: TestDatabase
  let live: TestMongo
  let cutover: Cutover
  let dead: mongoose.Connection
  let WithPlugin: mongoose.Model<any>
  let WithoutPlugin: mongoose.Model<any>

  beforeAll(async () => {
    control = await createTestDatabase('cutover_unreachable')
    live = await createTestMongo('cutover_unreachable_new')
    const port = await closedPort()
    dead = mongoose.createConnection(`mongodb://127.0.0.1:${port}/nothing`, { serverSelectionTimeoutMS: 200, bufferTimeoutMS: BUFFER_TIMEOUT_MS } as mongoose.ConnectOptions)
    dead.on('error', () => {}) // the failed initial connection, as an application would log it
    const engine: { cutover?: Cutover } = {}
    const schema = new Schema({ title: String })
    schema.plugin(cutoverPlugin, { cutover: () => engine.cutover as Cutover, migration: 'unreachable' })
    WithPlugin = dead.model('Item', schema)
    WithoutPlugin = dead.model('Plain', new Schema({ title: String }), 'items')
    cutover = await createCutover({
      migrations: [
        defineMigration({
          name: 'unreachable',
          old: new MongooseModelStore(WithPlugin),
          new: new MongooseModelStore(live.connection.model('Item', new Schema({ title: String }))),
          mapper: defineMapper({ old: titled, new: titled, forward: (r) => r, backward: (r) => r }),
          mirror: { recheckDelayMs: false },
        }),
      ],
      control: control.db,
      env: { CUTOVER_UNREACHABLE_PHASE: 'shadow' },
      pollIntervalMs: false,
      logger: silentLogger,
    })
    engine.cutover = cutover
  })
  afterAll(async () => {
    await cutover?.close()
    await dead?.close().catch(() => undefined)
    await live?.drop()
    await control?.drop()
  })

  it('Model.create through the plugin fails after the buffering timeout with the error it gives without the plugin', async () => {
    const without = await WithoutPlugin.create({ title: 'a' }).then(
      () => 'created',
      (error: Error) => error,
    )
    const started = performance.now()
    const withPlugin = await Promise.race([
      WithPlugin.create({ title: 'a' }).then(
        () => 'created',
        (error: Error) => error,
      ),
      new Promise((resolve) => setTimeout(() => resolve('still waiting'), 4 * BUFFER_TIMEOUT_MS)),
    ])
    expect(without).toBeInstanceOf(mongoose.Error)
    expect(withPlugin).toBeInstanceOf(mongoose.Error)
    // Both models use the collection `items`: the messages are the same, word for word.
    expect((withPlugin as Error).message).toBe((without as Error).message)
    expect(performance.now() - started).toBeGreaterThanOrEqual(BUFFER_TIMEOUT_MS - 10)
  })

  it('MongooseModelStore on a connection that is still opening waits for it, then reads and writes', async () => {
    const opening = mongoose.createConnection()
    const Item = opening.model('Item', new Schema({ title: String }))
    const store = new MongooseModelStore(Item, { name: 'opening' })
    const unhandled = await unhandledDuring(async () => {
      const id = new mongoose.Types.ObjectId().toHexString()
      const written = store.upsert([{ _id: id, title: 'while opening' }], { kind: 'overwrite' })
      const read = store.get([id])
      const scanned = store.scan({ limit: 10 })
      await opening.openUri(mongodbUrl(), { dbName: uniqueName('cutover_opening') })
      expect(await written).toEqual({ written: 1, skipped: 0 })
      const found = await read
      // The read may run before or after the write: what matters is that it ran, on a cursor.
      expect(found.size === 0 || found.get(id)?.title === 'while opening').toBe(true)
      expect(Array.isArray(await scanned)).toBe(true)
      expect((await store.get([id])).get(id)?.title).toBe('while opening')
    }, 50)
    expect(unhandled).toEqual([])
    await opening.dropDatabase()
    await opening.close()
  })

  it('MongooseModelStore on a closed connection fails with a StoreError, and nothing rejects unhandled later', async () => {
    const closing = mongoose.createConnection(mongodbUrl(), { dbName: uniqueName('cutover_closed'), bufferTimeoutMS: BUFFER_TIMEOUT_MS } as mongoose.ConnectOptions)
    await closing.asPromise()
    const store = new MongooseModelStore(closing.model('Item', new Schema({ title: String })), { name: 'closed' })
    await closing.dropDatabase()
    await closing.close()
    const unhandled = await unhandledDuring(async () => {
      for (const call of [() => store.get(['0123456789abcdef01234567']), () => store.scan({ limit: 1 }), () => store.upsert([{ _id: '0123456789abcdef01234567', title: 'x' }], { kind: 'overwrite' }), () => store.delete(['0123456789abcdef01234567'])]) {
        await expect(call()).rejects.toBeInstanceOf(StoreError)
      }
    }, 2 * BUFFER_TIMEOUT_MS)
    expect(unhandled).toEqual([])
  })

  it('MongooseModelStore on an unreachable server fails with a StoreError after the buffering timeout', async () => {
    const store = new MongooseModelStore(WithoutPlugin, { name: 'dead' })
    const unhandled = await unhandledDuring(async () => {
      await expect(store.get(['0123456789abcdef01234567'])).rejects.toThrow(/buffering timed out/)
      await expect(store.scan({ limit: 1 })).rejects.toBeInstanceOf(StoreError)
    }, 2 * BUFFER_TIMEOUT_MS)
    expect(unhandled).toEqual([])
  })
})
