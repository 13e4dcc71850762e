import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { BackfillJobs, CheckpointTable, copy, defineMigration, ensureSchema, fieldMapper, type Row } from '../src/index.js'
import { createTestDatabase, type TestDatabase } from '../../../test/setup/services.js'
import { MemoryStore } from './memory-store.js'

const mapper = fieldMapper({
  old: z.object({ id: z.number().int(), name: z.string() }),
  new: z.object({ id: z.number().int(), name: z.string() }),
  fields: [copy('id'), copy('name')],
})

let control: TestDatabase
beforeAll(async () => {
  control = await createTestDatabase('cutover_jobs')
  await ensureSchema(control.db)
})
afterAll(async () => {
  await control?.drop()
})

describe('BackfillJobs', () => {
  it('plans ranges at real keys and lets two workers share them until every range is done', async () => {
    const rows: Row[] = Array.from({ length: 10_500 }, (_, i) => ({ id: i * 3 + 1, name: `n${i}` }))
    const old = new MemoryStore('old', 'id', rows)
    const target = new MemoryStore('new')
    const migration = defineMigration({ name: 'ranged', old, new: target, mapper })
    const planner = new BackfillJobs({ control: control.db, pollingIntervalSeconds: 0.5 })
    const ranges = await planner.plan(migration, { rangeSize: 1_000, scanBatch: 300 })
    expect(ranges).toHaveLength(11)
    expect(ranges[0]).toMatchObject({ id: 'r00000', until: 2998 })
    expect(ranges[1]).toMatchObject({ after: 2998, until: 5998, beyond: [8998, 11998, 14998] })
    expect(ranges.at(-1)?.until).toBeUndefined()
    expect(await planner.plan(migration, { rangeSize: 7 })).toEqual(ranges) // a plan is kept

    expect(await planner.enqueue('ranged')).toBe(11) // ranges left to do

    const workers = [new BackfillJobs({ control: control.db, pollingIntervalSeconds: 0.5 }), new BackfillJobs({ control: control.db, pollingIntervalSeconds: 0.5 })]
    const byWorker = [0, 0]
    await Promise.all(workers.map((w, i) => w.work(migration, { onRange: () => byWorker[i]!++, backfill: { batch: { initial: 250 } } })))
    const deadline = Date.now() + 30_000
    while (!(await planner.finished('ranged')) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200))
    await Promise.all([...workers, planner].map((w) => w.stop()))

    expect(await planner.finished('ranged')).toBe(true)
    expect(target.rows.size).toBe(10_500)
    expect(byWorker[0]! + byWorker[1]!).toBe(11)
    const checkpoints = await new CheckpointTable(control.db).list('ranged')
    expect(checkpoints.reduce((sum, c) => sum + c.counts.read, 0)).toBe(10_500)
    expect(checkpoints.reduce((sum, c) => sum + c.counts.written, 0)).toBe(10_500)
  })
})
