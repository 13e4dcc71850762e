/**
 * Composite, uuid and text primary keys end to end through the jobs (issue 12): backfill, then
 * exhaustive verification (segments inside PostgreSQL with the built-in hash, and streamed) finding
 * planted differences by their keys, reconciliation by key from the BUILT `cutover` command run as
 * a child process, and a dead letter of a composite key kept with its parts' types and replayed.
 */
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import * as core from '@cutover/core'
import { backfill, BackfillJobs, compositeKey, copy, createCutover, DeadLetterTable, defineMigration, ensureSchema, fieldMapper, keyString, QuarantineTable, reconcile, silentLogger, verifyExhaustive, verifySample } from '@cutover/core'
import * as plugin from '@cutover/kysely-plugin'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { compositeMigrations, createCompositeTables, DEVICES, deviceId, ORDERS_PER_TENANT, TAGS, TENANTS } from './fixtures/composite-keys.js'
import { createTestDatabase, type TestDatabase } from './setup/services.js'

const ROOT = fileURLToPath(new URL('../', import.meta.url))
const BIN = 'packages/core/dist/cli/bin.js'
let oldDb: TestDatabase
let newDb: TestDatabase
let fixture: ReturnType<typeof compositeMigrations>

beforeAll(async () => {
  ;[oldDb, newDb] = await Promise.all([createTestDatabase('cutover_ck_old'), createTestDatabase('cutover_ck_new')])
  await ensureSchema(newDb.db)
  await createCompositeTables(oldDb.db, newDb.db)
  fixture = compositeMigrations({ ...core, ...plugin }, oldDb.db, newDb.db)
}, 60_000)
afterAll(async () => {
  await Promise.all([oldDb?.drop(), newDb?.drop()])
})

/** The built command, as a user runs it: `node dist/cli/bin.js … --json`. */
function cutover(...args: string[]): Promise<{ code: number | null; result: any; stderr: string }> {
  if (!existsSync(`${ROOT}${BIN}`)) throw new Error(`${BIN} is missing: run pnpm build first`)
  return new Promise((resolve) => {
    let out = ''
    let err = ''
    const child = spawn(process.execPath, [BIN, ...args, '--config', 'test/fixtures/composite-keys.config.ts', '--json'], {
      cwd: ROOT,
      env: { ...process.env, CUTOVER_TEST_OLD_URL: oldDb.url, CUTOVER_TEST_NEW_URL: newDb.url },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()))
    child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()))
    child.on('exit', (code) => {
      const last = out.split('\n').filter((line) => line.startsWith('{')).at(-1)
      resolve({ code, result: last ? JSON.parse(last) : undefined, stderr: err })
    })
  })
}

const quiet = { recheck: { attempts: 0 }, logger: silentLogger } as const
const found = (report: { inconsistencies: readonly { key: string; kind: string }[] }) => report.inconsistencies.map((entry) => [entry.key, entry.kind]).sort()

