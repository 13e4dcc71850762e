/**
 * Exhaustive verification with PostgreSQL's built-in row hash (issue 13): used only when both
 * servers compute it identically on known inputs, it must never report equal data as different
 * (columns under different collations, rows in different physical and key orders, non-ASCII text)
 * and must still find every planted difference; a probe that disagrees keeps SHA-256.
 */
import { columnKinds, copy, defineMigration, ensureSchema, fieldMapper, type LogFields, type Logger, mappedFields, postgresMappedSegments, postgresTableSegments, type SegmentSource, verifyExhaustive } from '@cutover/core'
import { KyselyTableStore } from '@cutover/kysely-plugin'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { peopleMapper, peopleMigration } from './fixtures/people.js'
import { createTestDatabase, type TestDatabase } from './setup/services.js'

const ROWS = 3_000
let oldDb: TestDatabase
let newDb: TestDatabase

beforeAll(async () => {
  ;[oldDb, newDb] = await Promise.all([createTestDatabase('cutover_hash_old'), createTestDatabase('cutover_hash_new')])
  await ensureSchema(newDb.db)
  // Same data, different collations and insertion orders on the two sides.
  await sql`create table people (id integer primary key, full_name text collate "und-x-icu" not null, email text collate "en-x-icu" not null, version integer not null)`.execute(oldDb.db)
  await sql`insert into people select i, 'Zoë' || i || ' Ünal 東京 😀' || (i % 7), 'p' || i || '@example.com', 1 from generate_series(1, ${ROWS}::int) i order by random()`.execute(oldDb.db)
  await sql`create table people_v2 (id integer primary key, first_name text collate "C" not null, last_name text collate "und-x-icu", email text collate "C" not null, version integer not null)`.execute(newDb.db)
  await sql`insert into people_v2 select i, 'Zoë' || i, 'Ünal 東京 😀' || (i % 7), 'p' || i || '@example.com', 1 from generate_series(${ROWS}::int, 1, -1) i`.execute(newDb.db)
}, 60_000)
afterAll(async () => {
  await Promise.all([oldDb?.drop(), newDb?.drop()])
})

function recordingLogger(): Logger & { messages: { message: string; fields?: LogFields }[] } {
  const messages: { message: string; fields?: LogFields }[] = []
  const record = (message: string, fields?: LogFields) => void messages.push({ message, ...(fields ? { fields } : {}) })
  return { messages, debug: record, info: record, warn: record, error: record } as Logger & { messages: typeof messages }
}

async function sources(): Promise<{ old: SegmentSource; new: SegmentSource }> {
  const migration = peopleMigration(oldDb.db, newDb.db)
  const kinds = await columnKinds(newDb.db, 'people_v2')
  return {
    old: await postgresMappedSegments({ db: oldDb.db, table: 'people', key: 'id', fieldMap: peopleMapper.fieldMap!, kinds }),
    new: await postgresTableSegments({ db: newDb.db, table: 'people_v2', key: 'id', fields: mappedFields(migration) }),
  }
}

describe('verification with the built-in row hash', () => {
  it('uses it when both servers agree, reports equal data under different collations as equal, and finds planted differences', { timeout: 60_000 }, async () => {
    const migration = peopleMigration(oldDb.db, newDb.db)
    const logger = recordingLogger()
    const clean = await verifyExhaustive({ migration, ...(await sources()), logger, recheck: { attempts: 0 } })
    expect(logger.messages.find((m) => m.message.startsWith('verification: row hash'))?.fields).toMatchObject({ rowHash: 'hashtextextended' })
    expect(clean.inconsistencies).toEqual([])
    expect(clean.counts).toMatchObject({ oldRecords: ROWS, newRecords: ROWS })

    await sql`update people_v2 set last_name = 'Unal 東京 😀3' where id = 10`.execute(newDb.db)
    await sql`delete from people_v2 where id = 20`.execute(newDb.db)
    try {
      const dirty = await verifyExhaustive({ migration, ...(await sources()), recheck: { attempts: 0 } })
      expect(dirty.inconsistencies.map((e) => [e.key, e.kind]).sort()).toEqual([
        ['10', 'DIFFERENT'],
        ['20', 'MISSING_IN_NEW'],
      ])
    } finally {
      await sql`update people_v2 set last_name = 'Ünal 東京 😀3' where id = 10`.execute(newDb.db)
      await sql`insert into people_v2 values (20, 'Zoë20', 'Ünal 東京 😀6', 'p20@example.com', 1)`.execute(newDb.db)
    }
  })

  it('keeps SHA-256 on both sides when the probes of known inputs differ', { timeout: 60_000 }, async () => {
    const migration = peopleMigration(oldDb.db, newDb.db)
    const both = await sources()
    const builtin = both.new.builtinHash!
    const disagreeing: SegmentSource = { ...both.new, builtinHash: { probe: async () => `${await builtin.probe()},other-server`, source: builtin.source } }
    const logger = recordingLogger()
    const report = await verifyExhaustive({ migration, old: both.old, new: disagreeing, logger, recheck: { attempts: 0 } })
    expect(logger.messages.find((m) => m.message.startsWith('verification: row hash'))?.fields).toMatchObject({ rowHash: 'sha256' })
    expect(report.inconsistencies).toEqual([])
  })
})

