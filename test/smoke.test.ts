import { sql } from 'kysely'
import { Schema } from 'mongoose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTestDatabase, createTestMongo, type TestDatabase, type TestMongo } from './setup/services.js'

describe('real services', () => {
  let pgdb: TestDatabase
  let mongo: TestMongo

  beforeAll(async () => {
    pgdb = await createTestDatabase('cutover_smoke')
    mongo = await createTestMongo('cutover_smoke')
  })
  afterAll(async () => {
    await pgdb?.drop()
    await mongo?.drop()
  })

  it('round-trips rows through Kysely on PostgreSQL', async () => {
    await pgdb.db.schema.createTable('things').addColumn('id', 'integer', (c) => c.primaryKey()).addColumn('name', 'text').execute()
    await pgdb.db.insertInto('things').values([{ id: 1, name: 'one' }, { id: 2, name: 'two' }]).execute()
    const rows = await pgdb.db.selectFrom('things').selectAll().orderBy('id').execute()
    expect(rows).toEqual([{ id: 1, name: 'one' }, { id: 2, name: 'two' }])
    const version = await sql<{ v: string }>`select version() as v`.execute(pgdb.db)
    expect(version.rows[0]?.v).toMatch(/PostgreSQL/)
  })

  it('round-trips documents through Mongoose on the MongoDB-wire server', async () => {
    const Thing = mongo.connection.model('Thing', new Schema({ name: String, n: Number }))
    const created = await Thing.create({ name: 'one', n: 1 })
    const found = await Thing.findById(created._id).lean()
    expect(found).toMatchObject({ name: 'one', n: 1 })
    const info = await mongo.connection.db!.admin().command({ buildInfo: 1 })
    expect(typeof info.version).toBe('string')
  })
})
