/**
 * Reconciliation against a new store that refuses some rows (issue 10, item 8): a CHECK constraint
 * the repaired state of a few keys breaks. Those keys are dead-lettered with the reason; every other
 * repair of their batch goes through, and a second run adds no second open dead letter.
 */
import { DeadLetterTable, ensureSchema, reconcile } from '@cutover/core'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { peopleMigration } from './fixtures/people.js'
import { createTestDatabase, type TestDatabase } from './setup/services.js'

let oldDb: TestDatabase
let newDb: TestDatabase
beforeAll(async () => {
  ;[oldDb, newDb] = await Promise.all([createTestDatabase('cutover_reconcile_old'), createTestDatabase('cutover_reconcile_new')])
  await ensureSchema(newDb.db)
  await sql`create table people (id integer primary key, full_name text not null, email text not null, version integer not null default 1)`.execute(oldDb.db)
  await sql`insert into people select i, 'First' || i || ' Last', 'p' || i || '@example.com', 1 from generate_series(1, 100) i`.execute(oldDb.db)
  await sql`create table people_v2 (id integer primary key, first_name text not null check (first_name <> 'Bad'), last_name text, email text not null, version integer not null)`.execute(newDb.db)
  await sql`insert into people_v2 select i, 'First' || i, 'Last', 'p' || i || '@example.com', 1 from generate_series(1, 100) i`.execute(newDb.db)
}, 60_000)
afterAll(async () => {
  await Promise.all([oldDb?.drop(), newDb?.drop()])
})

describe('reconciliation with rows the new store refuses', () => {
  it('dead-letters only the refused keys, repairs the rest of their batch, and a second run adds no second dead letter', { timeout: 120_000 }, async () => {
    const migration = peopleMigration(oldDb.db, newDb.db, { name: 'people_reconcile' })
    // 27 keys differ: 18 repairable (changed in the old store), 9 whose new state breaks the CHECK.
    const keys = Array.from({ length: 27 }, (_, i) => 3 * i + 1)
    const bad = keys.filter((_, i) => i % 3 === 0)
    await sql`update people set full_name = 'Changed' || id || ' Person', version = 2 where id = any(${keys}::int[])`.execute(oldDb.db)
    await sql`update people set full_name = 'Bad Person', version = 2 where id = any(${bad}::int[])`.execute(oldDb.db)

    const first = await reconcile({ migration, control: newDb.db, keys, authoritative: 'old', env: {} })
    const outcome = (key: number) => first.repairs.find((r) => r.key === String(key))?.outcome
    expect(keys.filter((key) => !bad.includes(key)).map(outcome)).toEqual(Array(18).fill('repaired'))
    expect(bad.map(outcome)).toEqual(Array(9).fill('dead-lettered'))
    expect(first.repaired).toBe(18)
    const { rows } = await sql<{ n: string }>`select count(*) as n from people_v2 where first_name like 'Changed%'`.execute(newDb.db)
    expect(Number(rows[0]?.n)).toBe(18)

    const letters = new DeadLetterTable(newDb.db)
    const open = await letters.open('people_reconcile')
    expect(open.map((l) => Number(l.key)).sort((a, b) => a - b)).toEqual(bad)
    expect(new Set(open.map((l) => l.reason)).size).toBe(1)
    expect(open[0]?.reason).toMatch(/people_v2_first_name_check|23514/)

    const second = await reconcile({ migration, control: newDb.db, keys, authoritative: 'old', env: {} })
    expect(second.repairs.filter((r) => r.outcome === 'dead-lettered').map((r) => Number(r.key)).sort((a, b) => a - b)).toEqual(bad)
    expect(await letters.countOpen('people_reconcile')).toBe(9)
  })
})
