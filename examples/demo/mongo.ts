/**
 * The demo's MongoDB → PostgreSQL part: a Mongoose model's documents backfilled into a PostgreSQL
 * table, writes through Mongoose mirrored, and the two verified equal. It runs against MONGODB_URL,
 * or against FerretDB (a MongoDB-wire server on SQLite) built with Go as the tests build it;
 * without either it says how to turn it on.
 */
import { spawnSync } from 'node:child_process'
import { PGlite } from '@electric-sql/pglite'
import { backfill, createCutover, defineMigration, defineMapper, silentLogger, verifyExhaustive } from '@cutover/core'
import { KyselyTableStore } from '@cutover/kysely-plugin'
import { cutoverPlugin, MongooseModelStore } from '@cutover/mongoose-plugin'
import { Kysely, sql } from 'kysely'
import { PGliteDialect } from 'kysely-pglite-dialect'
import mongoose from 'mongoose'
import { z } from 'zod'
import { startFerretDb } from '../../test/setup/ferretdb.js'

export async function runMongoPart(say: (line: string) => void): Promise<void> {
  const hasGo = ['go', '/usr/local/go/bin/go'].some((go) => spawnSync(go, ['version']).status === 0)
  if (!process.env.MONGODB_URL && !hasGo) {
    say('\n[mongodb] skipped: set MONGODB_URL to a MongoDB-compatible server, or install Go so the demo can build FerretDB.')
    return
  }
  const ferret = process.env.MONGODB_URL ? undefined : await startFerretDb((line) => say(`  ${line}`))
  const url = process.env.MONGODB_URL ?? (ferret as { url: string }).url
  const connection = await mongoose.createConnection(url, { dbName: `cutover_demo_${process.pid}` }).asPromise()
  const pglite = await PGlite.create()
  const db = new Kysely<any>({ dialect: new PGliteDialect(pglite) })
  try {
    say(`\n[mongodb] ${process.env.MONGODB_URL ? 'MongoDB at MONGODB_URL' : 'FerretDB on a loopback port'} → embedded PostgreSQL`)
    const fields = { name: String, city: String }
    const mapper = defineMapper({
      old: z.object({ _id: z.string(), name: z.string(), city: z.string().nullable().default(null) }),
      new: z.object({ id: z.string(), name: z.string(), city: z.string().nullable() }),
      forward: ({ _id, ...rest }) => ({ id: _id, ...rest }),
      backward: ({ id, ...rest }) => ({ _id: id, ...rest }),
      lossless: true,
    })
    // The store reads and writes the collection itself; the application's model carries the plugin.
    const Person = connection.model('Person', new mongoose.Schema(fields))
    await Person.insertMany(Array.from({ length: 500 }, (_, i) => ({ name: `Person ${i}`, city: i % 3 === 0 ? 'Lyon' : 'Oslo' })))
    await sql`create table people (id text primary key, name text not null, city text)`.execute(db)
    const migration = defineMigration({ name: 'people', gates: false, old: new MongooseModelStore(Person), new: new KyselyTableStore(db, 'people', 'id'), mapper, key: { old: '_id', new: 'id' } })
    const cutover = await createCutover({ migrations: [migration], control: db, env: {}, pollIntervalMs: false, signalIntervalMs: false, logger: silentLogger })
    const appSchema = new mongoose.Schema(fields)
    appSchema.plugin(cutoverPlugin, { cutover, migration: 'people' })
    const Mirrored = connection.model('PersonApp', appSchema, Person.collection.name)
    await cutover.setPhase('people', 'shadow', { actor: 'demo' })
    const filled = await backfill({ migration, control: db, actor: 'demo' })
    await Mirrored.updateMany({ city: 'Lyon' }, { city: 'Lyon 2e' })
    await Mirrored.create({ name: 'Late Arrival', city: 'Bergen' })
    await cutover.drain()
    const verified = await verifyExhaustive({ migration, control: db })
    say(`  backfilled ${filled.counts.written} documents; mirrored ${cutover.metrics.counter('mirror.applied', { migration: 'people', direction: 'old-to-new' })} Mongoose writes; verification: ${verified.consistent ? 'consistent' : 'INCONSISTENT'} (${verified.counts.newRecords} rows)`)
    await cutover.close()
  } finally {
    await connection.dropDatabase().catch(() => undefined)
    await connection.close()
    await db.destroy()
    await ferret?.stop()
  }
}
