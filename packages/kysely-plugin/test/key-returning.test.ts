/**
 * The RETURNING key added by appending text must be exactly what recompiling the whole statement
 * gives, for every statement of a shape after the first: checked against PostgreSQL's compiler on
 * pairs of different statements of one shape.
 */
import { copy, createCutover, type Cutover, defineMigration, fieldMapper, silentLogger } from '@cutover/core'
import { CamelCasePlugin, type Compilable, type CompiledQuery, DummyDriver, Kysely, PostgresAdapter, PostgresIntrospector, PostgresQueryCompiler, sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { MemoryStore } from '../../core/test/memory-store.js'
import { KeyReturning } from '../src/write/key-returning.js'
import { MigratedTables } from '../src/dialect/migrated-tables.js'
import { planWrite, type WritePlan } from '../src/write/write-capture.js'

const db = new Kysely<any>({
  dialect: {
    createDriver: () => new DummyDriver(),
    createQueryCompiler: () => new PostgresQueryCompiler(),
    createAdapter: () => new PostgresAdapter(),
    createIntrospector: (k) => new PostgresIntrospector(k),
  },
})

type Returning = Extract<WritePlan, { kind: 'returning' }>

describe('KeyReturning', () => {
  let cutover: Cutover
  let tables: MigratedTables

  beforeAll(async () => {
    const mapper = fieldMapper({ old: z.object({ user_id: z.number() }), new: z.object({ user_id: z.number() }), fields: [copy('user_id')] })
    cutover = await createCutover({
      migrations: [defineMigration({ name: 'users', old: new MemoryStore('old', 'user_id'), new: new MemoryStore('new', 'user_id'), mapper })],
      deadLetters: { write: async () => {} },
      env: {},
      pollIntervalMs: false,
      logger: silentLogger,
    })
    tables = new MigratedTables(cutover, { users: { migration: 'users', side: 'old' } })
  })
  afterAll(async () => {
    await cutover.close()
  })

  const planOf = (query: CompiledQuery): Returning => {
    const plan = planWrite(query.query, tables)
    if (plan?.kind !== 'returning') throw new Error(`not a returning plan: ${query.sql}`)
    return plan
  }
  const recompiled = (plan: Returning, query: CompiledQuery) => new PostgresQueryCompiler().compileQuery(plan.node, query.queryId)

  // Pairs of different statements of one shape: the second gets the suffix the first one taught.
  const pairs: [string, Compilable, Compilable][] = [
    ['insert', db.insertInto('users').values({ name: 'a' }), db.insertInto('users').values([{ name: 'b', email: 'x' }, { name: 'c', email: 'y' }])],
    ['insert returning', db.insertInto('users').values({ name: 'a' }).returningAll(), db.insertInto('users').values({ name: 'b' }).returning(['name', 'email as e'])],
    [
      'insert on conflict returning',
      db.insertInto('users').values({ user_id: 1, name: 'a' }).onConflict((oc) => oc.column('name').doUpdateSet({ name: 'z' })).returning('name'),
      db
        .insertInto('users')
        .values({ user_id: 2, name: 'b' })
        .onConflict((oc) => oc.constraint('users_name').doUpdateSet((eb) => ({ name: eb.ref('excluded.name') })).where('users.name', '<>', 'q'))
        .returning(sql<string>`upper(name)`.as('n')),
    ],
    [
      'insert select with a CTE',
      db.with('src', (w) => w.selectFrom('orders').select(['id', 'name'])).insertInto('users').columns(['user_id', 'name']).expression(db.selectFrom('src').selectAll()),
      db.insertInto('users').columns(['name']).expression(db.selectFrom('orders').select('name').where('id', '>', 3).orderBy('id').limit(5)),
    ],
    ['update', db.updateTable('users').set({ name: 'a' }).where('name', '=', 'x'), db.updateTable('users').set({ name: 'b', email: 'c' }).where('email', 'like', '%@x')],
    [
      'update with an alias, FROM and RETURNING',
      db.updateTable('users as u').from('orders as o').set({ name: 'a' }).whereRef('o.user_id', '=', 'u.user_id').returning('u.name'),
      db.updateTable('users as u').from('orders').set((eb) => ({ name: eb.ref('orders.name') })).whereRef('orders.user_id', '=', 'u.user_id').returning(['u.name', 'orders.id']),
    ],
    ['update of public.users', db.updateTable('public.users').set({ name: 'a' }), db.updateTable('public.users').set({ name: 'b' }).where('name', 'is', null)],
    ['delete', db.deleteFrom('users').where('name', '=', 'x'), db.deleteFrom('users').where((eb) => eb.or([eb('name', '=', 'y'), eb('email', 'is not', null)]))],
    [
      'delete using, returning',
      db.deleteFrom('users').using('orders').whereRef('orders.user_id', '=', 'users.user_id').returning('users.name'),
      db.deleteFrom('users').using(['orders', 'items']).whereRef('items.id', '=', 'orders.id').returningAll('users'),
    ],
    ['under CamelCasePlugin', db.withPlugin(new CamelCasePlugin()).updateTable('users').set({ fullName: 'a' }), db.withPlugin(new CamelCasePlugin()).updateTable('users').set({ fullName: 'b', eMail: 'c' })],
  ]

  // One instance for every pair, so that a shape key that told two shapes apart too little would show.
  const returning = new KeyReturning(new PostgresQueryCompiler())

  it.each(pairs)('appends to %s exactly what recompiling gives', (_name, first, second) => {
    for (const query of [first.compile(), second.compile(), second.compile()]) {
      const plan = planOf(query)
      expect(plan.shape).toBeDefined()
      const compiled = returning.compile(plan, query)
      const expected = recompiled(plan, query)
      expect({ sql: compiled.sql, parameters: compiled.parameters }).toEqual({ sql: expected.sql, parameters: expected.parameters })
      expect(compiled.sql).toContain('"__cutover_key"')
    }
  })

  it('recompiles statements with text after RETURNING, and under any compiler but PostgreSQL’s own', () => {
    const withEnd = db.updateTable('users').set({ name: 'a' }).modifyEnd(sql`-- trailing`).compile()
    expect(planOf(withEnd).shape).toBeUndefined()
    const fresh = new KeyReturning(new PostgresQueryCompiler())
    for (let i = 0; i < 2; i++) expect(fresh.compile(planOf(withEnd), withEnd).sql).toBe('update "users" set "name" = $1 returning "users"."user_id" as "__cutover_key" -- trailing')

    let compiles = 0
    class CountingCompiler extends PostgresQueryCompiler {
      override compileQuery(...args: Parameters<PostgresQueryCompiler['compileQuery']>): CompiledQuery {
        compiles++
        return super.compileQuery(...args)
      }
    }
    const counted = new KeyReturning(new CountingCompiler())
    const query = db.deleteFrom('users').where('name', '=', 'x').compile()
    for (let i = 0; i < 3; i++) counted.compile(planOf(query), query)
    expect(compiles).toBe(3)
  })
})
