/**
 * The in-database segment checksum must equal the JavaScript one for every column type, or
 * exhaustive verification would report phantom differences (or, worse, miss real ones).
 */
import { KyselyTableStore } from '@cutover/kysely-plugin'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import {
  columnKinds,
  copy,
  ensureSchema,
  fieldMapper,
  postgresMappedSegments,
  postgresTableSegments,
  type Row,
  rowHash,
  split,
  storeSegments,
} from '@cutover/core'
import { createTestDatabase, type TestDatabase } from './setup/services.js'

let db: TestDatabase
const FIELDS = ['id', 'name', 'note', 'big', 'price', 'ratio', 'active', 'at', 'local_at', 'doc', 'tags', 'blob', 'uid', 'small']

beforeAll(async () => {
  db = await createTestDatabase('cutover_checksum')
  await ensureSchema(db.db)
  await sql`create table things (
    id integer primary key, name text not null, note varchar(50), big bigint, price numeric(12,2), ratio float8,
    active boolean, at timestamptz, local_at timestamp, doc jsonb, tags text[], blob bytea, uid uuid, small smallint)`.execute(db.db)
  await sql`insert into things values
    (1, 'plain', null, 9007199254740993, 12.50, 0.5, true, '2024-05-01T09:30:00.123456Z', '2024-05-01 09:30:00.999', '{"b": 1, "a": [1, 2.50, null, "x"], "n": null, "z": {"y": true}}', '{a,b}', '\\x00ff', 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', -3),
    (2, 'quotes "and" \\ backslash', 'tab\there', -1, -0.00, -1.25e-3, false, '1999-12-31T23:59:59Z', null, '[]', '{}', '\\x', null, 0),
    (3, 'ünïcødé 😀 and
newline', '', 0, 1000000, 1e21, null, null, '2030-01-01', '{"nested": {"deeper": {"k": "v"}}, "e": 1e2}', '{"with space",null}', null, null, null),
    (4, 'control ' || chr(1) || chr(31), 'x', null, null, null, null, null, null, 'null', null, null, null, null),
    (5, 'ε', null, null, null, 3.0, true, '2024-02-29T00:00:00.001+05:30', null, '"just a string"', null, null, null, null)`.execute(db.db)
  await sql`create table people (id integer primary key, full_name text, email text)`.execute(db.db)
  await sql`insert into people select i, case when i % 3 = 0 then 'Single' when i % 3 = 1 then 'Ada King Lovelace' else 'Alan Turing' end, 'p' || i || '@example.com' from generate_series(1, 300) i`.execute(db.db)
})
afterAll(async () => {
  await db?.drop()
})

describe('postgresSegments', () => {
  it('hashes every row exactly as rowHash hashes the record the Kysely store returns', async () => {
    const store = new KyselyTableStore(db.db, 'things', 'id')
    const rows = await store.scan({ limit: 100 })
    const source = await postgresTableSegments({ db: db.db, table: 'things', key: 'id', fields: FIELDS })
    const inDatabase = await source.checksums({ bits: 32 })
    for (const row of rows) {
      const hash = rowHash(projectOnto(row, FIELDS))
      expect({ id: row.id, segment: inDatabase.get(hash.segment) }).toEqual({ id: row.id, segment: { count: 1, sum: hash.digest } })
    }
    const streamed = await storeSegments(store, { project: (r) => projectOnto(r, FIELDS) }).checksums({ bits: 6 })
    expect(await source.checksums({ bits: 6 })).toEqual(streamed)
  })

  it('honours the comparison rules: numeric fields, seconds precision, top-level ignore, nulls kept', async () => {
    const store = new KyselyTableStore(db.db, 'things', 'id')
    for (const rules of [{ numeric: ['big', 'price'] }, { timestampPrecision: 's' as const, ignore: ['doc'] }, { nullEqualsMissing: false }, { timestampPrecision: 'us' as const }]) {
      const source = await postgresTableSegments({ db: db.db, table: 'things', key: 'id', fields: FIELDS, rules })
      const streamed = storeSegments(store, { project: (r) => projectOnto(r, FIELDS), rules })
      expect(await source.checksums({ bits: 32 })).toEqual(await streamed.checksums({ bits: 32 }))
    }
  })

  it('computes the mapped old table through the field map SQL, equal to the mapper in JavaScript', async () => {
    const mapper = fieldMapper({
      old: z.object({ id: z.number(), full_name: z.string(), email: z.string() }),
      new: z.object({ id: z.number(), first_name: z.string(), last_name: z.string().nullable(), email: z.string() }),
      fields: [copy('id'), split('full_name', ['first_name', 'last_name']), copy('email')],
    })
    await sql`create table people_v2 (id integer primary key, first_name text, last_name text, email text)`.execute(db.db)
    const kinds = await columnKinds(db.db, 'people_v2')
    const mapped = await postgresMappedSegments({ db: db.db, table: 'people', key: 'id', fieldMap: mapper.fieldMap!, kinds })
    const streamed = storeSegments(new KyselyTableStore(db.db, 'people', 'id'), { project: (r) => mapper.forward(r) })
    expect(await mapped.checksums({ bits: 8 })).toEqual(await streamed.checksums({ bits: 8 }))
    const seven = rowHash(mapper.forward((await new KyselyTableStore(db.db, 'people', 'id').get([7])).get('7')))
    expect((await mapped.keys({ bits: 8, segments: [seven.segment >>> 24] })).map(Number)).toContain(7)
  })
})

function projectOnto(row: Row, fields: readonly string[]): Row {
  return Object.fromEntries(fields.map((f) => [f, row[f]]))
}
