import fc from 'fast-check'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import {
  compatibilityViewSql,
  ConfigError,
  copy,
  copyForward,
  type DeadLetter,
  defineMapper,
  drop,
  fieldMapper,
  join,
  MapperError,
  MirrorQueue,
  rename,
  scale,
  split,
  withDefault,
} from '../src/index.js'
import { createTestDatabase, type TestDatabase } from '../../../test/setup/services.js'
import { MemoryStore } from './memory-store.js'

const OldUser = z.object({ user_id: z.number().int(), full_name: z.string().nullable(), email: z.string().email() })
const NewUser = z.object({
  id: z.number().int(),
  first_name: z.string().nullable(),
  last_name: z.string().nullable(),
  email: z.string().email(),
  legacy_full_name: z.string().nullable(),
})

const users = fieldMapper({
  old: OldUser,
  new: NewUser,
  fields: [rename('user_id', 'id'), split('full_name', ['first_name', 'last_name']), copy('email'), copyForward('full_name', 'legacy_full_name')],
})

function mapperError(fn: () => unknown): MapperError {
  try {
    fn()
  } catch (error) {
    expect(error).toBeInstanceOf(MapperError)
    return error as MapperError
  }
  throw new Error('expected a MapperError')
}

describe('defineMapper', () => {
  const cents = defineMapper({
    old: z.object({ id: z.string(), price_cents: z.number().int() }),
    new: z.object({ id: z.string(), price: z.number().nonnegative() }),
    forward: (o) => ({ id: o.id, price: o.price_cents / 100 }),
    backward: (n) => ({ id: n.id, price_cents: Math.round(n.price * 100) }),
    lossless: true,
  })

  it('maps both ways', () => {
    expect(cents.forward({ id: 'a', price_cents: 1234 })).toEqual({ id: 'a', price: 12.34 })
    expect(cents.backward({ id: 'a', price: 12.34 })).toEqual({ id: 'a', price_cents: 1234 })
    expect(cents.lossless).toBe(true)
  })

  it('rejects bad input with the record key, direction, stage and field path', () => {
    const error = mapperError(() => cents.forward({ id: 'a', price_cents: 'twelve' }, { key: 'a', migration: 'prices' }))
    expect(error.code).toBe('MAPPER_REJECTED')
    expect(error.key).toBe('a')
    expect(error.migration).toBe('prices')
    expect(error.direction).toBe('forward')
    expect(error.stage).toBe('input')
    expect(error.fields).toEqual(['price_cents'])
    expect(error.message).toContain('"a"')
    expect(error.message).toContain('price_cents')
  })

  it('rejects output that breaks the other schema', () => {
    const error = mapperError(() => cents.forward({ id: 'b', price_cents: -5 }, { key: 'b' }))
    expect(error.stage).toBe('output')
    expect(error.fields).toEqual(['price'])
  })

  it('wraps a throwing mapping function', () => {
    const throwing = defineMapper({
      old: z.object({ id: z.string() }),
      new: z.object({ id: z.string() }),
      forward: () => {
        throw new Error('cannot parse timezone')
      },
      backward: (n) => n,
    })
    const error = mapperError(() => throwing.forward({ id: 'x' }, { key: 'x' }))
    expect(error.stage).toBe('mapping')
    expect(error.message).toContain('cannot parse timezone')
    expect(error.cause).toBeInstanceOf(Error)
  })

  it('names each unrecognized key of a strict schema in the error fields, with its path', () => {
    const strict = defineMapper({
      old: z.object({ id: z.string(), address: z.object({ city: z.string() }).strict() }).strict(),
      new: z.object({ id: z.string() }),
      forward: (o) => ({ id: o.id }),
      backward: (n) => ({ id: n.id, address: { city: '' } }),
    })
    const error = mapperError(() => strict.forward({ id: 'a', nickname: 'x', address: { city: 'Oslo', zip: '0150' } }, { key: 'a' }))
    expect(error.fields.sort()).toEqual(['address.zip', 'nickname'])
    expect(error.message).toContain('nickname')
  })

  it('validates backward input against the new schema', () => {
    const error = mapperError(() => cents.backward({ id: 'c' }, { key: 'c' }))
    expect(error.direction).toBe('backward')
    expect(error.fields).toEqual(['price'])
  })
})