describe('native rendering of fields both sides hold in one type family', () => {
  const mapper = fieldMapper({
    old: z.object({ id: z.number().int(), code: z.string(), label: z.string().nullable(), n: z.number().int(), big: z.string(), flag: z.boolean(), ref: z.string().nullable() }),
    new: z.object({ id: z.number().int(), code: z.string(), label: z.string().nullable(), n: z.number().int(), big: z.string(), flag: z.boolean(), ref: z.string().nullable() }),
    fields: [copy('id'), copy('code'), copy('label'), copy('n'), copy('big'), copy('flag'), copy('ref')],
  })
  const FIELDS = ['big', 'code', 'flag', 'id', 'label', 'n', 'ref']

  it('uses it only for same-family fields, never reports equal rows as different (varchar vs text, int2 vs int4, NULL vs empty text), and finds a difference in any field', { timeout: 60_000 }, async () => {
    // Old: text, int2, int8, uuid-as-text; new: varchar, int4, numeric, uuid. `big` and `ref` differ in family.
    await sql`create table items (id integer primary key, code text not null, label text, n smallint not null, big bigint not null, flag boolean not null, ref text)`.execute(oldDb.db)
    await sql`create table items_v2 (id integer primary key, code varchar(40) not null, label varchar(40), n integer not null, big numeric not null, flag boolean not null, ref uuid)`.execute(newDb.db)
    const rows = sql`select i, 'c,"(' || i || ')\\', case i % 3 when 0 then null when 1 then '' else 'l' || i end, (i % 100)::int2, i::bigint * 1000000000, i % 2 = 0,
      case when i % 5 = 0 then null else ('00000000-0000-4000-8000-' || lpad(to_hex(i), 12, '0')) end from generate_series(1, 500) i`
    await sql`insert into items ${rows}`.execute(oldDb.db)
    await sql`insert into items_v2 select a, b, c, d, e, f, g::uuid from (${rows}) as r(a, b, c, d, e, f, g)`.execute(newDb.db)
    const migration = defineMigration({ name: 'items', old: new KyselyTableStore(oldDb.db, 'items', 'id'), new: new KyselyTableStore(newDb.db, 'items_v2', 'id'), mapper })
    const kinds = await columnKinds(newDb.db, 'items_v2')
    const sources = async () => ({
      old: await postgresMappedSegments({ db: oldDb.db, table: 'items', key: 'id', fieldMap: mapper.fieldMap!, kinds }),
      new: await postgresTableSegments({ db: newDb.db, table: 'items_v2', key: 'id', fields: FIELDS }),
    })
    const logger = recordingLogger()
    const clean = await verifyExhaustive({ migration, ...(await sources()), logger, recheck: { attempts: 0 } })
    expect(logger.messages.find((m) => m.message.startsWith('verification: row hash'))?.fields).toMatchObject({ rowHash: 'hashtextextended', nativeFields: ['code', 'flag', 'id', 'label', 'n'] })
    expect(clean.inconsistencies).toEqual([])
    expect(clean.counts).toMatchObject({ oldRecords: 500, newRecords: 500, differingSegments: 0 })

    const plants = [
      sql`update items_v2 set label = null where id = 4`, // '' → NULL
      sql`update items_v2 set code = code || ' ' where id = 10`,
      sql`update items_v2 set n = 7 where id = 20`,
      sql`update items_v2 set flag = not flag where id = 30`,
      sql`update items_v2 set big = big + 1 where id = 40`,
      sql`update items_v2 set ref = null where id = 41`,
    ]
    for (const plant of plants) await plant.execute(newDb.db)
    const dirty = await verifyExhaustive({ migration, ...(await sources()), recheck: { attempts: 0 } })
    expect(dirty.inconsistencies.map((e) => [e.key, e.kind])).toEqual([
      ['10', 'DIFFERENT'],
      ['20', 'DIFFERENT'],
      ['30', 'DIFFERENT'],
      ['4', 'DIFFERENT'],
      ['40', 'DIFFERENT'],
      ['41', 'DIFFERENT'],
    ])
  })
})
