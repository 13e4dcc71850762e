/**
 * In `compare` with the change log capturing the old side, a read of a key this process has just
 * written, whose log entry no worker has applied yet, finds the new store behind: that is mirror
 * lag (settling), not a mismatch for the guard and the gates.
 */
import { copy, fieldMapper } from '@cutover/core'
import { withCutover } from '@cutover/kysely-plugin'
import { Kysely, PostgresDialect } from 'kysely'
import pg from 'pg'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { z } from 'zod'
import { createHarness, type Harness, storeDifferences, tableStore } from '../packages/kysely-plugin/test/harness.js'

const DDL = 'create table person (id integer primary key, first_name text not null)'
const schema = z.object({ id: z.number().int(), first_name: z.string() })
let h: Harness
let app: Kysely<any>

beforeAll(async () => {
  h = await createHarness({
    prefix: 'cutover_capcmp',
    oldDdl: [DDL, "insert into person select i, 'name ' || i from generate_series(1, 20) i"],
    newDdl: [DDL, "insert into person select i, 'name ' || i from generate_series(1, 20) i"],
    migrations: (old, neu) => [
      {
        name: 'person',
        old: tableStore(old, 'person', 'id'),
        new: tableStore(neu, 'person', 'id'),
        mapper: fieldMapper({ old: schema, new: schema, fields: [copy('id'), copy('first_name')] }),
        // A slow worker: its applies come well after the reads below.
        capture: { mode: 'change-log', install: true, workers: 1, pollIntervalMs: 1_500 },
      },
    ],
    oldTables: { person: { migration: 'person', side: 'old' } },
  })
  app = new Kysely<any>({
    dialect: withCutover(new PostgresDialect({ pool: new pg.Pool({ connectionString: h.old.url, max: 4 }) }), { cutover: h.cutover, tables: { person: { migration: 'person', side: 'old' } } }),
  })
  h.old.track(app)
  await h.cutover.setPhase('person', 'shadow', { actor: 'test' })
  await h.cutover.setPhase('person', 'compare', { actor: 'test', compareSample: 1 })
})

afterAll(async () => {
  await h?.close()
})

it('counts a compared read of a written key the change log has not applied yet as settling, not as a mismatch', async () => {
  const metric = (name: string) => h.cutover.metrics.counter(name, { migration: 'person' })
  // The wrapper trusts keys named by a statement once it has looked up the key column's type; a
  // write before that (or one naming no keys) is left to the triggers without its keys noted.
  await app.updateTable('person').set({ first_name: 'warm-up' }).where('id', '=', 20).execute()
  await new Promise((resolve) => setTimeout(resolve, 200))
  await h.cutover.drain()
  const before = { mismatch: metric('compare.mismatch'), settling: metric('compare.settling'), compared: metric('compare.equal') + metric('compare.mismatch') }
  for (let id = 1; id <= 5; id++) {
    await app.updateTable('person').set({ first_name: `renamed ${id}` }).where('id', '=', id).execute()
    expect(await app.selectFrom('person').selectAll().where('id', '=', id).executeTakeFirst()).toEqual({ id, first_name: `renamed ${id}` })
  }
  // Every read is compared (sample 1); each comparison ends as equal or mismatch.
  await waitFor(() => metric('compare.equal') + metric('compare.mismatch') - before.compared >= 5)
  expect(metric('compare.mismatch') - before.mismatch).toBe(0)
  expect(metric('compare.settling') - before.settling).toBeGreaterThanOrEqual(1)
  await h.cutover.drain()
  expect(await storeDifferences(h.cutover, 'person')).toEqual([])
}, 30_000)

it('counts reads after a write naming no keys as settling until the log is seen empty, then differences count again', async () => {
  const metric = (name: string) => h.cutover.metrics.counter(name, { migration: 'person' })
  await h.cutover.drain()
  await new Promise((resolve) => setTimeout(resolve, 1_500))
  const before = { mismatch: metric('compare.mismatch'), compared: metric('compare.equal') + metric('compare.mismatch') }
  // Keys not named by the statement: it runs as written and the triggers log it.
  await app.updateTable('person').set({ first_name: 'bulk' }).where('first_name', 'in', ['name 7', 'name 8']).execute()
  expect(await app.selectFrom('person').selectAll().where('id', 'in', [7, 8]).orderBy('id').execute()).toEqual([
    { id: 7, first_name: 'bulk' },
    { id: 8, first_name: 'bulk' },
  ])
  await waitFor(() => metric('compare.equal') + metric('compare.mismatch') - before.compared >= 1)
  expect(metric('compare.mismatch') - before.mismatch).toBe(0)

  // Once applied and seen applied, a real difference (written behind Cutover's back) is a mismatch.
  await h.cutover.drain()
  await new Promise((resolve) => setTimeout(resolve, 1_500))
  await h.neu.db.updateTable('person').set({ first_name: 'drifted' }).where('id', '=', 9).execute()
  const compared = metric('compare.equal') + metric('compare.mismatch')
  await app.selectFrom('person').selectAll().where('id', '=', 9).execute()
  await waitFor(() => metric('compare.equal') + metric('compare.mismatch') - compared >= 1)
  expect(metric('compare.mismatch') - before.mismatch).toBe(1)
}, 30_000)

async function waitFor(check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > until) throw new Error(`condition not met within ${timeoutMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}
