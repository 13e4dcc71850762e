/**
 * The healthcare case: dirty history found during the backfill, not eight hours into a window.
 * Planted: malformed timestamps, a timestamp without a zone, NULLs in a required field, Latin-1
 * mojibake, and duplicate emails under the new table's unique constraint. Exactly those are
 * quarantined, with reasons and raw records; every good row arrives.
 */
import { backfill, defineMapper, defineMigration, ensureSchema, mappedFields, postgresTableSegments, QuarantineTable, verifyExhaustive } from '@cutover/core'
import { KyselyTableStore } from '@cutover/kysely-plugin'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { count } from './fixtures/people.js'
import { createTestDatabase, type TestDatabase } from './setup/services.js'

const ROWS = 5_000
const MOJIBAKE = /[ÃÂ][\u0080-\u00BF]/
const ZONED = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}(:?\d{2})?)$/

const mapper = defineMapper({
  old: z.object({ id: z.number().int(), patient: z.string().nullable(), email: z.string(), starts_at: z.string() }),
  new: z.object({
    id: z.number().int(),
    patient: z.string().min(1).refine((name) => !MOJIBAKE.test(name), 'looks like UTF-8 read as Latin-1 (mojibake)'),
    email: z.string(),
    starts_at: z.date(),
  }),
  // A null patient goes through as is: the new schema rejects it, which quarantines the record.
  forward: (old) => ({ id: old.id, patient: old.patient as string, email: old.email.toLowerCase(), starts_at: parseZoned(old.starts_at) }),
  backward: (row) => ({ id: row.id, patient: row.patient, email: row.email, starts_at: row.starts_at.toISOString() }),
})

/** A timestamp with an explicit zone, in ISO 8601 or PostgreSQL's text form; anything else is invalid. */
function parseZoned(text: string): Date {
  if (!ZONED.test(text)) return new Date(Number.NaN)
  const iso = text.replace(' ', 'T').replace(/([+-]\d{2})$/, '$1:00')
  const date = new Date(iso)
  // Reject what Date silently rolls over (month 13, hour 99).
  return Number.isNaN(date.getTime()) || !iso.startsWith(date.toISOString().slice(0, 4)) ? new Date(Number.NaN) : date
}

const PLANTED = {
  malformed: [11, 222, 3333], // month 13, hour 99, words
  noZone: [44],
  nullPatient: [55, 4444],
  mojibake: [66, 777],
  duplicateEmail: [2500, 4000], // id 100 has the same email first (once in other case)
}

let oldDb: TestDatabase
let newDb: TestDatabase
beforeAll(async () => {
  ;[oldDb, newDb] = await Promise.all([createTestDatabase('cutover_dirty_old'), createTestDatabase('cutover_dirty_new')])
  await ensureSchema(newDb.db)
  await sql`create table appointments (id integer primary key, patient text, email text not null, starts_at text not null)`.execute(oldDb.db)
  // Good rows in three zone formats: ISO with Z, ISO with offset, PostgreSQL text with offset.
  await sql`insert into appointments select i, 'Patient ' || i, 'p' || i || '@example.com',
    case i % 3 when 0 then '2024-05-01T08:00:00.250Z' when 1 then '2024-05-01T10:00:00+02:00' else '2024-05-01 03:00:00-05' end
    from generate_series(1, ${ROWS}::int) i`.execute(oldDb.db)
  const set = async (ids: number[], column: string, value: string | null) =>
    sql`update appointments set ${sql.ref(column)} = ${value} where id = any(${ids})`.execute(oldDb.db)
  await set([11], 'starts_at', '2024-13-01T08:00:00Z')
  await set([222], 'starts_at', '2024-05-01T99:00:00Z')
  await set([3333], 'starts_at', 'yesterday at noon')
  await set(PLANTED.noZone, 'starts_at', '2024-05-01 08:00:00')
  await set(PLANTED.nullPatient, 'patient', null)
  await set([66], 'patient', 'JosÃ© MartÃ­nez')
  await set([777], 'patient', 'FranÃ§oise')
  await set([100, 2500], 'email', 'dup@example.com')
  await set([4000], 'email', 'DUP@Example.com')
  await sql`create table appointments_v2 (id integer primary key, patient text not null, email text not null unique, starts_at timestamptz not null)`.execute(newDb.db)
})
afterAll(async () => {
  await Promise.all([oldDb?.drop(), newDb?.drop()])
})

describe('dirty data', () => {
  it('quarantines exactly the planted records with their reasons and raw records, and loses no good row', async () => {
    const migration = defineMigration({
      name: 'appointments',
      old: new KyselyTableStore(oldDb.db, 'appointments', 'id'),
      new: new KyselyTableStore(newDb.db, 'appointments_v2', 'id'),
      mapper,
    })
    const summary = await backfill({ migration, control: newDb.db, batch: { initial: 1_000 } })
    const planted = Object.values(PLANTED).flat()
    expect(summary.counts).toMatchObject({ read: ROWS, written: ROWS - planted.length, quarantined: planted.length, mismatched: 0 })

    const quarantined = await new QuarantineTable(newDb.db).open('appointments')
    const byKey = new Map(quarantined.map((q) => [Number(q.key), q]))
    expect([...byKey.keys()].sort((a, b) => a - b)).toEqual([...planted].sort((a, b) => a - b))
    for (const id of [...PLANTED.malformed, ...PLANTED.noZone]) expect(byKey.get(id)).toMatchObject({ reasonCode: 'MAPPER_REJECTED', fields: ['starts_at'] })
    for (const id of PLANTED.nullPatient) expect(byKey.get(id)).toMatchObject({ reasonCode: 'MAPPER_REJECTED', fields: ['patient'] })
    for (const id of PLANTED.mojibake) expect(byKey.get(id)?.reason).toContain('mojibake')
    for (const id of PLANTED.duplicateEmail) expect(byKey.get(id)).toMatchObject({ reasonCode: 'STORE_REJECTED', reason: 'unique constraint appointments_v2_email_key violated' })
    expect(byKey.get(66)?.payload).toEqual({ id: 66, patient: 'JosÃ© MartÃ­nez', email: 'p66@example.com', starts_at: '2024-05-01T08:00:00.250Z' })
    expect(Object.values(summary.quarantinedByReason).reduce((a, b) => a + b, 0)).toBe(planted.length)
    expect(summary.quarantinedByReason['STORE_REJECTED: unique constraint appointments_v2_email_key violated']).toBe(2)

    // Mixed zone formats arrive as one instant.
    const times = await newDb.db.selectFrom('appointments_v2').select(['id', 'starts_at']).where('id', 'in', [1, 2, 3]).orderBy('id').execute()
    expect(times.map((t) => (t.starts_at as Date).toISOString())).toEqual(['2024-05-01T08:00:00.000Z', '2024-05-01T08:00:00.000Z', '2024-05-01T08:00:00.250Z'])
    expect(await count(newDb.db, 'appointments_v2')).toBe(ROWS - planted.length)

    // Verification agrees: the only records missing are the quarantined ones.
    const report = await verifyExhaustive({
      migration,
      new: await postgresTableSegments({ db: newDb.db, table: 'appointments_v2', key: 'id', fields: mappedFields(migration) }),
      recheck: { attempts: 0 },
    })
    expect(report.inconsistencies.map((e) => [Number(e.key), e.kind]).sort((a, b) => (a[0] as number) - (b[0] as number))).toEqual(
      [...planted].sort((a, b) => a - b).map((id) => [id, 'MISSING_IN_NEW']),
    )
  })
})