describe('fieldMapper', () => {
  it('maps the users example both ways', () => {
    const old = { user_id: 7, full_name: 'Ada King Lovelace', email: 'ada@example.com' }
    const mapped = users.forward(old)
    expect(mapped).toEqual({ id: 7, first_name: 'Ada', last_name: 'King Lovelace', email: 'ada@example.com', legacy_full_name: 'Ada King Lovelace' })
    expect(users.backward(mapped)).toEqual(old)
    expect(users.lossless).toBe(true)
  })

  it('keeps names without a separator and with a trailing separator apart', () => {
    expect(users.forward({ user_id: 1, full_name: 'Ada', email: 'a@b.co' })).toMatchObject({ first_name: 'Ada', last_name: null })
    expect(users.forward({ user_id: 1, full_name: 'Ada ', email: 'a@b.co' })).toMatchObject({ first_name: 'Ada', last_name: '' })
    expect(users.backward(users.forward({ user_id: 1, full_name: 'Ada ', email: 'a@b.co' })).full_name).toBe('Ada ')
  })

  it('exposes renames for query translation', () => {
    expect(users.fieldMap?.newColumnOf('user_id')).toBe('id')
    expect(users.fieldMap?.newColumnOf('email')).toBe('email')
    expect(users.fieldMap?.newColumnOf('full_name')).toBeUndefined()
    expect(users.fieldMap?.oldFieldOf('id')).toBe('user_id')
  })

  it('refuses a map that forgets an old field, at definition time', () => {
    let error: unknown
    try {
      fieldMapper({ old: OldUser, new: NewUser, fields: [rename('user_id', 'id'), copy('email')] })
    } catch (e) {
      error = e
    }
    expect(error).toBeInstanceOf(ConfigError)
    expect((error as ConfigError).message).toContain('"full_name"')
  })

  it('is lossy when a field is dropped, and says so', () => {
    const lossy = fieldMapper({
      old: z.object({ id: z.number(), nickname: z.string().nullable() }),
      new: z.object({ id: z.number() }),
      fields: [copy('id'), drop('nickname')],
    })
    expect(lossy.lossless).toBe(false)
    expect(lossy.backward({ id: 1 })).toEqual({ id: 1, nickname: null })
  })

  it('fills defaults for new required fields and converts units', () => {
    const orders = fieldMapper({
      old: z.object({ id: z.number(), total_cents: z.number().int() }),
      new: z.object({ id: z.number(), total: z.number(), currency: z.string() }),
      fields: [copy('id'), scale('total_cents', 'total', 100), withDefault('currency', 'EUR')],
    })
    expect(orders.forward({ id: 1, total_cents: 1999 })).toEqual({ id: 1, total: 19.99, currency: 'EUR' })
    expect(orders.backward({ id: 1, total: 19.99, currency: 'USD' })).toEqual({ id: 1, total_cents: 1999 })
    expect(orders.lossless).toBe(true)
  })

  it('joins fields back into one (the inverse of split)', () => {
    const joined = fieldMapper({
      old: z.object({ id: z.number(), first: z.string().nullable(), rest: z.string().nullable() }),
      new: z.object({ id: z.number(), name: z.string().nullable() }),
      fields: [copy('id'), join(['first', 'rest'], 'name')],
    })
    expect(joined.forward({ id: 1, first: 'Grace', rest: 'Hopper' })).toEqual({ id: 1, name: 'Grace Hopper' })
    expect(joined.backward({ id: 1, name: 'Grace Brewster Hopper' })).toEqual({ id: 1, first: 'Grace', rest: 'Brewster Hopper' })
  })
})

