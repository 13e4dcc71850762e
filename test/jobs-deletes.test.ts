/**
 * Deletes while a backfill runs (issue 10, item 7). The race: a batch reads a row, the application
 * deletes it, the mirror's delete finds nothing in the new store (the row is not there yet), then
 * the batch's insert-if-absent writes the copy it read. Each test makes that race certain (the old
 * store's scan deletes rows of the batch it just returned, and mirrors the delete) and runs two
 * writers that update, delete and insert at random meanwhile, with a reliable mirror: every row the
 * new store holds at the end that the old store does not is one the backfill brought back.
 */
import { backfill, defineMapper, defineMigration, ensureSchema, type KeyValue, type Migration, type Row, type Store } from '@cutover/core'
import { KyselyTableStore } from '@cutover/kysely-plugin'
import { MongooseModelStore } from '@cutover/mongoose-plugin'
import { sql } from 'kysely'
import { Schema, Types } from 'mongoose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { createPeopleTables, peopleMapper, peopleMigration } from './fixtures/people.js'
import { createTestDatabase, createTestMongo, type TestDatabase, type TestMongo } from './setup/services.js'

const ROWS = 20_000
const DOCUMENTS = 4_000
let oldDb: TestDatabase
let newDb: TestDatabase
let mongo: TestMongo

beforeAll(async () => {
  ;[oldDb, newDb, mongo] = await Promise.all([createTestDatabase('cutover_deletes_old'), createTestDatabase('cutover_deletes_new'), createTestMongo('cutover_deletes')])
  await ensureSchema(newDb.db)
  await createPeopleTables(oldDb.db, newDb.db, ROWS)
  await sql`create table patients (id text primary key, name text not null, visits integer not null)`.execute(newDb.db)
  const collection = mongo.connection.collection('patients')
  for (let i = 0; i < DOCUMENTS; i += 1_000) {
    await collection.insertMany(Array.from({ length: 1_000 }, (_, j) => ({ name: `Patient ${i + j}`, visits: 1 })))
  }
}, 120_000)
afterAll(async () => {
  await Promise.all([oldDb?.drop(), newDb?.drop(), mongo?.drop()])
})

/** What the application does to the old store, and the mirror's state-based apply of it. */
interface Application {
  /** Deletes `key` in the old store (the mirror then applies it). */
  deleteOld(key: KeyValue): Promise<void>
  /** A random update, delete or insert; returns the key. */
  randomWrite(random: () => number): Promise<KeyValue>
}

/**
 * The old store with the race made certain: right after each scan, three rows of the batch are
 * deleted by the "application" and the deletes mirrored (finding nothing in the new store yet).
 */
function racingDeletes(store: Store, app: Application, deleted: Set<string>, state: { racing: boolean }): Store {
  return {
    name: store.name,
    keyField: store.keyField,
    get: (keys) => store.get(keys),
    upsert: (records, mode) => store.upsert(records, mode),
    delete: (keys) => store.delete(keys),
    scan: async (options) => {
      const rows = await store.scan(options)
      if (state.racing) {
        for (const row of rows.slice(1, 4)) {
          const key = row[store.keyField] as KeyValue
          await app.deleteOld(key)
          deleted.add(String(key))
        }
      }
      return rows
    },
  }
}

/** Runs the backfill with the race and two random writers; returns the keys deleted meanwhile. */
async function backfillUnderDeletes(plain: Migration<any, any>, app: Application, options: { wrapNew?: (store: Store) => Store } = {}) {
  const deleted = new Set<string>()
  const state = { racing: true }
  const migration = defineMigration({ ...plain, old: racingDeletes(plain.old, app, deleted, state), new: options.wrapNew?.(plain.new) ?? plain.new })
  let seed = 4242
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31)
  let stop = false
  let writes = 0
  const writer = async () => {
    while (!stop) {
      await app.randomWrite(random)
      writes++
    }
  }
  const writers = [writer(), writer()]
  try {
    const summary = await backfill({ migration, control: newDb.db, restart: true, batch: { initial: 500, min: 500, max: 500 }, verify: { retries: 2, delayMs: 20 } })
    return { summary, deleted, writes, migration }
  } finally {
    stop = true
    await Promise.all(writers)
    state.racing = false
  }
}

/** Keys the new store holds that the old store does not: rows brought back. */
async function resurrected(migration: Migration<any, any>, keys: Iterable<string>, toKey: (key: string) => KeyValue): Promise<string[]> {
  const lookup = [...keys].map(toKey)
  const [oldRows, newRows] = await Promise.all([migration.old.get(lookup), migration.new.get(lookup)])
  return [...keys].filter((key) => newRows.has(key) && !oldRows.has(key)).sort()
}

let nextId = ROWS + 1

