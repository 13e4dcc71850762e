/**
 * Composite primary keys in interception mode: the Kysely wrapper attributes inserts, updates and
 * deletes on a table keyed by `(tenant_id, id)` to their composite keys (`compositeKey`), whether
 * the statement names them (`insert … values`, `where tenant_id = … and id = …`, `id in (…)`) or
 * they come back through RETURNING, and the mirror copies exactly those rows. Sampled reads are
 * compared by composite key.
 */
import { copy, fieldMapper, type Phase } from '@cutover/core'
import { Kysely, type LogEvent, PostgresDialect, sql } from 'kysely'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { createHarness, type Harness } from '../packages/kysely-plugin/test/harness.js'
import { KyselyTableStore, withCutover } from '../packages/kysely-plugin/src/index.js'

const ORDERS_DDL = 'create table orders (tenant_id integer not null, id serial not null, note text not null, primary key (tenant_id, id))'
const ordersMapper = fieldMapper({
  old: z.object({ tenant_id: z.number().int(), id: z.number().int(), note: z.string() }),
  new: z.object({ tenant_id: z.number().int(), id: z.number().int(), note: z.string() }),
  fields: [copy('tenant_id'), copy('id'), copy('note')],
})

describe('composite primary keys through the Kysely wrapper', () => {
  let h: Harness
  const rows = async (db: Harness['old']['db']) => (await sql<Record<string, unknown>>`select * from orders order by tenant_id, id`.execute(db)).rows
  const unmirrored = () => h.cutover.metrics.counter('write.unmirrored', { migration: 'orders', target: 'orders' })
  const problems = () =>
    ['mirror.dead_lettered', 'mirror.rejected', 'compare.failed', 'compare.mismatch'].map((name) => [name, h.cutover.metrics.counter(name, name.startsWith('compare') ? { migration: 'orders' } : { direction: 'old-to-new', migration: 'orders' })])

  beforeAll(async () => {
    h = await createHarness({
      prefix: 'cutover_kcomp',
      oldDdl: [ORDERS_DDL],
      newDdl: [ORDERS_DDL],
      migrations: (old, neu) => [
        {
          name: 'orders',
          old: new KyselyTableStore(old, 'orders', ['tenant_id', 'id']),
          new: new KyselyTableStore(neu, 'orders', ['tenant_id', 'id']),
          mapper: ordersMapper,
          mirror: { recheckDelayMs: false, retry: { attempts: 2, baseDelayMs: 5, maxDelayMs: 10 } },
        },
      ],
      oldTables: { orders: { migration: 'orders', side: 'old' } },
    })
    await h.cutover.setPhase('orders', 'shadow', { actor: 'test' })
    // Let the key-column lookup answer, so that statements naming their keys run as written.
    await h.app.insertInto('orders').values({ tenant_id: 0, id: 0, note: 'warm-up' }).execute()
    await new Promise((resolve) => setTimeout(resolve, 200))
  })

  afterAll(async () => {
    await h?.close()
  })

  const settled = async () => {
    await h.cutover.drain()
    expect(await rows(h.neu.db)).toEqual(await rows(h.old.db))
  }

  it('mirrors inserts that name their composite keys, and inserts whose id the sequence gives', async () => {
    await h.app.insertInto('orders').values([{ tenant_id: 1, id: 1, note: 'a' }, { tenant_id: 1, id: 2, note: 'b' }, { tenant_id: 2, id: 1, note: 'c' }]).execute()
    const made = await h.app.insertInto('orders').values({ tenant_id: 3, note: 'from the sequence' }).returning(['id', 'note']).executeTakeFirstOrThrow()
    expect(made).toEqual({ id: expect.any(Number), note: 'from the sequence' })
    await h.app.insertInto('orders').values({ tenant_id: 1, id: 2, note: 'b2' }).onConflict((oc) => oc.columns(['tenant_id', 'id']).doUpdateSet({ note: 'b2' })).execute()
    await settled()
    expect(await rows(h.neu.db)).toHaveLength(5)
  })

  it('mirrors updates and deletes by a composite key equality or IN list, and by any other filter', async () => {
    await h.app.updateTable('orders').set({ note: 'a2' }).where('tenant_id', '=', 1).where('id', '=', 1).execute()
    await h.app.updateTable('orders').set({ note: 'c2' }).where('note', '=', 'c').execute()
    await h.app.transaction().execute(async (trx) => {
      await trx.updateTable('orders').set({ note: 'in a transaction' }).where('tenant_id', '=', 1).where('id', 'in', [1, 2]).execute()
      await trx.deleteFrom('orders').where('tenant_id', '=', 3).execute()
    })
    await settled()
    await h.app.deleteFrom('orders').where('tenant_id', '=', 1).where('id', 'in', [1, 99]).execute()
    await h.app.deleteFrom('orders').where('note', 'like', 'c%').execute()
    await settled()
    expect((await rows(h.neu.db)).map((row) => `${row.tenant_id}/${row.id}`)).toEqual(['0/0', '1/2'])
    expect(unmirrored()).toBe(0)
  })

  it('runs statements that name their composite keys as written, and adds both key columns to RETURNING otherwise', async () => {
    const log: string[] = []
    const app = new Kysely<any>({
      dialect: withCutover(new PostgresDialect({ pool: new pg.Pool({ connectionString: h.old.url, max: 2 }) }), { cutover: h.cutover, tables: { orders: { migration: 'orders', side: 'old' } } }),
      log: (event: LogEvent) => void log.push(event.query.sql),
    })
    h.old.track(app)
    // This Kysely's driver looks the key columns up on its first write; until then, RETURNING.
    await app.updateTable('orders').set({ note: 'b' }).where('tenant_id', '=', 1).where('id', '=', 2).execute()
    await new Promise((resolve) => setTimeout(resolve, 200))
    log.length = 0
    await app.updateTable('orders').set({ note: 'named' }).where('tenant_id', '=', 1).where('id', '=', 2).execute()
    await app.updateTable('orders').set({ note: 'b3' }).where('note', '=', 'named').execute()
    expect(log).toEqual([
      'update "orders" set "note" = $1 where "tenant_id" = $2 and "id" = $3',
      'update "orders" set "note" = $1 where "note" = $2 returning "orders"."tenant_id" as "__cutover_key_1", "orders"."id" as "__cutover_key_2"',
    ])
    await settled()
  })

  it('an update of one key column mirrors the row under its new key and reports the old one', async () => {
    await h.app.updateTable('orders').set({ id: 7 }).where('tenant_id', '=', 1).where('id', '=', 2).execute()
    await h.cutover.drain()
    expect((await rows(h.neu.db)).map((row) => `${row.tenant_id}/${row.id}`)).toEqual(['0/0', '1/2', '1/7'])
    expect(unmirrored()).toBe(1)
    // Reconciliation's business; removed here so that the next test starts equal.
    await h.stores.new.delete([[1, 2]])
  })

  it('compares sampled reads by composite key', async () => {
    await moveTo(h, 'compare')
    await h.app.insertInto('orders').values([{ tenant_id: 5, id: 1, note: 'x' }, { tenant_id: 5, id: 2, note: 'y' }]).execute()
    await h.cutover.drain()
    const equal = () => h.cutover.metrics.counter('compare.equal', { migration: 'orders' })
    const before = equal()
    expect(await h.app.selectFrom('orders').selectAll().where('tenant_id', '=', 5).orderBy('id').execute()).toHaveLength(2)
    expect(await h.app.selectFrom('orders').select(['tenant_id', 'id', 'note']).where('note', '=', 'x').execute()).toHaveLength(1)
    await new Promise((resolve) => setTimeout(resolve, 300))
    await h.cutover.drain()
    expect(equal()).toBeGreaterThanOrEqual(before + 2)
    expect(problems()).toEqual(problems().map(([name]) => [name, 0]))
  })
})

async function moveTo(h: Harness, target: Phase): Promise<void> {
  const order: readonly Phase[] = ['off', 'shadow', 'compare']
  let at = order.indexOf(h.cutover.migration('orders').phase)
  while (order[at] !== target) {
    at += 1
    await h.cutover.setPhase('orders', order[at] as Phase, { actor: 'test', compareSample: 1 })
  }
}

