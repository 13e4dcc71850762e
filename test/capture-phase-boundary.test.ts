/**
 * Which change-log entries a worker applies is decided by the phase in force when they were
 * logged: a write that reaches the side that is no longer authoritative after a phase change is
 * discarded, even when the worker's next round comes long after (workers poll, and a drain can run
 * at any time); and in `complete`, while its revert window is open, the new side's writes are
 * still mirrored back to the old store, as without the change log.
 */
import { copy, fieldMapper, type Phase } from '@cutover/core'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { createHarness, type Harness, tableStore } from '../packages/kysely-plugin/test/harness.js'

const DDL = 'create table account (id int primary key, owner text not null)'
const mapper = fieldMapper({
  old: z.object({ id: z.number().int(), owner: z.string() }),
  new: z.object({ id: z.number().int(), owner: z.string() }),
  fields: [copy('id'), copy('owner')],
})

let h: Harness

beforeAll(async () => {
  h = await createHarness({
    prefix: 'cutover_capbound',
    oldDdl: [DDL],
    newDdl: [DDL],
    migrations: (old, neu) => [
      {
        name: 'account',
        old: tableStore(old, 'account', 'id'),
        new: tableStore(neu, 'account', 'id'),
        mapper,
        // Both sides captured; the workers' own loop idles for a minute, so only drains run rounds.
        capture: { mode: 'change-log', install: true, workers: 1, pollIntervalMs: 60_000 },
      },
    ],
    oldTables: {},
  })
})

afterAll(async () => {
  await h?.close()
})

async function moveTo(...phases: Phase[]): Promise<void> {
  for (const phase of phases) await h.cutover.setPhase('account', phase, { actor: 'test', ...(phase === 'ramp' ? { readPercent: 100 } : {}) })
}

const owner = async (db: Harness['old'], id: number) => (await sql<{ owner: string }>`select owner from account where id = ${id}`.execute(db.db)).rows[0]?.owner

describe('change-log entries and the phase in force when they were logged', () => {
  it('a write on the new side after a rollback is not applied to the old store, however late the worker runs', async () => {
    await moveTo('shadow')
    await sql`insert into account (id, owner) values (1, 'ada')`.execute(h.old.db)
    await h.cutover.drain()
    expect(await owner(h.neu, 1)).toBe('ada')
    await moveTo('compare', 'ramp', 'cutover', 'rollback')
    await new Promise((resolve) => setTimeout(resolve, 100))
    // Someone clears the new table after the rollback (to start the migration again, say).
    await sql`delete from account`.execute(h.neu.db)
    await h.cutover.drain()
    expect(await owner(h.old, 1)).toBe('ada')
    expect(h.cutover.metrics.counter('capture.discarded', { migration: 'account', direction: 'new-to-old' })).toBeGreaterThan(0)
  })

  it("in complete, while the revert window is open, the new side's writes reach the old store", async () => {
    await moveTo('shadow', 'compare', 'ramp', 'cutover')
    await sql`insert into account (id, owner) values (2, 'grace')`.execute(h.neu.db)
    await h.cutover.drain()
    expect(await owner(h.old, 2)).toBe('grace')
    await moveTo('complete')
    expect(h.cutover.migration('account').behavior.mirror).toBe('new-to-old')
    // Two writes, each drained: the first round in complete has seen the phase before the second write.
    await sql`insert into account (id, owner) values (3, 'barbara')`.execute(h.neu.db)
    await h.cutover.drain()
    expect(await owner(h.old, 3)).toBe('barbara')
    await sql`update account set owner = 'grace hopper' where id = 2`.execute(h.neu.db)
    await h.cutover.drain()
    expect(await owner(h.old, 2)).toBe('grace hopper')
  })
})
