/**
 * Writable compatibility views on real PostgreSQL: the same old-shape statements run against the
 * real old tables (schema `legacy`) and against the views (schema `compat`) over the new tables
 * (schema `app`), and both the returned rows and what ends up stored agree.
 */
import { CompatibilityViews } from '@cutover/core'
import fc from 'fast-check'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { main } from '../packages/core/src/cli/main.js'
import { NEW_TABLES_SQL, OLD_TABLES_SQL, viewDefinitions } from './fixtures/compat-accounts.js'
import { createTestDatabase, type TestDatabase } from './setup/services.js'

let database: TestDatabase
let legacy: pg.Client
let compat: pg.Client
const definitions = viewDefinitions('app', 'compat')
const views = new CompatibilityViews(Object.values(definitions))

async function client(searchPath: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: database.url })
  await c.connect()
  c.on('error', () => undefined)
  await c.query(`set search_path to ${searchPath}`)
  await c.query(`set timezone to 'UTC'`)
  return c
}

beforeAll(async () => {
  database = await createTestDatabase('cutover_compat_views')
  const setup = await client('public')
  await setup.query(`create schema legacy; create schema app; create schema compat; ${OLD_TABLES_SQL('legacy')} ${NEW_TABLES_SQL('app')}`)
  await setup.end()
  await views.apply(database.db)
  legacy = await client('legacy')
  compat = await client('compat')
})
afterAll(async () => {
  await Promise.all([legacy?.end(), compat?.end()])
  await database?.drop()
})

/** Runs one statement on both sides; returns what each side answered. */
async function both(statement: string): Promise<{ old: { rows: unknown[]; count: number | null }; view: { rows: unknown[]; count: number | null } }> {
  const [a, b] = await Promise.all([legacy.query(statement), compat.query(statement)])
  return { old: { rows: a.rows, count: a.rowCount }, view: { rows: b.rows, count: b.rowCount } }
}

async function agree(statement: string): Promise<unknown[]> {
  const { old, view } = await both(statement)
  expect(view, statement).toEqual(old)
  return view.rows
}

