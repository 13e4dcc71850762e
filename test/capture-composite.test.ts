/**
 * Composite, text and uuid primary keys: `KyselyTableStore` reads, scans (keyset, in index order),
 * upserts and deletes by a composite key, and change-log capture mirrors such tables end to end,
 * including a change of a key column.
 */
import { ChangeLogWorker, type CompositeKey, compositeKey, copy, DeadLetterTable, defineMigration, ensureSchema, fieldMapper, installCapture, keyString, silentLogger } from '@cutover/core'
import { KyselyTableStore } from '@cutover/kysely-plugin'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { createTestDatabase, type TestDatabase } from './setup/services.js'

let db: TestDatabase
const KEY = ['tenant', 'student', 'course']
const A = '00000000-0000-4000-8000-00000000000a'
const B = '00000000-0000-4000-8000-00000000000b'

beforeAll(async () => {
  db = await createTestDatabase('cutover_capcomp')
  await ensureSchema(db.db)
  for (const table of ['enrollments', 'enrollments_v2']) {
    await sql`create table ${sql.table(table)} (tenant text not null, student uuid not null, course integer not null, grade text, primary key (tenant, student, course))`.execute(db.db)
  }
  for (const table of ['devices', 'devices_v2']) await sql`create table ${sql.table(table)} (id uuid primary key, label text not null)`.execute(db.db)
})

afterAll(async () => {
  await db?.drop()
})

const enrollmentMapper = fieldMapper({
  old: z.object({ tenant: z.string(), student: z.string(), course: z.number().int(), grade: z.string().nullable() }),
  new: z.object({ tenant: z.string(), student: z.string(), course: z.number().int(), grade: z.string().nullable() }),
  fields: [copy('tenant'), copy('student'), copy('course'), copy('grade')],
})

async function rows(table: string): Promise<string[]> {
  const { rows } = await sql<Record<string, unknown>>`select * from ${sql.table(table)}`.execute(db.db)
  return rows.map((row) => JSON.stringify(row)).sort()
}

describe('composite primary keys', () => {
  it('KyselyTableStore gets, scans in key order, upserts and deletes by a composite key', async () => {
    const store = new KyselyTableStore(db.db, 'enrollments', KEY)
    const records = [
      { tenant: 'b', student: A, course: 1, grade: 'A' },
      { tenant: 'a', student: B, course: 2, grade: null },
      { tenant: 'a', student: A, course: 2, grade: 'B' },
      { tenant: 'a', student: A, course: 10, grade: 'C' },
    ]
    expect(await store.upsert(records, { kind: 'overwrite' })).toEqual({ written: 4, skipped: 0 })
    expect(await store.upsert([{ ...records[0], grade: 'Z' } as (typeof records)[0]], { kind: 'insert-if-absent' })).toEqual({ written: 0, skipped: 1 })
    const found = await store.get([compositeKey('a', A, 2), compositeKey('a', A, 3), compositeKey('b', A, '1')])
    expect([...found.keys()].sort()).toEqual([keyString(['a', A, 2]), keyString(['b', A, 1])].sort())
    expect(found.get(keyString(['b', A, 1]))?.grade).toBe('A')
    // Pages of two, continued from the last key: the order of (tenant, student, course), course numerically.
    const seen: string[] = []
    let after: CompositeKey | undefined
    for (;;) {
      const page = await store.scan({ limit: 2, ...(after ? { after } : {}) })
      seen.push(...page.map((r) => `${r.tenant}/${r.student}/${r.course}`))
      if (page.length < 2) break
      const last = page.at(-1) as Record<string, string | number>
      after = compositeKey(last.tenant as string, last.student as string, last.course as number)
    }
    expect(seen).toEqual([`a/${A}/2`, `a/${A}/10`, `a/${B}/2`, `b/${A}/1`])
    expect(await store.delete([compositeKey('a', A, 10), compositeKey('x', A, 1)])).toBe(1)
  })

  it('change-log capture mirrors composite-key and uuid-key tables, a key change included', async () => {
    const enrollments = defineMigration({
      name: 'enrollments',
      old: new KyselyTableStore(db.db, 'enrollments', KEY),
      new: new KyselyTableStore(db.db, 'enrollments_v2', KEY),
      mapper: enrollmentMapper,
    })
    const devices = defineMigration({
      name: 'devices',
      old: new KyselyTableStore(db.db, 'devices', 'id'),
      new: new KyselyTableStore(db.db, 'devices_v2', 'id'),
      mapper: fieldMapper({ old: z.object({ id: z.string(), label: z.string() }), new: z.object({ id: z.string(), label: z.string() }), fields: [copy('id'), copy('label')] }),
    })
    await installCapture(enrollments, ['old'])
    await installCapture(devices, ['old'])
    await sql`insert into enrollments values ('c', ${A}, 5, 'D'), ('c', ${B}, 5, 'E')`.execute(db.db)
    await sql`update enrollments set grade = 'A+' where tenant = 'a' and course = 2`.execute(db.db)
    await sql`update enrollments set course = 6 where tenant = 'c' and student = ${B}`.execute(db.db)
    await sql`delete from enrollments where tenant = 'b'`.execute(db.db)
    await sql`insert into devices values (${A}, 'phone'), (${B}, 'tablet')`.execute(db.db)
    await sql`update devices set label = 'laptop' where id = ${B}`.execute(db.db)
    for (const migration of [enrollments, devices]) {
      await new ChangeLogWorker({ migration, direction: 'old-to-new', deadLetters: new DeadLetterTable(db.db), phase: () => 'shadow', logger: silentLogger }).drain()
    }
    expect(await rows('enrollments_v2')).toEqual(await rows('enrollments'))
    expect(await rows('enrollments_v2')).toHaveLength(4)
    expect(await rows('devices_v2')).toEqual(await rows('devices'))
  })
})

describe('composite primary keys in backfill', () => {
  it('backfills a composite-key table in keyset batches, every row once and verified; a rerun reads the composite checkpoint back', async () => {
    const { backfill } = await import('@cutover/core')
    await sql`create table marks (tenant text, student uuid, course integer, grade text, primary key (tenant, student, course))`.execute(db.db)
    await sql`create table marks_v2 (tenant text, student uuid, course integer, grade text, primary key (tenant, student, course))`.execute(db.db)
    await sql`insert into marks select 't' || (i % 7), (case when i % 2 = 0 then ${A} else ${B} end)::uuid, i, 'g' || i from generate_series(1, 2500) i`.execute(db.db)
    const migration = defineMigration({
      name: 'marks',
      old: new KyselyTableStore(db.db, 'marks', KEY),
      new: new KyselyTableStore(db.db, 'marks_v2', KEY),
      mapper: enrollmentMapper,
    })
    const summary = await backfill({ migration, control: db.db, batch: { initial: 300, min: 300, max: 300 } })
    expect(summary.counts.read).toBe(2500)
    expect(summary.mismatches).toEqual([])
    expect(summary.batches).toBeGreaterThan(5)
    expect(await rows('marks_v2')).toEqual(await rows('marks'))
    const again = await backfill({ migration, control: db.db, batch: { initial: 300, min: 300, max: 300 } })
    expect(again.status).toBe('already-done')
  })
})
