/**
 * The design source's rollback triggers with injected faults, on a real control database: a new
 * side failing 2 % of reads rolls back and one failing 0.1 % does not; 150 ms of added latency rolls
 * back and 20 ms does not; a drop in the consistency of compared reads rolls back and a rare
 * mismatch does not. Each rollback is audited with the measurements and test that caused it.
 */
import { copy, createCutover, type Cutover, defineMigration, fieldMapper, silentLogger } from '@cutover/core'
import { sql } from 'kysely'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { MemoryStore } from '../packages/core/test/memory-store.js'
import { createTestDatabase, type TestDatabase } from './setup/services.js'

const schema = z.object({ id: z.number(), name: z.string() })
let database: TestDatabase
let cutover: Cutover

/** A seeded generator, so that every run injects the same faults. */
function random(seed: number): () => number {
  let a = seed
  return () => {
    a = (a + 0x6d2b79f5) | 0
    let t = Math.imul(a ^ (a >>> 15), 1 | a)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

beforeAll(async () => {
  database = await createTestDatabase('cutover_guard_triggers')
})
afterAll(async () => {
  await cutover?.close()
  await database?.drop()
})
beforeEach(async () => {
  await cutover?.close()
  await sql`drop schema if exists cutover cascade`.execute(database.db)
  cutover = await createCutover({
    migrations: [
      defineMigration({
        name: 'people',
        old: new MemoryStore('old'),
        new: new MemoryStore('new'),
        mapper: fieldMapper({ old: schema, new: schema, fields: [copy('id'), copy('name')] }),
        guards: { maxErrorRateIncrease: 0.005, maxP95IncreaseMs: 100, minConsistency: 0.99, minSamples: 200, windowMs: 600_000 },
      }),
    ],
    control: database.db,
    env: { CUTOVER_PEOPLE_PHASE: 'ramp', CUTOVER_PEOPLE_READ_PERCENT: '50' },
    pollIntervalMs: false,
    logger: silentLogger,
  })
})

/** Reads on both sides, with the new side's faults injected; stops early once rolled back. */
function traffic(reads: number, fault: { errorRate?: number; addedMs?: number }): void {
  const next = random(42)
  const runtime = cutover.migration('people')
  for (let i = 0; i < reads && runtime.phase !== 'rollback'; i++) {
    const latency = 4 + next() * 6 + (next() < 0.02 ? 30 * next() : 0) // 4–10 ms with a tail
    runtime.recordRead('old', next() >= 0.001, latency)
    runtime.recordRead('new', next() >= (fault.errorRate ?? 0.001), latency + (fault.addedMs ?? 0) + next() * 2)
  }
}

function comparisons(count: number, mismatchRate: number): void {
  const next = random(7)
  const runtime = cutover.migration('people')
  for (let i = 0; i < count && runtime.phase !== 'rollback'; i++) {
    const row = { id: i, name: `n${i}` }
    runtime.compareRead([row], [next() < mismatchRate ? { ...row, name: 'drifted' } : row])
  }
}

async function rollbackEntry(): Promise<Record<string, any> | undefined> {
  for (let i = 0; i < 100; i++) {
    const entry = (await cutover.audit!.entries('people')).find((e) => e.action === 'guard_rollback')
    if (entry) return entry.details
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  return undefined
}

describe('rollback triggers with a minimum sample and a statistical test', () => {
  it('a 2 % new-store error rate rolls back, audited with the measurements', async () => {
    traffic(5_000, { errorRate: 0.02 })
    expect(cutover.migration('people').phase).toBe('rollback')
    const details = await rollbackEntry()
    expect(details).toMatchObject({ after: { phase: 'rollback' }, evidence: { measurements: { trigger: 'error_rate', threshold: 0.005 } } })
    expect(details?.evidence.measurements.newErrorRate).toBeGreaterThan(0.01)
    expect(details?.evidence.measurements.z).toBeGreaterThan(2.32)
    expect(details?.reason).toMatch(/error rate .* exceeds the old store's/)
  })

  it('a 0.1 % new-store error rate does not roll back', async () => {
    traffic(5_000, { errorRate: 0.001 })
    expect(cutover.migration('people').phase).toBe('ramp')
  })

  it('150 ms of added latency rolls back on p95; 20 ms does not', async () => {
    traffic(5_000, { addedMs: 20 })
    expect(cutover.migration('people').phase).toBe('ramp')
    traffic(5_000, { addedMs: 150 })
    expect(cutover.migration('people').phase).toBe('rollback')
    expect(await rollbackEntry()).toMatchObject({ evidence: { measurements: { trigger: 'latency_p95', thresholdMs: 100 } } })
  })

  it('a consistency drop rolls back; a rare mismatch does not', async () => {
    comparisons(3_000, 0.002)
    expect(cutover.migration('people').phase).toBe('ramp')
    comparisons(3_000, 0.05)
    expect(cutover.migration('people').phase).toBe('rollback')
    expect(await rollbackEntry()).toMatchObject({ evidence: { measurements: { trigger: 'consistency', threshold: 0.99 } } })
  })

  it('does not roll back before the minimum sample, whatever the rate', async () => {
    traffic(150, { errorRate: 0.5 })
    expect(cutover.migration('people').phase).toBe('ramp')
  })
})
