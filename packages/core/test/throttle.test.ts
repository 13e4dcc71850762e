import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { backfill, copy, defineMigration, ensureSchema, fieldMapper, type Row, split } from '../src/index.js'
import { createTestDatabase, type TestDatabase } from '../../../test/setup/services.js'
import { MemoryStore } from './memory-store.js'

const mapper = fieldMapper({
  old: z.object({ id: z.number().int(), full_name: z.string() }),
  new: z.object({ id: z.number().int(), first_name: z.string(), last_name: z.string().nullable() }),
  fields: [copy('id'), split('full_name', ['first_name', 'last_name'])],
})

let control: TestDatabase
beforeAll(async () => {
  control = await createTestDatabase('cutover_throttle')
  await ensureSchema(control.db)
})
afterAll(async () => {
  await control?.drop()
})

describe('throttle', () => {
  // Stores with some latency, so that two batches overlap in the pipeline: the rate must hold over
  // the wall clock of the whole run, not per batch's own duration.
  for (const [rate, rows, latencyMs] of [
    [5_000, 12_000, 40],
    [3_000, 7_500, 15],
  ] as const) {
    it(`keeps the run's average at or under --rate ${rate} rows/s with two batches in flight`, { timeout: 30_000 }, async () => {
      const old = new MemoryStore('old', 'id', Array.from({ length: rows }, (_, i): Row => ({ id: i + 1, full_name: `Ada${i} Lovelace` })))
      const target = new MemoryStore('new')
      old.latencyMs = latencyMs
      target.latencyMs = latencyMs
      const migration = defineMigration({ name: `throttled_${rate}`, old, new: target, mapper })
      const started = performance.now()
      const summary = await backfill({ migration, control: control.db, batch: { initial: 1_000, min: 1_000, max: 1_000 }, throttle: { maxRowsPerSecond: rate } })
      const wallSeconds = (performance.now() - started) / 1_000
      expect(summary.counts.written).toBe(rows)
      expect(summary.rowsPerSecond).toBeLessThanOrEqual(rate)
      expect(rows / wallSeconds).toBeLessThanOrEqual(rate)
    })
  }
})
