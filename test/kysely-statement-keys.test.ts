/**
 * Keys a write names in its text stand for RETURNING only where PostgreSQL would return the same
 * keys: the key column lookup against the real catalog, and the end-to-end result where a trigger
 * gives inserted rows other keys than the statement named.
 */
import { compositeKey, copy, fieldMapper, type MigrationRuntime, silentLogger } from '@cutover/core'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { KeyColumns } from '../packages/kysely-plugin/src/write/key-column.js'
import type { MigratedTable } from '../packages/kysely-plugin/src/dialect/migrated-tables.js'
import { createHarness, type Harness, storeDifferences, tableStore } from '../packages/kysely-plugin/test/harness.js'
import { createTestDatabase, type TestDatabase } from './setup/services.js'

describe('KeyColumns against the PostgreSQL catalog', () => {
  let database: TestDatabase
  let columns: KeyColumns

  beforeAll(async () => {
    database = await createTestDatabase('cutover_keycols')
    for (const ddl of [
      'create table ints (id bigint primary key)',
      'create table uuids (id uuid primary key)',
      'create table texts (id text primary key)',
      'create table padded (id char(8) primary key)',
      'create table decimals (id numeric(10, 2) primary key)',
      'create schema app',
      'create table app."Mixed Case" (id integer primary key)',
      'create table triggered (id integer primary key)',
      "create function shift_key() returns trigger language plpgsql as 'begin new.id := new.id + 1000; return new; end'",
      'create trigger shift before insert on triggered for each row execute function shift_key()',
      'create table after_triggered (id integer primary key)',
      "create function nothing() returns trigger language plpgsql as 'begin return null; end'",
      'create trigger noted after insert on after_triggered for each row execute function nothing()',
      'create table ruled (id integer primary key)',
      'create rule redirect as on insert to ruled do instead nothing',
      'create table parent (id integer primary key)',
      'create table child () inherits (parent)',
      'create table parted (id integer primary key) partition by range (id)',
      'create view viewed as select * from ints',
      'create table later (id integer primary key)',
      'create table composite (tenant text, id integer, primary key (tenant, id))',
      'create table composite_numeric (tenant text, amount numeric, primary key (tenant, amount))',
    ]) {
      await sql.raw(ddl).execute(database.db)
    }
    columns = new KeyColumns((query) => database.db.executeQuery(query))
  })
  afterAll(async () => {
    await database?.db.destroy()
    await database?.drop()
  })

  const table = (name: string, key = 'id', keys: readonly string[] = [key]) => ({ name, key, keys, side: 'old', rawWrites: 'report', runtime: { logger: silentLogger } as unknown as MigrationRuntime }) as MigratedTable
  async function accepts(name: string, keys: readonly (string | number | bigint)[]): Promise<boolean> {
    const t = table(name)
    await columns.lookUp(t)
    return columns.accepts(t, keys)
  }

  it('accepts a composite key when each part is in the form its column returns', async () => {
    const composite = table('composite', 'tenant', ['tenant', 'id'])
    await columns.lookUp(composite)
    expect(columns.accepts(composite, [compositeKey('a', 1), compositeKey('b', '2')])).toBe(true)
    expect(columns.accepts(composite, [compositeKey('a', 1.5)])).toBe(false)
    expect(columns.accepts(composite, ['a'])).toBe(false)
    const numeric = table('composite_numeric', 'tenant', ['tenant', 'amount'])
    await columns.lookUp(numeric)
    expect(columns.accepts(numeric, [compositeKey('a', 1)])).toBe(false)
  })

  it('accepts keys in the form the column returns them', async () => {
    expect(await accepts('ints', [1, 2n, '3', -4])).toBe(true)
    expect(await accepts('uuids', ['a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'])).toBe(true)
    expect(await accepts('texts', ['Any Text', ''])).toBe(true)
    expect(await accepts('app.Mixed Case', [1])).toBe(true)
    expect(await accepts('after_triggered', [1])).toBe(true)
  })

  it('refuses keys the column would return otherwise', async () => {
    expect(await accepts('ints', ['03'])).toBe(false)
    expect(await accepts('ints', [1.5])).toBe(false)
    expect(await accepts('ints', [2 ** 60])).toBe(false)
    expect(await accepts('uuids', ['A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'])).toBe(false)
    expect(await accepts('texts', [1])).toBe(false)
  })

  it('looks a table up again after a while, so that a trigger added later is seen', async () => {
    let now = 0
    const timed = new KeyColumns((query) => database.db.executeQuery(query), () => now)
    const later = table('later')
    await timed.lookUp(later)
    expect(timed.accepts(later, [1])).toBe(true)
    await sql.raw('create trigger shift before update on later for each row execute function shift_key()').execute(database.db)
    now += 59_000
    expect(timed.accepts(later, [1])).toBe(true)
    now += 2_000
    expect(timed.accepts(later, [1])).toBe(false) // RETURNING while the lookup runs again
    await timed.lookUp(later)
    expect(timed.accepts(later, [1])).toBe(false)
  })

  it('keeps RETURNING for tables whose keys it cannot vouch for', async () => {
    for (const name of ['padded', 'decimals', 'triggered', 'ruled', 'parent', 'parted', 'viewed', 'missing', 'app.missing']) {
      expect({ name, accepts: await accepts(name, [1]) }).toEqual({ name, accepts: false })
    }
  })
})