describe('compatibility views', () => {
  it('answer old-shape INSERT, UPDATE, DELETE and SELECT exactly as the old table does (split, conversion, defaults)', async () => {
    const inserted = await agree(`insert into users (full_name, email, balance_cents) values ('Ada King Lovelace', 'ada@example.com', 1234) returning *`)
    expect(inserted).toEqual([{ id: 1, full_name: 'Ada King Lovelace', email: 'ada@example.com', created_at: new Date('2020-01-01T00:00:00Z'), balance_cents: '1234' }])
    await agree(`insert into users (full_name, email) values ('Grace', 'grace@example.com') returning *`)
    await agree(`insert into users (id, full_name, email, created_at, balance_cents) values (default, 'Alan M Turing', 'alan@example.com', default, 99) returning id, full_name`)
    await agree(`update users set full_name = 'Ada Lovelace' where email = 'ada@example.com' returning *`)
    await agree(`update users set balance_cents = coalesce(balance_cents, 0) + 1 returning id, balance_cents`)
    await agree(`update users set email = 'nobody@example.com' where id = 999 returning *`)
    await agree(`delete from users where email = 'alan@example.com' returning *`)
    await agree(`delete from users where id = 999`)
    await agree(`select * from users order by id`)
    await agree(`select full_name, count(*) from users group by full_name order by full_name`)

    const stored = await compat.query(`select id, first_name, last_name, balance::text, status from app.users order by id`)
    expect(stored.rows).toEqual([
      { id: 1, first_name: 'Ada', last_name: 'Lovelace', balance: '12.3500000000000000', status: 'active' },
      { id: 2, first_name: 'Grace', last_name: null, balance: '0.01000000000000000000', status: 'active' },
    ])
  })

  it('any full name, with spaces, quotes or emoji anywhere, reads back through the view exactly as the old table stores it', async () => {
    const name = fc.string({ unit: fc.constantFrom('a', 'B', ' ', ' ', "'", '"', 'é', '😀', '-', '\\'), maxLength: 12 })
    let n = 0
    await fc.assert(
      fc.asyncProperty(name, name, async (first, second) => {
        const email = `prop${n++}@example.com`
        const literal = (text: string) => `'${text.replace(/'/g, "''")}'`
        await agree(`insert into users (full_name, email) values (${literal(first)}, '${email}') returning full_name, email, balance_cents`)
        await agree(`update users set full_name = ${literal(second)} where email = '${email}' returning full_name, email`)
        await agree(`delete from users where email = '${email}' returning full_name`)
      }),
      { numRuns: 60 },
    )
  })

  it('an old-shape UPDATE leaves alone the new-only columns and the fields it did not change', async () => {
    await compat.query(`update app.users set status = 'vip', balance = 12.349 where id = 1`)
    await compat.query(`update users set email = 'ada@lovelace.example' where id = 1`)
    const { rows } = await compat.query(`select status, balance::text, email from app.users where id = 1`)
    expect(rows).toEqual([{ status: 'vip', balance: '12.349', email: 'ada@lovelace.example' }])
  })

  it('two old tables merged into one new table stay two writable tables, each seeing and touching only its own rows', async () => {
    await agree(`insert into customers (id, full_name, email) values (1, 'Ann Lee', 'ann@example.com'), (2, 'Bo', null) returning *`)
    await agree(`insert into contacts (id, name, phone) values (101, 'Cy', '555-0101') returning *`)
    await agree(`update customers set email = 'ann@lee.example' where id = 1 returning *`)
    await agree(`update contacts set phone = '555-0102' returning *`)
    await agree(`delete from contacts where id = 1 returning *`) // a customer's key, through the contacts view: nothing
    await agree(`delete from customers where id = 2 returning *`)
    await agree(`select * from customers order by id`)
    await agree(`select * from contacts order by id`)

    const stored = await compat.query(`select id, account_type, first_name, last_name, email, phone from app.accounts order by id`)
    expect(stored.rows).toEqual([
      { id: 1, account_type: 'customer', first_name: 'Ann', last_name: 'Lee', email: 'ann@lee.example', phone: null },
      { id: 101, account_type: 'contact', first_name: 'Cy', last_name: null, email: null, phone: '555-0102' },
    ])
  })

  it('a constraint of the new table refuses an old-shape write through the view as it would the old table', async () => {
    await legacy.query(`insert into users (full_name, email) values ('Dup', 'dup@example.com')`)
    await compat.query(`insert into users (full_name, email) values ('Dup', 'dup@example.com')`)
    const failures = await Promise.allSettled([
      legacy.query(`insert into users (full_name, email) values ('Dup Two', 'dup@example.com')`),
      compat.query(`insert into users (full_name, email) values ('Dup Two', 'dup@example.com')`),
    ])
    expect(failures.map((f) => f.status === 'rejected' && (f.reason as { code?: string }).code)).toEqual(['23505', '23505'])
  })

  it('applying again replaces views and triggers together and leaves exactly one trigger per operation', async () => {
    await views.apply(database.db)
    await views.apply(database.db)
    const { rows } = await compat.query(
      `select event_object_table as view, string_agg(trigger_name || ':' || event_manipulation, ',' order by trigger_name) as triggers
         from information_schema.triggers where trigger_schema = 'compat' group by 1 order by 1`,
    )
    const expected = 'cutover_instead_of_delete:DELETE,cutover_instead_of_insert:INSERT,cutover_instead_of_update:UPDATE'
    expect(rows).toEqual(['contacts', 'customers', 'users'].map((view) => ({ view, triggers: expected })))
    await agree(`select * from customers order by id`)
  })

  it('quotes every identifier: a view and columns with quotes and spaces, plainly renamed, are updatable without triggers', async () => {
    const { fieldMapper, rename } = await import('@cutover/core')
    const { z } = await import('zod')
    const weird = fieldMapper({ old: z.object({ 'id': z.number(), 'qty"; drop table app.users; --': z.number() }), new: z.object({ id: z.number(), 'Quantity x': z.number() }), fields: [rename('id', 'id'), rename('qty"; drop table app.users; --', 'Quantity x')] })
    await compat.query(`create table app."Order ""Items""" (id serial primary key, "Quantity x" int not null default 7)`)
    const odd = new CompatibilityViews([{ view: 'order "items"', viewSchema: 'compat', table: 'Order "Items"', schema: 'app', fieldMap: weird.fieldMap! }])
    expect(odd.views[0]!.needsTriggers).toBe(false)
    await odd.apply(database.db)
    const inserted = await compat.query(`insert into "order ""items""" default values returning *`)
    expect(inserted.rows).toEqual([{ id: 1, 'qty"; drop table app.users; --': 7 }])
    expect((await compat.query(`select count(*)::int as n from app.users`)).rows).toEqual([{ n: 3 }])
    await odd.drop(database.db)
  })

  it('`cutover views sql|apply|drop` prints, applies and removes a migration\'s views idempotently, with --json', async () => {
    process.env.CUTOVER_TEST_NEW_URL = database.url
    const run = async (...args: string[]) => {
      let out = ''
      let err = ''
      const stream = (append: (s: string) => void) => ({ isTTY: false, write: (chunk: string) => (append(chunk), true) }) as unknown as NodeJS.WriteStream
      const code = await main([...args, '--config', 'test/fixtures/compat-views.config.ts'], { stdout: stream((s) => (out += s)), stderr: stream((s) => (err += s)) })
      return { code, out, err, result: out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l)).at(-1) }
    }
    const printed = await run('views', 'sql', 'customers', '--json')
    expect(printed.code, printed.err).toBe(0)
    expect(printed.result.statements).toEqual(new CompatibilityViews([definitions.customers]).createStatements())

    expect((await run('views', 'drop', 'customers', '--json')).result).toMatchObject({ action: 'drop', views: ['compat.customers'] })
    expect((await run('views', 'drop', 'customers', '--json')).code).toBe(0)
    await expect(compat.query(`select * from customers`)).rejects.toThrow(/does not exist/)
    const applied = await run('views', 'apply', 'customers', '--json')
    expect(applied.result).toMatchObject({ type: 'result', command: 'views apply', action: 'apply', views: ['compat.customers'] })
    expect((await run('views', 'apply', 'customers')).code).toBe(0)
    await agree(`select * from customers order by id`)
    expect((await run('views', 'frobnicate', 'customers')).code).toBe(64)
  })
})