describe('round trips (property-based)', () => {
  const name = fc.option(fc.string({ unit: fc.constantFrom('a', 'b', ' ', 'é', 'Z', '-') , maxLength: 12 }), { nil: null })
  const email = fc.constantFrom('a@example.com', 'b.c@example.org')

  it('users: backward(forward(x)) equals x', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 1e9 }), name, email, (user_id, full_name, email) => {
        const old = { user_id, full_name, email }
        expect(users.backward(users.forward(old))).toEqual(old)
      }),
      { numRuns: 2_000 },
    )
  })

  it('cents to units: backward(forward(x)) equals x for every integer amount', () => {
    const money = fieldMapper({
      old: z.object({ id: z.number(), cents: z.number().int() }),
      new: z.object({ id: z.number(), amount: z.number() }),
      fields: [copy('id'), scale('cents', 'amount', 100)],
    })
    fc.assert(
      fc.property(fc.integer({ min: -1e12, max: 1e12 }), (cents) => {
        expect(money.backward(money.forward({ id: 1, cents }))).toEqual({ id: 1, cents })
      }),
      { numRuns: 2_000 },
    )
  })

  it('finds the loss in a mapper that declares itself lossless but is not', () => {
    const trimming = defineMapper({
      old: z.object({ id: z.number(), name: z.string() }),
      new: z.object({ id: z.number(), name: z.string() }),
      forward: (o) => ({ id: o.id, name: o.name.trim() }),
      backward: (n) => n,
      lossless: true,
    })
    const result = fc.check(
      fc.property(fc.string({ unit: fc.constantFrom('a', ' ', 'b'), maxLength: 5 }), (value) => {
        const old = { id: 1, name: value }
        return JSON.stringify(trimming.backward(trimming.forward(old))) === JSON.stringify(old)
      }),
    )
    expect(result.failed).toBe(true)
  })
})

describe('SQL expressions of field maps (PostgreSQL)', () => {
  let database: TestDatabase
  beforeAll(async () => {
    database = await createTestDatabase('cutover_mapper')
    await sql`create table users_old (user_id int primary key, full_name text, email text not null)`.execute(database.db)
    await sql`create table users_new (id int primary key, first_name text, last_name text, email text not null, legacy_full_name text)`.execute(database.db)
  })
  afterAll(async () => database?.drop())

  const fixtures = [
    { user_id: 1, full_name: 'Ada Lovelace', email: 'ada@example.com' },
    { user_id: 2, full_name: 'Grace Brewster Hopper', email: 'grace@example.com' },
    { user_id: 3, full_name: 'Plato', email: 'plato@example.com' },
    { user_id: 4, full_name: 'Trailing ', email: 't@example.com' },
    { user_id: 5, full_name: ' Leading', email: 'l@example.com' },
    { user_id: 6, full_name: null, email: 'n@example.com' },
    { user_id: 7, full_name: "O'Brien  Double", email: 'o@example.com' },
  ]

  it('forward SQL computes what forward() computes', async () => {
    await database.db.insertInto('users_old').values(fixtures).execute()
    const expressions = users.fieldMap!.forwardSql((field) => `t."${field}"`)
    const select = Object.entries(expressions).map(([field, expression]) => `${expression} as "${field}"`).join(', ')
    const { rows } = await sql.raw<Record<string, unknown>>(`select ${select} from users_old t order by t.user_id`).execute(database.db)
    expect(rows).toEqual(fixtures.map((row) => users.forward(row)))
  })

  it('a generated compatibility view shows the new table in the old shape', async () => {
    await database.db.insertInto('users_new').values(fixtures.map((row) => users.forward(row))).execute()
    await sql.raw(compatibilityViewSql(users.fieldMap!, { view: 'users_v1', table: 'users_new' })).execute(database.db)
    const rows = await database.db.selectFrom('users_v1').selectAll().orderBy('user_id').execute()
    expect(rows).toEqual(fixtures)
  })
})

describe('unrecognized keys reach dead letters', () => {
  it("a mirrored record with a field the strict old schema does not know is dead-lettered naming that field", async () => {
    const strict = defineMapper({
      old: z.object({ id: z.number(), name: z.string() }).strict(),
      new: z.object({ id: z.number(), name: z.string() }),
      forward: (o) => o,
      backward: (n) => n,
    })
    const entries: DeadLetter[] = []
    const queue = new MirrorQueue({
      migration: 'things',
      direction: 'old-to-new',
      source: new MemoryStore('old', 'id', [{ id: 1, name: 'a', nickname: 'x' }]),
      target: new MemoryStore('new', 'id'),
      translate: (record, key) => strict.forward(record, { key, migration: 'things' }),
      deadLetters: { write: async (written) => void entries.push(...written) },
      recheckDelayMs: false,
      lingerMs: 0,
    })
    queue.enqueue({ key: 1, op: 'upsert' })
    await queue.drain()
    expect(entries).toMatchObject([{ key: '1', reasonCode: 'MAPPER_REJECTED', fields: ['nickname'] }])
  })
})