function postgresApplication(migration: Migration<any, any>): Application & { deletedByWriters: Set<string> } {
  const deletedByWriters = new Set<string>()
  const mirror = async (key: KeyValue) => {
    const current = (await migration.old.get([key])).get(String(key))
    if (current) await migration.new.upsert([peopleMapper.forward(current)], { kind: 'version-guard', field: 'version' })
    else await migration.new.delete([key])
  }
  const deleteOld = async (key: KeyValue) => {
    await sql`delete from people where id = ${Number(key)}`.execute(oldDb.db)
    await mirror(key)
  }
  return {
    deletedByWriters,
    deleteOld,
    async randomWrite(random) {
      const dice = random()
      const key = dice < 0.8 ? 1 + Math.floor(random() * ROWS) : nextId++
      if (dice < 0.4) await sql`update people set full_name = 'Renamed Person', version = version + 1 where id = ${key}`.execute(oldDb.db)
      else if (dice < 0.8) {
        await sql`delete from people where id = ${key}`.execute(oldDb.db)
        deletedByWriters.add(String(key))
      } else await sql`insert into people values (${key}, 'New Person', ${`n${key}@example.com`}, 1)`.execute(oldDb.db)
      await mirror(key)
      return key
    },
  }
}

describe('deletes during a backfill', () => {
  it('a PostgreSQL backfill never brings back a row deleted while it runs, with writers and deleters racing it', { timeout: 120_000 }, async () => {
    const plain = peopleMigration(oldDb.db, newDb.db, { name: 'people_deletes' })
    const app = postgresApplication(plain)
    const { summary, deleted, writes } = await backfillUnderDeletes(plain, app)
    expect(summary.status).toBe('done')
    expect(deleted.size).toBeGreaterThan(100)
    expect(writes).toBeGreaterThan(100)
    expect(await resurrected(plain, [...deleted, ...app.deletedByWriters], Number)).toEqual([])
  })

  it('the inline verification reports a backfilled row whose source is gone when nothing removed it', { timeout: 120_000 }, async () => {
    await sql`truncate people_v2`.execute(newDb.db)
    const plain = peopleMigration(oldDb.db, newDb.db, { name: 'people_deletes_verified' })
    const app = postgresApplication(plain)
    // The backfill's own removal of deleted keys fails silently here (the mirror's still works):
    // the verification must not say 0 mismatches for the rows it brought back.
    const { summary, deleted, migration } = await backfillUnderDeletes(plain, app, { wrapNew: (store) => ({ ...bind(store), delete: async () => 0 }) })
    const back = await resurrected(plain, deleted, Number)
    expect(back.length).toBeGreaterThan(0)
    const reported = new Set(summary.mismatches.filter((m) => m.kind === 'MISSING_IN_OLD').map((m) => m.key))
    expect(back.filter((key) => !reported.has(key))).toEqual([])
    expect(summary.counts.mismatched).toBeGreaterThanOrEqual(back.length)
    expect(migration.new.name).toBe(plain.new.name)
  })

  it('a MongoDB → PostgreSQL backfill never brings back a document deleted while it runs', { timeout: 180_000 }, async () => {
    const Patient = mongo.connection.model('Patient', new Schema({ name: String, visits: Number }, { collection: 'patients' }))
    const collection = Patient.collection
    const plain = defineMigration({
      name: 'patients_deletes',
      old: new MongooseModelStore(Patient),
      new: new KyselyTableStore(newDb.db, 'patients', 'id'),
      key: { old: '_id', new: 'id' },
      mapper: defineMapper({
        old: z.object({ _id: z.string(), name: z.string(), visits: z.number().int() }),
        new: z.object({ id: z.string(), name: z.string(), visits: z.number().int() }),
        forward: (d) => ({ id: d._id, name: d.name, visits: d.visits }),
        backward: (r) => ({ _id: r.id, name: r.name, visits: r.visits }),
      }),
    })
    const ids = (await collection.find({}, { projection: { _id: 1 } }).toArray()).map((d) => String(d._id))
    const deletedByWriters = new Set<string>()
    const mirror = async (key: KeyValue) => {
      const current = (await plain.old.get([key])).get(String(key))
      if (current) await plain.new.upsert([plain.mapper.forward(current)], { kind: 'overwrite' })
      else await plain.new.delete([key])
    }
    const app: Application = {
      async deleteOld(key) {
        await collection.deleteOne({ _id: new Types.ObjectId(String(key)) })
        await mirror(key)
      },
      async randomWrite(random) {
        const dice = random()
        const key = ids[Math.floor(random() * ids.length)] as string
        if (dice < 0.5) await collection.updateOne({ _id: new Types.ObjectId(key) }, { $inc: { visits: 1 } })
        else {
          await collection.deleteOne({ _id: new Types.ObjectId(key) })
          deletedByWriters.add(key)
        }
        await mirror(key)
        return key
      },
    }
    const { summary, deleted } = await backfillUnderDeletes(plain, app)
    expect(summary.status).toBe('done')
    expect(deleted.size).toBeGreaterThan(20)
    expect(await resurrected(plain, [...deleted, ...deletedByWriters], String)).toEqual([])
  })
})

/** A store's methods as own properties, so a test can replace one. */
function bind(store: Store): Store {
  return {
    name: store.name,
    keyField: store.keyField,
    get: (keys) => store.get(keys),
    scan: (options) => store.scan(options),
    upsert: (records: readonly Row[], mode) => store.upsert(records, mode),
    delete: (keys) => store.delete(keys),
  }
}
