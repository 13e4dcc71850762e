/**
 * The start-up checks on real stores: `KyselyTableStore.describe` reads PostgreSQL's catalog and
 * `MongooseModelStore.describe` the model's schema and the server's collections, so a wrong key
 * column or a column nobody mapped fails `createCutover` instead of the first mirrored write.
 */
import { sql } from 'kysely'
import { Schema } from 'mongoose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { ConfigError, copy, createCutover, defineMapper, defineMigration, fieldMapper, rename, silentLogger } from '../packages/core/src/index.js'
import { KyselyTableStore } from '../packages/kysely-plugin/src/index.js'
import { MongooseModelStore } from '../packages/mongoose-plugin/src/index.js'
import { createTestDatabase, createTestMongo, type TestDatabase, type TestMongo } from './setup/services.js'

const mapper = fieldMapper({
  old: z.object({ user_id: z.number(), name: z.string() }),
  new: z.object({ id: z.number(), name: z.string() }),
  fields: [rename('user_id', 'id'), copy('name')],
})

let database: TestDatabase
let mongo: TestMongo
beforeAll(async () => {
  ;[database, mongo] = await Promise.all([createTestDatabase('cutover_describe'), createTestMongo('cutover_describe')])
  await sql`create table users (user_id integer primary key, name text not null, nickname text)`.execute(database.db)
  await sql`create schema v2`.execute(database.db)
  await sql`create table v2.users (id integer not null, name text not null)`.execute(database.db)
  await sql`create table v2.keyed (id integer primary key, name text not null)`.execute(database.db)
})
afterAll(async () => {
  await Promise.all([database?.drop(), mongo?.drop()])
})

async function problemsOf(promise: Promise<unknown>): Promise<string[]> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(error).toBeInstanceOf(ConfigError)
  return (error as ConfigError).problems.map((problem) => problem.message)
}

describe('KyselyTableStore.describe', () => {
  it('reads whether the table exists, its columns and whether the key is unique', async () => {
    expect(await new KyselyTableStore(database.db, 'users', 'user_id').describe()).toEqual({ exists: true, keyExists: true, keyUnique: true, fields: ['user_id', 'name', 'nickname'] })
    expect(await new KyselyTableStore(database.db, 'v2.users', 'id').describe()).toMatchObject({ exists: true, keyExists: true, keyUnique: false })
    expect(await new KyselyTableStore(database.db, 'users', 'uid').describe()).toMatchObject({ keyExists: false, keyUnique: false })
    expect(await new KyselyTableStore(database.db, 'v2.nothing', 'id').describe()).toMatchObject({ exists: false })
  })

  it('createCutover refuses a wrong key column, a non-unique key and a column the old schema does not name', async () => {
    const migration = defineMigration({
      name: 'users',
      old: new KyselyTableStore(database.db, 'users', 'uid'),
      new: new KyselyTableStore(database.db, 'v2.users', 'id'),
      mapper,
      key: { old: 'uid', new: 'id' },
    })
    const problems = await problemsOf(createCutover({ migrations: [migration], deadLetters: { write: async () => {} }, env: { CUTOVER_PHASE: 'shadow' }, logger: silentLogger }))
    expect(problems.some((p) => /key "uid" is not a field of the store; fields: user_id, name, nickname/.test(p))).toBe(true)
    expect(problems.some((p) => /field "nickname" is not named by the old schema/.test(p))).toBe(true)
    expect(problems.some((p) => /new store postgres:v2.users: key "id" is not unique/.test(p))).toBe(true)

    const fixed = defineMigration({ name: 'users', old: new KyselyTableStore(database.db, 'users', 'user_id'), new: new KyselyTableStore(database.db, 'v2.keyed', 'id'), mapper, droppedColumns: ['nickname'] })
    const cutover = await createCutover({ migrations: [fixed], deadLetters: { write: async () => {} }, env: { CUTOVER_PHASE: 'shadow' }, logger: silentLogger })
    await cutover.close()
  })
})

describe('MongooseModelStore.describe', () => {
  it('reports the schema paths and the key, and createCutover refuses a path the old schema does not name', async () => {
    const Person = mongo.connection.model('Person', new Schema({ name: String, address: { city: String }, email: { type: String, unique: true } }))
    await Person.init()
    const store = new MongooseModelStore(Person)
    expect(await store.describe()).toEqual({ exists: true, keyExists: true, keyUnique: true, fields: ['name', 'address', 'email', '_id'] })
    expect(await new MongooseModelStore(Person, { keyField: 'email' }).describe()).toMatchObject({ keyExists: true, keyUnique: true })
    expect(await new MongooseModelStore(Person, { keyField: 'name' }).describe()).toMatchObject({ keyExists: true, keyUnique: false })

    const people = defineMapper({
      old: z.object({ _id: z.string(), name: z.string() }),
      new: z.object({ id: z.string(), name: z.string() }),
      forward: (o) => ({ id: o._id, name: o.name }),
      backward: (n) => ({ _id: n.id, name: n.name }),
    })
    const migration = defineMigration({ name: 'people', old: store, new: new KyselyTableStore(database.db, 'v2.keyed', 'id'), mapper: people, key: { old: '_id', new: 'id' } })
    const problems = await problemsOf(createCutover({ migrations: [migration], deadLetters: { write: async () => {} }, env: {}, logger: silentLogger }))
    expect(problems.sort()).toEqual([
      expect.stringMatching(/field "address" is not named by the old schema/),
      expect.stringMatching(/field "email" is not named by the old schema/),
    ])
  })
})
