/**
 * Tenant phases through the Mongoose plugin (MongoDB → MongoDB, renamed fields): a tenant in
 * `cutover` reads from the new store and cannot write to the old one, while a tenant following the
 * migration (`shadow`) reads from and writes to the old one, mirrored forward.
 */
import { copy, createCutover, type Cutover, defineMigration, fieldMapper, type Migration, rename, silentLogger, withCutoverContext, WriteRejectedError } from '@cutover/core'
import mongoose, { Schema } from 'mongoose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { cutoverPlugin, MongooseModelStore } from '../packages/mongoose-plugin/src/index.js'
import { createTestDatabase, createTestMongo, type TestDatabase, type TestMongo } from './setup/services.js'

interface PersonDoc {
  _id: string
  name: string
}

describe('tenant phases through the Mongoose plugin', () => {
  let control: TestDatabase
  let oldMongo: TestMongo
  let newMongo: TestMongo
  let cutover: Cutover
  let Person: mongoose.Model<PersonDoc>
  let Copy: mongoose.Model<any>

  beforeAll(async () => {
    control = await createTestDatabase('cutover_tmongo')
    oldMongo = await createTestMongo('cutover_tmongo_old', { monitorCommands: true })
    newMongo = await createTestMongo('cutover_tmongo_new', { monitorCommands: true })
    const engine: { cutover?: Cutover } = {}
    Copy = newMongo.connection.model('Person', new Schema({ _id: String, fullName: String }))
    const newStore = new MongooseModelStore(Copy)
    const schema = new Schema<PersonDoc>({ _id: String, name: { type: String, required: true } })
    schema.plugin(cutoverPlugin, { cutover: () => engine.cutover as Cutover, migration: 'people', reader: newStore })
    Person = oldMongo.connection.model<PersonDoc>('Person', schema)
    const migration: Migration<any, any> = defineMigration({
      name: 'people',
      gates: false,
      old: new MongooseModelStore(Person),
      new: newStore,
      mapper: fieldMapper({ old: z.object({ _id: z.string(), name: z.string() }), new: z.object({ _id: z.string(), fullName: z.string() }), fields: [copy('_id'), rename('name', 'fullName')] }),
      mirror: { recheckDelayMs: false },
    })
    cutover = await createCutover({ migrations: [migration], control: control.db, env: {}, pollIntervalMs: false, logger: silentLogger })
    engine.cutover = cutover
    await cutover.setPhase('people', 'shadow', { actor: 'test' })
  })
  afterAll(async () => {
    await cutover?.close()
    await oldMongo?.drop()
    await newMongo?.drop()
    await control?.drop()
  })

  it("serves and takes each tenant's reads and writes by its own phase", { timeout: 30_000 }, async () => {
    for (const phase of ['compare', 'ramp', 'cutover'] as const) await cutover.setTenantPhase('people', 'acme', phase, { actor: 'test', readPercent: 100, compareSample: 0 })
    // A document that differs between the stores, written past the plugin.
    await oldMongo.connection.collection('people').insertOne({ _id: 'x' as any, name: 'old side' })
    await newMongo.connection.collection('people').insertOne({ _id: 'x' as any, fullName: 'new side' })
    const read = (tenant?: string) => withCutoverContext(tenant ? { tenant } : {}, () => Person.findById('x').lean().exec())
    expect(await read('acme')).toMatchObject({ _id: 'x', name: 'new side' })
    expect(await read('bolt')).toMatchObject({ _id: 'x', name: 'old side' })
    expect(await read()).toMatchObject({ _id: 'x', name: 'old side' })

    await expect(withCutoverContext({ tenant: 'acme' }, () => Person.create({ _id: 'a1', name: 'Acme One' }))).rejects.toBeInstanceOf(WriteRejectedError)
    await withCutoverContext({ tenant: 'bolt' }, () => Person.create({ _id: 'b1', name: 'Bolt One' }))
    await cutover.drain()
    expect(await Copy.findById('b1').lean()).toMatchObject({ fullName: 'Bolt One' })
    expect(await oldMongo.connection.collection('people').findOne({ _id: 'a1' as any })).toBeNull()
  })
})