const items = fieldMapper({
  old: z.object({ id: z.number(), name: z.string() }),
  new: z.object({ id: z.number(), name: z.string() }),
  fields: [copy('id'), copy('name')],
})

describe('Kysely plugin: writes whose keys a trigger rewrites', () => {
  let h: Harness

  beforeAll(async () => {
    h = await createHarness({
      prefix: 'cutover_kstmtkeys',
      oldDdl: [
        'create table items (id integer primary key, name text not null)',
        "create function shift_key() returns trigger language plpgsql as 'begin new.id := new.id + 1000; return new; end'",
        'create trigger shift before insert on items for each row execute function shift_key()',
        'create table plain_items (id integer primary key, name text not null)',
      ],
      newDdl: ['create table items (id integer primary key, name text not null)', 'create table plain_items (id integer primary key, name text not null)'],
      migrations: (old, neu) => [
        { name: 'items', old: tableStore(old, 'items', 'id'), new: tableStore(neu, 'items', 'id'), mapper: items, mirror: { recheckDelayMs: false } },
        { name: 'plain_items', old: tableStore(old, 'plain_items', 'id'), new: tableStore(neu, 'plain_items', 'id'), mapper: items, mirror: { recheckDelayMs: false } },
      ],
      oldTables: { items: { migration: 'items', side: 'old' }, plain_items: { migration: 'plain_items', side: 'old' } },
    })
    await h.cutover.setPhase('items', 'shadow', { actor: 'test' })
    await h.cutover.setPhase('plain_items', 'shadow', { actor: 'test' })
  })
  afterAll(async () => {
    await h?.close()
  })

  it('mirrors the keys the rows got, not the ones the statement named', async () => {
    for (let id = 1; id <= 20; id++) {
      await h.app.insertInto('items').values({ id, name: `item ${id}` }).execute()
      // Only some rows are written again (by the key they got): the others are mirrored by their insert alone.
      if (id % 2 === 0) await h.app.updateTable('items').set({ name: `renamed ${id}` }).where('id', '=', id + 1000).execute()
    }
    await h.cutover.drain()
    expect(await storeDifferences(h.cutover, 'items')).toEqual([])
  })

  it('mirrors writes that name their keys, including ones that touch nothing', async () => {
    for (let id = 1; id <= 20; id++) {
      await h.app.insertInto('plain_items').values({ id, name: `item ${id}` }).execute()
      await h.app.updateTable('plain_items').set({ name: `renamed ${id}` }).where('id', '=', id).execute()
      await h.app.updateTable('plain_items').set({ name: 'nobody' }).where('id', '=', id + 1000).execute()
    }
    await h.app.deleteFrom('plain_items').where('id', 'in', [1, 2, 3]).execute()
    await h.app.insertInto('plain_items').values({ id: 4, name: 'again' }).onConflict((oc) => oc.column('id').doUpdateSet({ name: 'upserted' })).execute()
    await h.cutover.drain()
    expect(await storeDifferences(h.cutover, 'plain_items')).toEqual([])
    expect(h.cutover.metrics.counter('write.unmirrored', { migration: 'plain_items', target: 'plain_items' })).toBe(0)
  })
})
