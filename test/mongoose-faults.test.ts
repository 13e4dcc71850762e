/**
 * Faults on the new side: PostgreSQL unreachable (its Kysely pointed at a closed port) while the
 * application makes 2,000 writes through Mongoose. No application write fails; the mirror retries,
 * then dead-letters; once PostgreSQL is back, replaying the dead letters makes both stores equal.
 */
import { createServer } from 'node:net'
import { copy, createCutover, type Cutover, defineMigration, fieldMapper, type KeyValue, type Migration, rename, type Row, silentLogger, type Store, type WriteMode } from '@cutover/core'
import { KyselyTableStore } from '@cutover/kysely-plugin'
import { cutoverPlugin, MongooseModelStore } from '@cutover/mongoose-plugin'
import { Kysely, PostgresDialect } from 'kysely'
import mongoose, { Schema } from 'mongoose'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { expectStoresEqual } from '../packages/mongoose-plugin/test/harness.js'
import { createTestDatabase, createTestMongo, type TestDatabase, type TestMongo } from './setup/services.js'

/** The new store as the application configured it; the test moves it between a dead and a live PostgreSQL. */
class SwitchableStore implements Store {
  constructor(public target: Store) {}
  get name() {
    return this.target.name
  }
  get keyField() {
    return this.target.keyField
  }
  get(keys: readonly KeyValue[]) {
    return this.target.get(keys)
  }
  scan(options: { after?: KeyValue; limit: number }) {
    return this.target.scan(options)
  }
  upsert(records: readonly Row[], mode: WriteMode) {
    return this.target.upsert(records, mode)
  }
  delete(keys: readonly KeyValue[]) {
    return this.target.delete(keys)
  }
}

async function closedPort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  await new Promise((resolve) => server.close(resolve))
  return port
}

interface ItemDoc {
  label: string
  n: number
}

describe('new store unreachable during 2,000 Mongoose writes', () => {
  let database: TestDatabase
  let db: Kysely<any>
  let dead: Kysely<any>
  let mongo: TestMongo
  let cutover: Cutover
  let migration: Migration<any, any>
  let store: SwitchableStore
  let live: Store
  let Item: mongoose.Model<ItemDoc>

  beforeAll(async () => {
    database = await createTestDatabase('cutover_mongoose_faults')
    db = database.db
    const deadPool = new pg.Pool({ host: '127.0.0.1', port: await closedPort(), user: 'postgres', database: 'nowhere', connectionTimeoutMillis: 200 })
    deadPool.on('error', () => {})
    dead = new Kysely<any>({ dialect: new PostgresDialect({ pool: deadPool }) })
    database.track(dead)
    mongo = await createTestMongo('cutover_mongoose_faults', { monitorCommands: true })
    await db.schema.createTable('items').addColumn('id', 'text', (c) => c.primaryKey()).addColumn('title', 'text').addColumn('n', 'integer').execute()
    live = new KyselyTableStore(db, 'items', 'id')
    store = new SwitchableStore(new KyselyTableStore(dead, 'items', 'id'))
    const engine: { cutover?: Cutover } = {}
    const schema = new Schema<ItemDoc>({ label: String, n: Number }, { versionKey: false })
    schema.plugin(cutoverPlugin, { cutover: () => engine.cutover as Cutover, migration: 'items' })
    Item = mongo.connection.model<ItemDoc>('Item', schema)
    migration = defineMigration({
      name: 'items',
      old: new MongooseModelStore(Item),
      new: store,
      mapper: fieldMapper({
        old: z.object({ _id: z.string(), label: z.string(), n: z.number() }),
        new: z.object({ id: z.string(), title: z.string(), n: z.number() }),
        fields: [rename('_id', 'id'), rename('label', 'title'), copy('n')],
      }),
      mirror: { recheckDelayMs: false, batchSize: 50, retry: { attempts: 2, baseDelayMs: 1, maxDelayMs: 5 } },
    })
    cutover = await createCutover({ migrations: [migration], control: db, env: { CUTOVER_ITEMS_PHASE: 'shadow' }, pollIntervalMs: false, logger: silentLogger })
    engine.cutover = cutover
  })
  afterAll(async () => {
    await cutover?.close()
    await mongo?.drop()
    await database?.drop()
  })

  it('no Mongoose write fails; dead letters replay to equality after recovery', async () => {
    const results: PromiseSettledResult<unknown>[] = []
    const ids: mongoose.Types.ObjectId[] = []
    // 1,000 creates, then 1,000 updates of those documents, 50 at a time.
    for (let i = 0; i < 1_000; i += 50) {
      const batch = await Promise.allSettled(Array.from({ length: 50 }, (_, j) => Item.create({ label: `item ${i + j}`, n: i + j })))
      results.push(...batch)
      for (const r of batch) if (r.status === 'fulfilled') ids.push((r.value as { _id: mongoose.Types.ObjectId })._id)
    }
    for (let i = 0; i < 1_000; i += 50) {
      const batch = await Promise.allSettled(ids.slice(i, i + 50).map((id, j) => Item.updateOne({ _id: id }, { $inc: { n: 1 }, $set: { label: `updated ${i + j}` } })))
      results.push(...batch)
    }
    expect(results).toHaveLength(2_000)
    expect(results.filter((r) => r.status === 'rejected')).toEqual([])
    expect(await Item.countDocuments()).toBe(1_000)

    await cutover.drain()
    const open = await cutover.deadLetters!.countOpen('items')
    expect(open).toBeGreaterThanOrEqual(1_000) // every key at least once (an update may coalesce with its create)
    expect(Object.keys(await cutover.deadLetters!.countByReason('items'))).toEqual(['STORE_FAILED'])
    expect((await db.selectFrom('items').select(db.fn.countAll().as('n')).executeTakeFirstOrThrow()).n).toBe('0')

    store.target = live // PostgreSQL is reachable again
    const replay = await cutover.replayDeadLetters('items')
    expect(replay).toEqual({ replayed: open, stillFailing: 0 })
    expect(await cutover.deadLetters!.countOpen('items')).toBe(0)
    expect(await expectStoresEqual(migration)).toBe(1_000)
  }, 240_000) // FerretDB on SQLite serializes writes, and the mirror's reads compete with them
})
