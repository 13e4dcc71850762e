/**
 * A document served from the new store is the document MongoDB's path would have produced: the
 * query's projection (`isSelected`, no defaults in unselected paths, `save()` validating only what
 * was selected), the discriminator class, and the filter cast once (a setter is not applied twice).
 * A read the plugin cannot serve that way (populate, lean options, a session, collation, paths
 * deselected by the schema) stays on MongoDB and is counted as untranslatable.
 */
import { copy, createCutover, type Cutover, defineMigration, fieldMapper, silentLogger, withCutoverContext } from '@cutover/core'
import mongoose, { Schema } from 'mongoose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { createTestDatabase, createTestMongo, type TestDatabase, type TestMongo } from '../../../test/setup/services.js'
import { cutoverPlugin, MongooseModelStore } from '../src/index.js'

const shape = z.object({
  _id: z.string(),
  name: z.string(),
  age: z.number().nullish(),
  tag: z.string().nullish(),
  kind: z.string().nullish(),
  level: z.number().nullish(),
  friend: z.unknown().nullish(),
  secret: z.string().nullish(),
})
const fields = ['_id', 'name', 'age', 'tag', 'kind', 'level', 'friend', 'secret'].map((field) => copy(field))

describe('documents served from the new store are faithful', () => {
  let control: TestDatabase
  let oldMongo: TestMongo
  let newMongo: TestMongo
  let cutover: Cutover
  let Member: mongoose.Model<any>
  let Admin: mongoose.Model<any>
  let Vault: mongoose.Model<any>
  const counter = (name: string, migration: string, extra: Record<string, string> = {}) => cutover.metrics.counter(name, { migration, ...extra })
  const asUser = <T>(read: () => Promise<T>) => withCutoverContext({ routingKey: 'user-1' }, read)
  let ids: { ada: string; root: string; vault: string }
  let setterCalls = 0

  beforeAll(async () => {
    control = await createTestDatabase('cutover_faithful')
    oldMongo = await createTestMongo('cutover_faithful_old')
    newMongo = await createTestMongo('cutover_faithful_new')
    const engine: { cutover?: Cutover } = {}
    const copySchema = () => new Schema({ name: String, age: Number, tag: String, kind: String, level: Number, friend: Schema.Types.ObjectId, secret: String })
    const memberNew = new MongooseModelStore(newMongo.connection.model('Member', copySchema()))
    const vaultNew = new MongooseModelStore(newMongo.connection.model('Vault', copySchema()))

    const member = new Schema(
      {
        name: { type: String, required: true },
        age: { type: Number, default: 18 },
        // Not idempotent: a filter cast twice would look for '##x'.
        tag: {
          type: String,
          set: (v: string) => {
            setterCalls++
            return `#${v}`
          },
        },
        friend: { type: Schema.Types.ObjectId, ref: 'Member' },
      },
      { discriminatorKey: 'kind' },
    )
    member.plugin(cutoverPlugin, { cutover: () => engine.cutover as Cutover, migration: 'members', reader: memberNew })
    Member = oldMongo.connection.model('Member', member)
    Admin = Member.discriminator('Admin', new Schema({ level: { type: Number, required: true } }))
    const vault = new Schema({ name: String, secret: { type: String, select: false } })
    vault.plugin(cutoverPlugin, { cutover: () => engine.cutover as Cutover, migration: 'vaults', reader: vaultNew })
    Vault = oldMongo.connection.model('Vault', vault)

    const mapper = () => fieldMapper({ old: shape, new: shape, fields })
    cutover = await createCutover({
      migrations: [
        defineMigration({ name: 'members', gates: false, old: new MongooseModelStore(Member), new: memberNew, mapper: mapper(), mirror: { recheckDelayMs: false } }),
        defineMigration({ name: 'vaults', gates: false, old: new MongooseModelStore(Vault), new: vaultNew, mapper: mapper(), mirror: { recheckDelayMs: false } }),
      ],
      control: control.db,
      env: { CUTOVER_PHASE: 'shadow' },
      pollIntervalMs: false,
      logger: silentLogger,
    })
    engine.cutover = cutover
    const ada = await Member.create({ name: 'Ada', age: 40, tag: 'x' })
    const root = await Admin.create({ name: 'Root', age: 50, level: 9, friend: ada._id })
    const safe = await Vault.create({ name: 'safe', secret: 'hunter2' })
    ids = { ada: ada._id.toHexString(), root: root._id.toHexString(), vault: safe._id.toHexString() }
    await cutover.drain()
    for (const migration of ['members', 'vaults']) {
      await cutover.setPhase(migration, 'compare', { actor: 'test', compareSample: 0 })
      await cutover.setPhase(migration, 'ramp', { actor: 'test', readPercent: 100, compareSample: 0 })
    }
  })
  afterAll(async () => {
    await cutover?.close()
    await oldMongo?.drop()
    await newMongo?.drop()
    await control?.drop()
  })

  it('keeps the projection: unselected paths are not selected, get no default, and save() does not validate them', async () => {
    const served = counter('read.ok', 'members', { side: 'new' })
    const named = await asUser(() => Member.findById(ids.ada).select('name kind').exec())
    const withoutName = await asUser(() => Member.findOne({ _id: ids.ada }).select('-name').exec())
    expect(counter('read.ok', 'members', { side: 'new' }) - served).toBe(2)
    expect(named.isSelected('name')).toBe(true)
    expect(named.isSelected('age')).toBe(false)
    expect(named.age).toBeUndefined()
    expect(withoutName.isSelected('name')).toBe(false)
    expect(withoutName.name).toBeUndefined()
    withoutName.age = 41
    await withoutName.save() // `name` is required, but was not selected: not validated
    named.name = 'Ada L.'
    await named.save()
    expect(await Member.collection.findOne({ _id: new mongoose.Types.ObjectId(ids.ada) })).toMatchObject({ name: 'Ada L.', age: 41 })
  })

  it('keeps the discriminator class', async () => {
    const served = counter('read.ok', 'members', { side: 'new' })
    const root = await asUser(() => Member.findById(ids.root).exec())
    expect(counter('read.ok', 'members', { side: 'new' }) - served).toBe(1)
    expect(root).toBeInstanceOf(Admin)
    expect(root.level).toBe(9)
  })

  it('casts the filter once: a setter applied by casting is not applied twice, whichever store serves', async () => {
    await cutover.drain()
    const expected = (await Member.find({ tag: { $in: ['x'] } }).lean()).map((d) => d.name)
    expect(expected).toEqual(['Ada L.'])
    expect((await asUser(() => Member.find({ tag: { $in: ['x'] } }).lean().exec())).map((d) => d.name)).toEqual(expected)
    // Not servable (populate): MongoDB runs the query the plugin planned, and must cast it itself,
    // running the setter once, as without the plugin.
    const calls = setterCalls
    expect((await asUser(() => Member.find({ tag: { $in: ['x'] } }).populate('friend').exec())).map((d) => d.name)).toEqual(expected)
    expect(setterCalls - calls).toBe(1)
  })

  it('reads it cannot serve faithfully stay on MongoDB and are counted as untranslatable', async () => {
    await cutover.drain() // no unapplied change may send these reads to MongoDB for freshness instead
    const untranslatable = counter('read.untranslatable', 'members')
    const populated = await asUser(() => Member.findById(ids.root).populate('friend', 'name').exec())
    expect(populated.friend.name).toBe('Ada L.')
    expect(populated.friend.isSelected('age')).toBe(false)
    const transformed = await asUser(() => Member.findById(ids.ada).lean({ transform: (doc: any) => Object.assign(doc, { seen: true }) }).exec())
    expect(transformed).toMatchObject({ seen: true })
    // (A collation or a session also keeps a read on MongoDB; FerretDB v1 supports neither.)
    const counted = await asUser(() => Member.countDocuments({ age: { $gte: 0 } }).limit(1).exec())
    expect(counted).toBe(1)
    // Four: populate's own query of the friend (`name` only, no discriminator key) stays too.
    expect(counter('read.untranslatable', 'members') - untranslatable).toBe(4)

    const vaults = counter('read.untranslatable', 'vaults')
    const safe = await asUser(() => Vault.findById(ids.vault).exec())
    expect(safe.secret).toBeUndefined()
    expect(safe.isSelected('secret')).toBe(false)
    expect((await asUser(() => Vault.findById(ids.vault).select('+secret').exec())).secret).toBe('hunter2')
    expect(counter('read.untranslatable', 'vaults') - vaults).toBe(2)
  })
})