describe('composite, uuid and text keys through the jobs', () => {
  it('backfills, verifies by segments and streamed, finds planted differences by key, and reconciles them by key from the built CLI', { timeout: 180_000 }, async () => {
    const { migrations } = fixture
    const summaries = await Promise.all(Object.values(migrations).map((migration) => backfill({ migration, control: newDb.db, batch: { initial: 250, min: 250, max: 250 } })))
    expect(summaries.map((s) => s.counts.written)).toEqual([TENANTS * ORDERS_PER_TENANT, DEVICES, TAGS.length])
    for (const name of ['orders', 'devices', 'tags'] as const) {
      const inDatabase = await verifyExhaustive({ migration: migrations[name], ...(await fixture.segments(name)), ...quiet })
      expect(inDatabase.inconsistencies, name).toEqual([])
      expect(inDatabase.counts.oldRecords, name).toBe(inDatabase.counts.newRecords)
      expect((await verifyExhaustive({ migration: migrations[name], ...quiet })).consistent, `${name} streamed`).toBe(true)
    }

    await sql`update orders_v2 set item = 'changed' where tenant_id = 2 and id = 7`.execute(newDb.db)
    await sql`delete from orders_v2 where tenant_id = 3 and id = 1`.execute(newDb.db)
    // Same (tenant, id) pair in another tenant: a key is both columns, never the first one.
    await sql`update orders_v2 set quantity = quantity + 1 where tenant_id = 1 and id = 7`.execute(newDb.db)
    await sql`update devices_v2 set label = 'relabelled' where id = ${deviceId(42)}::uuid`.execute(newDb.db)
    await sql`update tags_v2 set color = null where name = 'a,b'`.execute(newDb.db)
    await sql`delete from tags_v2 where name = 'x"y'`.execute(newDb.db)

    const expected = {
      orders: [
        [keyString([1, 7]), 'DIFFERENT'],
        [keyString([2, 7]), 'DIFFERENT'],
        [keyString([3, 1]), 'MISSING_IN_NEW'],
      ],
      devices: [[deviceId(42), 'DIFFERENT']],
      tags: [
        ['a,b', 'DIFFERENT'],
        ['x"y', 'MISSING_IN_NEW'],
      ],
    }
    for (const name of ['orders', 'devices', 'tags'] as const) {
      expect(found(await verifyExhaustive({ migration: migrations[name], ...(await fixture.segments(name)), ...quiet })), `${name} in database`).toEqual(expected[name])
      expect(found(await verifyExhaustive({ migration: migrations[name], ...quiet })), `${name} streamed`).toEqual(expected[name])
      expect(found(await verifySample({ migration: migrations[name], buckets: 10_000, ...quiet })), `${name} sampled`).toEqual(expected[name])
    }

    // Composite keys on the command line are JSON, parts in key-column order; text keys with a
    // comma or quote too. Every run repairs exactly the keys it names.
    const orders = await cutover('reconcile', 'orders', '--keys', '[[2,7],[3,"1"]]')
    expect(orders.code, orders.stderr).toBe(0)
    expect(orders.result).toMatchObject({ command: 'reconcile', authoritative: 'old', attempted: 2, repaired: 2 })
    expect(orders.result.repairs.map((r: { key: string }) => r.key).sort()).toEqual([keyString([2, 7]), keyString([3, 1])])
    expect(found(await verifyExhaustive({ migration: migrations.orders, ...(await fixture.segments('orders')), ...quiet }))).toEqual([[keyString([1, 7]), 'DIFFERENT']])

    const devices = await cutover('reconcile', 'devices', '--keys', deviceId(42))
    expect(devices.code, devices.stderr).toBe(0)
    expect(devices.result).toMatchObject({ attempted: 1, repaired: 1 })
    const tags = await cutover('reconcile', 'tags', '--keys', JSON.stringify(['a,b', 'x"y']))
    expect(tags.code, tags.stderr).toBe(0)
    expect(tags.result).toMatchObject({ attempted: 2, repaired: 2 })
    for (const name of ['devices', 'tags'] as const) {
      expect((await verifyExhaustive({ migration: migrations[name], ...(await fixture.segments(name)), ...quiet })).consistent, name).toBe(true)
    }

    // The report's keys (texts) are read back into composite keys: a plain reconcile repairs the rest.
    await verifyExhaustive({ migration: migrations.orders, ...(await fixture.segments('orders')), control: newDb.db, ...quiet })
    const fromReport = await cutover('reconcile', 'orders')
    expect(fromReport.code, fromReport.stderr).toBe(0)
    expect(fromReport.result).toMatchObject({ attempted: 1, repaired: 1 })
    expect((await verifyExhaustive({ migration: migrations.orders, ...(await fixture.segments('orders')), ...quiet })).consistent).toBe(true)
  })

  it('refuses --keys that are not keys of the migration with a usage error naming the migration and the value', { timeout: 60_000 }, async () => {
    const cases: [string, string, RegExp][] = [
      ['orders', '2,7', /its key has 2 columns \(tenant_id, id\); write the keys as JSON/],
      ['orders', '[[2]]', /key 1 \(\[2\]\) is not an array of 2 parts/],
      ['orders', '[[2,7]', /not valid JSON/],
      ['orders', '[[2,1.5]]', /part 2 of key 1 \(1.5\) is not a string or an integer/],
      ['tags', '[]', /expected a non-empty JSON array of keys/],
    ]
    for (const [migration, value, problem] of cases) {
      const run = await cutover('reconcile', migration, '--keys', value)
      expect(run.code, value).toBe(64)
      expect(run.stderr, value).toContain(`--keys ${JSON.stringify(value)} for ${migration}:`)
      expect(run.stderr, value).toMatch(problem)
    }
  })

  it('dead-letters a composite key with its parts and types, replays it, and reconciles one kept as text only', { timeout: 120_000 }, async () => {
    const { migrations } = fixture
    const table = new DeadLetterTable(newDb.db)
    await sql`alter table orders_v2 add constraint no_refused check (item <> 'refused')`.execute(newDb.db)
    await sql`update orders set item = 'refused' where tenant_id = 1 and id in (5, 6)`.execute(oldDb.db)
    const engine = await createCutover({ migrations: [migrations.orders], control: newDb.db, env: { CUTOVER_ORDERS_PHASE: 'shadow' }, pollIntervalMs: false, logger: silentLogger })
    try {
      engine.migration('orders').recordWrite('old', { key: compositeKey(1, 5), op: 'upsert' })
      await engine.drain()
      const letters = await table.open('orders')
      expect(letters).toHaveLength(1)
      expect(letters[0]).toMatchObject({ key: keyString([1, 5]), keyValue: [1, 5], direction: 'old-to-new', reasonCode: 'STORE_FAILED' })
      const { rows } = await sql<{ key_type: string }>`select key_type from cutover.dead_letters where id = ${letters[0]?.id}`.execute(newDb.db)
      expect(rows[0]?.key_type).toBe('composite')

      // Still refused: the replay keeps the entry open and counts the attempt.
      expect(await engine.replayDeadLetters('orders')).toEqual({ replayed: 0, stillFailing: 1 })
      await sql`alter table orders_v2 drop constraint no_refused`.execute(newDb.db)
      expect(await engine.replayDeadLetters('orders')).toEqual({ replayed: 1, stillFailing: 0 })
      expect(await table.countOpen('orders')).toBe(0)
      const { rows: replayed } = await sql<{ item: string }>`select item from orders_v2 where tenant_id = 1 and id = 5`.execute(newDb.db)
      expect(replayed).toEqual([{ item: 'refused' }])
    } finally {
      await engine.close({ timeoutMs: 5_000 })
    }

    // A writer that kept only the key's text (an entry written before typed keys): rebuilt from the
    // text and the store's key columns, repaired from the CLI and resolved.
    await table.write([{ migration: 'orders', direction: 'old-to-new', key: keyString([1, 6]), op: 'upsert', reasonCode: 'STORE_FAILED', reason: 'test', attempts: 1 }])
    expect((await table.open('orders'))[0]?.keyValue).toBeUndefined()
    const run = await cutover('reconcile', 'orders', '--include-dead-letters', '--keys', '[[1,7]]')
    expect(run.code, run.stderr).toBe(0)
    expect(run.result).toMatchObject({ attempted: 2, repaired: 2 })
    expect(run.result.repairs.map((r: { key: string }) => r.key).sort()).toEqual([keyString([1, 6]), keyString([1, 7])])
    expect(await table.countOpen('orders')).toBe(0)
    const { rows: repaired } = await sql<{ item: string }>`select item from orders_v2 where tenant_id = 1 and id = 6`.execute(newDb.db)
    expect(repaired).toEqual([{ item: 'refused' }])
    // And the same through the API, with only the text of the keys, for a migration of composite keys.
    const result = await reconcile({ migration: migrations.orders, control: newDb.db, keys: [keyString([1, 6])], logger: silentLogger })
    expect(result).toMatchObject({ attempted: 1, repaired: 1 })
  })
  it('quarantines a composite key a backfill cannot write with its parts and types, and reconciles it from the quarantine', { timeout: 120_000 }, async () => {
    await sql`create table lines (tenant_id integer not null, id integer not null, amount integer not null, primary key (tenant_id, id))`.execute(oldDb.db)
    await sql`insert into lines select t, i, i from generate_series(1, 2) t, generate_series(1, 50) i`.execute(oldDb.db)
    await sql`create table lines_v2 (tenant_id integer not null, id integer not null, amount integer not null check (amount <> 13), primary key (tenant_id, id))`.execute(newDb.db)
    const schema = z.object({ tenant_id: z.number().int(), id: z.number().int(), amount: z.number().int() })
    const migration = defineMigration({
      name: 'lines',
      old: new plugin.KyselyTableStore(oldDb.db, 'lines', ['tenant_id', 'id']),
      new: new plugin.KyselyTableStore(newDb.db, 'lines_v2', ['tenant_id', 'id']),
      mapper: fieldMapper({ old: schema, new: schema, fields: [copy('tenant_id'), copy('id'), copy('amount')] }),
    })
    const summary = await backfill({ migration, control: newDb.db, batch: { initial: 40, min: 40, max: 40 } })
    expect(summary.counts.quarantined).toBe(2)
    const entries = await new QuarantineTable(newDb.db).open('lines')
    expect(entries.map((e) => e.key).sort()).toEqual([keyString([1, 13]), keyString([2, 13])])
    const { rows } = await sql<{ key_type: string; key_value: unknown }>`select key_type, key_value from cutover.quarantine where migration = 'lines' order by key`.execute(newDb.db)
    expect(rows.map((r) => r.key_type)).toEqual(['composite', 'composite'])

    await sql`alter table lines_v2 drop constraint lines_v2_amount_check`.execute(newDb.db)
    const result = await reconcile({ migration, control: newDb.db, includeQuarantine: true, logger: silentLogger })
    expect(result).toMatchObject({ attempted: 2, repaired: 2 })
    const { rows: repaired } = await sql<{ n: string }>`select count(*) as n from lines_v2 where amount = 13`.execute(newDb.db)
    expect(repaired[0]?.n).toBe('2')
  })
  it('plans a distributed backfill of a composite-key table at real composite keys and works every range', { timeout: 120_000 }, async () => {
    await sql`create table shipments (tenant_id integer not null, id integer not null, weight integer not null, primary key (tenant_id, id))`.execute(oldDb.db)
    await sql`insert into shipments select t, i, i * t from generate_series(1, 3) t, generate_series(1, 100) i`.execute(oldDb.db)
    await sql`create table shipments_v2 (tenant_id integer not null, id integer not null, weight integer not null, primary key (tenant_id, id))`.execute(newDb.db)
    const schema = z.object({ tenant_id: z.number().int(), id: z.number().int(), weight: z.number().int() })
    const migration = defineMigration({
      name: 'shipments',
      old: new plugin.KyselyTableStore(oldDb.db, 'shipments', ['tenant_id', 'id']),
      new: new plugin.KyselyTableStore(newDb.db, 'shipments_v2', ['tenant_id', 'id']),
      mapper: fieldMapper({ old: schema, new: schema, fields: [copy('tenant_id'), copy('id'), copy('weight')] }),
    })
    const jobs = new BackfillJobs({ control: newDb.db, pollingIntervalSeconds: 0.1 })
    const ranges = await jobs.plan(migration, { rangeSize: 120 })
    // Cut at the 120th and 240th rows in key order: (2, 20) and (3, 40), both columns.
    expect(ranges.map((r) => r.until)).toEqual([[2, 20], [3, 40], undefined])
    await jobs.work(migration, { backfill: { batch: { initial: 50, min: 50, max: 50 } } })
    const deadline = Date.now() + 60_000
    while (!(await jobs.finished('shipments')) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100))
    await jobs.stop()
    expect(await jobs.finished('shipments')).toBe(true)
    const { rows } = await sql<{ n: string }>`select count(*) as n from shipments_v2`.execute(newDb.db)
    expect(rows[0]?.n).toBe('300')
    expect((await verifyExhaustive({ migration, ...quiet })).consistent).toBe(true)
  })
})
