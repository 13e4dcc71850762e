/**
 * The gates of a tenant's own move: the same gates as the migration's, measured on the tenant's
 * timeline (its own stay in a phase; the migration's before its first override and after a clear)
 * and on the migration's jobs and signals, which carry no tenant.
 */
import { createCutover, type Cutover, PhaseGateError, silentLogger } from '@cutover/core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type PhaseEntry, tenantTimeline } from '../packages/core/src/control/phase-gates.js'
import { createPeopleTables, peopleMigration } from './fixtures/people.js'
import { createTestDatabase, type TestDatabase } from './setup/services.js'

const at = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s))
const entry = (s: number, phase: PhaseEntry['phase'], readPercent = 0): PhaseEntry => ({ at: at(s), phase, readPercent, actor: 'm' })

describe('tenantTimeline', () => {
  it("follows the migration until the tenant's first override, then the override, then the migration again after a clear", () => {
    const migration = [entry(0, 'shadow'), entry(10, 'compare'), entry(30, 'ramp', 5), entry(50, 'ramp', 10)]
    const tenant = [
      { at: at(20), override: { phase: 'ramp' as const, readPercent: 100 }, actor: 't' },
      { at: at(40), override: { phase: 'cutover' as const, readPercent: 100 }, actor: 't' },
      { at: at(60), override: undefined, actor: 't' },
    ]
    expect(tenantTimeline(migration, tenant).map((e) => [(e.at.getTime() - at(0).getTime()) / 1_000, e.phase, e.readPercent])).toEqual([
      [0, 'shadow', 0],
      [10, 'compare', 0],
      [20, 'ramp', 100],
      // The migration's own move to ramp 5 % at 30 s does not touch a tenant with an override.
      [40, 'cutover', 100],
      [60, 'ramp', 10],
    ])
  })
})

describe('gates of a tenant move', () => {
  let oldDb: TestDatabase
  let newDb: TestDatabase
  let cutover: Cutover
  beforeAll(async () => {
    ;[oldDb, newDb] = await Promise.all([createTestDatabase('cutover_tgates_old'), createTestDatabase('cutover_tgates_new')])
    await createPeopleTables(oldDb.db, newDb.db, 0)
    const gates = { shadow: { minDwellMs: 0, minMirroredWrites: 0 }, compare: { minDwellMs: 1_000, minComparedReads: 0 } }
    cutover = await createCutover({ migrations: [peopleMigration(oldDb.db, newDb.db, { gates })], control: newDb.db, env: {}, pollIntervalMs: false, signalIntervalMs: false, logger: silentLogger })
  })
  afterAll(async () => {
    await cutover?.close()
    await Promise.all([oldDb?.drop(), newDb?.drop()])
  })

  const unmet = async (move: Promise<void>) => {
    const error = await move.then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(error).toBeInstanceOf(PhaseGateError)
    return (error as PhaseGateError).unmet.map((gate) => gate.gate)
  }

  it("counts a tenant's dwell from its own entry into the phase, and the migration's checks from the migration", { timeout: 30_000 }, async () => {
    await cutover.setPhase('people', 'shadow', { actor: 'test' })
    // No backfill: the migration-wide gate refuses the tenant as it refuses the migration.
    expect(await unmet(cutover.setTenantPhase('people', 'acme', 'compare', { actor: 'test' }))).toContain('backfill done')
    await cutover.setPhase('people', 'compare', { actor: 'test', force: true, reason: 'no backfill in this test' })
    await new Promise((resolve) => setTimeout(resolve, 1_100))
    // acme leaves compare and comes back: its stay restarts; bolt has followed the migration all along.
    await cutover.setTenantPhase('people', 'acme', 'shadow', { actor: 'test' })
    await cutover.setTenantPhase('people', 'acme', 'compare', { actor: 'test', force: true, reason: 'no backfill in this test' })
    const acme = await unmet(cutover.setTenantPhase('people', 'acme', 'ramp', { actor: 'test' }))
    const bolt = await unmet(cutover.setTenantPhase('people', 'bolt', 'ramp', { actor: 'test' }))
    expect(acme).toContain('time in compare')
    expect(bolt).not.toContain('time in compare')
    expect(bolt).toContain('exhaustive verification')
    const entries = await cutover.audit!.entries('people')
    expect(entries.at(-1)).toMatchObject({ action: 'tenant_phase_change', details: { tenant: 'acme', forced: true, reason: 'no backfill in this test', gates: expect.arrayContaining([expect.objectContaining({ gate: 'backfill done', met: false })]) } })
  })
})
