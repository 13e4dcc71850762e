/**
 * Guards judge a tenant with a phase of its own on that tenant's traffic: a tenant in `ramp` whose
 * new-store reads fail rolls back by itself (in this process at once, then in the control table,
 * audited with the measurements), while the migration and the other tenants keep their phases; and
 * the tenant's failures never count against the migration's own guard.
 */
import { copy, createCutover, type Cutover, defineMigration, fieldMapper, silentLogger, withCutoverContext } from '@cutover/core'
import { sql } from 'kysely'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { MemoryStore } from '../packages/core/test/memory-store.js'
import { createTestDatabase, type TestDatabase } from './setup/services.js'

const schema = z.object({ id: z.number(), name: z.string() })
let database: TestDatabase
let cutover: Cutover

beforeAll(async () => {
  database = await createTestDatabase('cutover_tenant_guards')
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
        guards: { maxErrorRate: 0.05, minSamples: 50 },
      }),
    ],
    control: database.db,
    env: { CUTOVER_PEOPLE_PHASE: 'compare' },
    pollIntervalMs: false,
    logger: silentLogger,
  })
  const move = { actor: 'test', force: true, reason: 'no backfill in this test' }
  await cutover.setTenantPhase('people', 'acme', 'ramp', { ...move, readPercent: 100 })
  await cutover.setTenantPhase('people', 'bolt', 'ramp', { ...move, readPercent: 100 })
})

/** `count` new-store reads in the request context of `tenant`, one in `failEvery` of them failed (0: none). */
function reads(tenant: string | undefined, count: number, failEvery: number): void {
  const runtime = cutover.migration('people')
  const run = () => {
    for (let i = 0; i < count; i++) runtime.recordRead('new', failEvery === 0 || i % failEvery !== 0, 5)
  }
  if (tenant === undefined) run()
  else withCutoverContext({ tenant }, run)
}

async function guardEntry(): Promise<Record<string, any> | undefined> {
  for (let i = 0; i < 100; i++) {
    const entry = (await cutover.audit!.entries('people')).find((e) => e.actor === 'cutover:guard')
    if (entry) return entry
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  return undefined
}

describe('guards per tenant', () => {
  it('a tenant in ramp whose new-store reads fail rolls back by itself; the migration and the other tenants keep their phases', async () => {
    const runtime = cutover.migration('people')
    reads('bolt', 200, 0)
    reads('acme', 200, 5)
    // In this process at once: acme's requests read the old store again.
    expect(runtime.phaseFor({ tenant: 'acme' })).toBe('rollback')
    expect(runtime.readSide({ tenant: 'acme' })).toBe('old')
    expect(runtime.phaseFor({ tenant: 'bolt' })).toBe('ramp')
    expect(runtime.phase).toBe('compare')

    // Then in the control table, through the tenant's own move (audited, with the measurements).
    const entry = await guardEntry()
    expect(entry).toMatchObject({ action: 'tenant_phase_change', details: { tenant: 'acme', before: { phase: 'ramp' }, after: { phase: 'rollback' } } })
    expect(entry?.details.reason).toMatch(/error rate/)
    expect(entry?.details.evidence.observed.errorRate).toBeCloseTo(0.2, 2)
    const rows = await sql<{ tenant: string; phase: string }>`select tenant, phase from cutover.tenant_state order by tenant`.execute(database.db)
    expect(rows.rows).toEqual([
      { tenant: 'acme', phase: 'rollback' },
      { tenant: 'bolt', phase: 'ramp' },
    ])
    // Written back, the rollback is the tenant's configured phase now, not a local trip.
    expect(runtime.tenantOverrides.get('acme')?.phase).toBe('rollback')
  })

  it("a tenant's failures do not count against the migration's guard, nor the migration's against a tenant", async () => {
    await cutover.setPhase('people', 'ramp', { actor: 'test', force: true, reason: 'no backfill in this test', readPercent: 10 })
    const runtime = cutover.migration('people')
    reads('acme', 40, 1) // all failed, but fewer than minSamples for acme's own guard
    reads(undefined, 200, 0)
    reads('cole', 100, 0) // no override: cole's requests are the migration's
    expect(runtime.phase).toBe('ramp')
    expect(runtime.phaseFor({ tenant: 'acme' })).toBe('ramp')
    reads(undefined, 100, 3)
    expect(runtime.phase).toBe('rollback')
    expect(runtime.phaseFor({ tenant: 'acme' })).toBe('ramp')
    expect(runtime.phaseFor({ tenant: 'bolt' })).toBe('ramp')
  })
})
