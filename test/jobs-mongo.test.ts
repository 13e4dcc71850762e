/**
 * MongoDB (FerretDB in CI) → PostgreSQL: 20,000 documents with nested fields, ObjectIds, dates,
 * integer cents and arrays, backfilled and verified (MongoDB side streamed, PostgreSQL side
 * checksummed in the database).
 */
import { backfill, defineMapper, defineMigration, ensureSchema, mappedFields, postgresTableSegments, reconcile, verifyExhaustive } from '@cutover/core'
import { KyselyTableStore } from '@cutover/kysely-plugin'
import { MongooseModelStore } from '@cutover/mongoose-plugin'
import { sql } from 'kysely'
import { Schema, Types } from 'mongoose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { count } from './fixtures/people.js'
import { createTestDatabase, createTestMongo, type TestDatabase, type TestMongo } from './setup/services.js'

const DOCUMENTS = 20_000

const mapper = defineMapper({
  old: z.object({
    _id: z.string(),
    patient: z.object({ first: z.string(), last: z.string() }),
    email: z.string(),
    startsAt: z.date(),
    amountCents: z.number().int(),
    tags: z.array(z.string()),
  }),
  new: z.object({
    id: z.string(),
    first_name: z.string(),
    last_name: z.string(),
    email: z.string(),
    starts_at: z.date(),
    amount: z.union([z.number(), z.string()]),
    tags: z.array(z.string()),
  }),
  forward: (doc) => ({
    id: doc._id,
    first_name: doc.patient.first,
    last_name: doc.patient.last,
    email: doc.email,
    starts_at: doc.startsAt,
    amount: doc.amountCents / 100,
    tags: doc.tags,
  }),
  backward: (row) => ({
    _id: row.id,
    patient: { first: row.first_name, last: row.last_name },
    email: row.email,
    startsAt: row.starts_at,
    amountCents: Math.round(Number(row.amount) * 100),
    tags: row.tags,
  }),
})

let mongo: TestMongo
let pgdb: TestDatabase
beforeAll(async () => {
  ;[mongo, pgdb] = await Promise.all([createTestMongo('cutover_jobs_mongo'), createTestDatabase('cutover_jobs_mongo_pg')])
  await ensureSchema(pgdb.db)
  await sql`create table appointments (id text primary key, first_name text not null, last_name text not null, email text not null,
    starts_at timestamptz not null, amount numeric(12,2) not null, tags text[] not null)`.execute(pgdb.db)
  const base = Date.UTC(2024, 0, 1)
  const collection = mongo.connection.collection('appointments')
  for (let i = 0; i < DOCUMENTS; i += 2_000) {
    await collection.insertMany(
      Array.from({ length: Math.min(2_000, DOCUMENTS - i) }, (_, j) => {
        const n = i + j
        return {
          patient: { first: `First${n}`, last: `Last "${n % 13}"` },
          email: `p${n}@example.com`,
          startsAt: new Date(base + n * 60_000 + (n % 1000)),
          amountCents: n * 7 + (n % 100),
          tags: n % 2 === 0 ? ['a', `t${n % 5}`] : [],
        }
      }),
    )
  }
}, 180_000)
afterAll(async () => {
  await Promise.all([mongo?.drop(), pgdb?.drop()])
})

describe('MongoDB → PostgreSQL', () => {
  it('backfills 20,000 documents and ends verified; finds and repairs planted differences', { timeout: 420_000 }, async () => {
    const Appointment = mongo.connection.model(
      'Appointment',
      new Schema({ patient: { first: String, last: String }, email: String, startsAt: Date, amountCents: Number, tags: [String] }, { collection: 'appointments' }),
    )
    const migration = defineMigration({
      name: 'appointments',
      old: new MongooseModelStore(Appointment),
      new: new KyselyTableStore(pgdb.db, 'appointments', 'id'),
      mapper,
      key: { old: '_id', new: 'id' },
      // PostgreSQL numeric arrives as text ("12.50"); the mapper makes a number (12.5).
      compare: { numeric: ['amount'] },
    })
    const summary = await backfill({ migration, control: pgdb.db })
    expect(summary.counts).toEqual({ read: DOCUMENTS, written: DOCUMENTS, skipped: 0, quarantined: 0, mismatched: 0 })
    expect(await count(pgdb.db, 'appointments')).toBe(DOCUMENTS)

    const segments = async () => ({
      new: await postgresTableSegments({ db: pgdb.db, table: 'appointments', key: 'id', fields: mappedFields(migration), rules: migration.compare ?? {} }),
    })
    const clean = await verifyExhaustive({ migration, control: pgdb.db, ...(await segments()) })
    expect(clean.consistent).toBe(true)
    expect(clean.counts).toMatchObject({ oldRecords: DOCUMENTS, newRecords: DOCUMENTS })

    const [first, second] = (await migration.old.scan({ limit: 2 })) as [{ _id: string }, { _id: string }]
    await Appointment.collection.updateOne({ _id: new Types.ObjectId(first._id) }, { $set: { email: 'changed@example.com' } })
    await sql`delete from appointments where id = ${second._id}`.execute(pgdb.db)
    const report = await verifyExhaustive({ migration, control: pgdb.db, ...(await segments()), recheck: { attempts: 0 } })
    expect(report.inconsistencies.map((e) => [e.key, e.kind, e.differences.map((d) => d.path)]).sort()).toEqual(
      [
        [first._id, 'DIFFERENT', ['email']],
        [second._id, 'MISSING_IN_NEW', []],
      ].sort(),
    )
    const repaired = await reconcile({ migration, control: pgdb.db, env: {} })
    expect(repaired).toMatchObject({ repaired: 2, stillInconsistent: [] })
    expect((await verifyExhaustive({ migration, ...(await segments()) })).consistent).toBe(true)
  })
})
