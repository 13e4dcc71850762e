/**
 * Phase gates on real PostgreSQL: each forward move is refused while the data says it is not safe
 * and allowed once it is; a forced move is audited with the gate values; the drift signal; the
 * safety net after `complete` (old table read-only, released) and the revert window.
 */
import {
  AuditLog,
  backfill,
  ConfigError,
  type Cutover,
  createCutover,
  DEFAULT_GATES,
  type GateOverrides,
  type Migration,
  PhaseGateError,
  phasePlan,
  RevertWindowClosedError,
  silentLogger,
  verifyExhaustive,
} from '@cutover/core'
import { sql } from 'kysely'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { main } from '../packages/core/src/cli/main.js'
import { consistencyDrift, evaluateGates, type GateInputs, gateSettings } from '../packages/core/src/control/phase-gates.js'
import { NO_SIGNALS } from '../packages/core/src/control/signal-history.js'
import { createPeopleTables, peopleMigration, peopleSegments } from './fixtures/people.js'
import { createTestDatabase, type TestDatabase } from './setup/services.js'

/** Dwell times zero and small sample sizes, so that a test can meet every gate in seconds. */
const FAST_GATES: GateOverrides = {
  shadow: { minDwellMs: 0, minMirroredWrites: 20 },
  compare: { minDwellMs: 0, minComparedReads: 20 },
  ramp: { minFullReadsMs: 0 },
  cutover: { minDwellMs: 0 },
}

let oldDb: TestDatabase
let newDb: TestDatabase
let migration: Migration<any, any>
let cutover: Cutover

async function start(gates: GateOverrides = FAST_GATES): Promise<void> {
  migration = peopleMigration(oldDb.db, newDb.db, { gates })
  cutover = await createCutover({ migrations: [migration], control: newDb.db, env: {}, pollIntervalMs: false, signalIntervalMs: false, logger: silentLogger })
}

beforeEach(async () => {
  ;[oldDb, newDb] = await Promise.all([createTestDatabase('cutover_gates_old'), createTestDatabase('cutover_gates_new')])
  await createPeopleTables(oldDb.db, newDb.db, 200)
})
afterEach(async () => {
  await cutover?.close()
  await Promise.all([oldDb?.drop(), newDb?.drop()])
})

/** Application writes on the old table, handed to the mirror as the plugins do after commit. */
async function mirroredWrites(ids: readonly number[]): Promise<void> {
  for (const id of ids) {
    await sql`update people set email = ${`w${id}@example.com`}, version = version + 1 where id = ${id}`.execute(oldDb.db)
    cutover.migration('people').recordWrite('old', { key: id, op: 'upsert' })
  }
  await cutover.drain()
  await cutover.recordSignals()
}

async function verify(): Promise<void> {
  const report = await verifyExhaustive({ migration, control: newDb.db, ...(await peopleSegments(oldDb.db, newDb.db, migration)) })
  expect(report.consistent).toBe(true)
}

async function refusal(to: Parameters<Cutover['setPhase']>[1], extra: Record<string, unknown> = {}): Promise<string[]> {
  const error = await cutover.setPhase('people', to, { actor: 'test', ...extra }).then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(error).toBeInstanceOf(PhaseGateError)
  return (error as PhaseGateError).unmet.map((gate) => gate.gate)
}

describe('phase gates', () => {
  it('refuses each forward move until its data says it is safe, then allows it', { timeout: 60_000 }, async () => {
    await start()
    await cutover.setPhase('people', 'shadow', { actor: 'test' })

    // shadow → compare: backfill, dead letters, the new side's write success.
    expect(await refusal('compare')).toEqual(['backfill done', 'new-side write success'])
    await backfill({ migration, control: newDb.db })
    await mirroredWrites(Array.from({ length: 25 }, (_, i) => i + 1))
    await newDb.db.insertInto('cutover.dead_letters').values({ migration: 'people', direction: 'old-to-new', key: '7', op: 'upsert', reason_code: 'STORE_FAILED', reason: 'planted' }).execute()
    expect(await refusal('compare')).toEqual(['open dead letters'])
    await newDb.db.updateTable('cutover.dead_letters').set({ resolved_at: new Date(), resolution: 'test' }).execute()
    await cutover.setPhase('people', 'compare', { actor: 'test', compareSample: 1 })

    // compare → ramp: a fresh consistent verification and enough consistent compared reads.
    expect(await refusal('ramp')).toEqual(['exhaustive verification', 'compared-read consistency'])
    await verify()
    const runtime = cutover.migration('people')
    const rows = (await oldDb.db.selectFrom('people').selectAll().where('id', '<=', 30).execute()) as Record<string, unknown>[]
    for (const row of rows) runtime.compareRead([row], [migration.mapper.forward(row)])
    await cutover.recordSignals()
    await cutover.setPhase('people', 'ramp', { actor: 'test', readPercent: 40 })

    // ramp → cutover: reads at 100 % first, a lately reported mirror, a fresh verification.
    expect(await refusal('cutover')).toEqual(['reads at 100 % on the new store'])
    await cutover.setPhase('people', 'ramp', { actor: 'test', readPercent: 100 })
    await cutover.setPhase('people', 'cutover', { actor: 'test' })

    // cutover → complete: a verification finished in cutover.
    expect(await refusal('complete')).toEqual(['final exhaustive verification'])
    await verify()
    await cutover.recordSignals()
    await cutover.setPhase('people', 'complete', { actor: 'test' })
    expect(cutover.migration('people').phase).toBe('complete')
  })

  it('a forced move needs a reason, and the audit keeps the override with the gate values', async () => {
    await start()
    await cutover.setPhase('people', 'shadow', { actor: 'test' })
    await expect(cutover.setPhase('people', 'compare', { actor: 'test', force: true })).rejects.toBeInstanceOf(ConfigError)
    await cutover.setPhase('people', 'compare', { actor: 'alice', force: true, reason: 'weekend freeze; backfill verified by hand' })
    const entry = (await new AuditLog(newDb.db).entries('people')).at(-1)
    expect(entry).toMatchObject({ actor: 'alice', action: 'phase_change', details: { forced: true, reason: 'weekend freeze; backfill verified by hand' } })
    const gates = (entry?.details as { gates: { gate: string; met: boolean; measured: string }[] }).gates
    expect(gates.filter((g) => !g.met).map((g) => g.gate)).toEqual(['backfill done', 'new-side write success'])
    expect(gates.find((g) => g.gate === 'backfill done')?.measured).toBe('not started')
  })

  it('counts dwell times from the audited phase change: the defaults refuse a move after minutes', async () => {
    await start({})
    await cutover.setPhase('people', 'shadow', { actor: 'test' })
    const plan = await phasePlan(newDb.db, migration, 'shadow')
    expect(plan.next?.to).toBe('compare')
    const dwell = plan.next?.gates.find((g) => g.gate === 'time in shadow')
    expect(dwell).toMatchObject({ met: false, required: '≥ 7d 0h' })
    expect(plan.dwell.find((d) => d.phase === 'shadow')?.requiredMs).toBe(DEFAULT_GATES.shadow.minDwellMs)
  })

  it('moves back and to rollback are never gated', async () => {
    await start({})
    await cutover.setPhase('people', 'shadow', { actor: 'test' })
    await cutover.setPhase('people', 'compare', { actor: 'test', force: true, reason: 'test' })
    await cutover.setPhase('people', 'rollback', { actor: 'test' })
    await cutover.setPhase('people', 'shadow', { actor: 'test' })
    expect(cutover.migration('people').phase).toBe('shadow')
  })
})

describe('the drift signal', () => {
  const hour = 3_600_000
  const now = new Date('2026-12-01T12:00:00Z')
  const point = (hoursAgo: number, equal: number, mismatch: number) => ({
    ...NO_SIGNALS,
    at: new Date(now.getTime() - hoursAgo * hour),
    compareEqual: equal,
    compareMismatch: mismatch,
    mirrorLagMs: 0,
    readPercent: 0,
  })

  it('99.5 % for three days, then 97 %: drifting, although 99.4 % overall is above a 99 % threshold', () => {
    const points = [...Array.from({ length: 72 }, (_, i) => point(96 - i, 995, 5)), ...Array.from({ length: 24 }, (_, i) => point(23 - i, 97, 3))]
    const drift = consistencyDrift(points, now, 24 * hour)
    expect(drift?.earlier).toBeCloseTo(99.5, 5)
    expect(drift?.latest).toBeCloseTo(97, 5)
    const inputs: GateInputs = {
      now,
      timeline: [{ at: new Date(now.getTime() - 100 * hour), phase: 'compare', readPercent: 0, actor: 't' }],
      backfill: { ranges: 1, done: 1, finishedAt: new Date(now.getTime() - 101 * hour) },
      openDeadLetters: 0,
      verification: { id: '1', finishedAt: new Date(now.getTime() - hour), consistent: true },
      sinceEntry: { ...NO_SIGNALS, compareEqual: 72 * 995 + 24 * 97, compareMismatch: 72 * 5 + 24 * 3 },
      hourly: points,
      instances: [],
    }
    const settings = gateSettings({ compare: { minDwellMs: 0, minConsistency: 0.99 } })
    const report = evaluateGates('compare', 'ramp', inputs, settings)
    expect(report.gates.filter((g) => !g.met).map((g) => g.gate)).toEqual(['consistency drift'])
    // The same consistency without the fall passes.
    const steady = evaluateGates('compare', 'ramp', { ...inputs, hourly: points.slice(0, 72) }, settings)
    expect(steady.met).toBe(true)
  })
})

describe('the safety net after complete', () => {
  async function completed(gates: GateOverrides): Promise<void> {
    await start({ ...gates })
    for (const phase of ['shadow', 'compare', 'ramp', 'cutover', 'complete'] as const) {
      await cutover.setPhase('people', phase, { actor: 'test', force: true, reason: 'safety net test' })
    }
  }

  it('the old table refuses writes once the revert window is over, until it is released', async () => {
    await completed({ complete: { revertWindowMs: 0 } })
    const write = () => sql`update people set email = 'late@example.com' where id = 1`.execute(oldDb.db)
    await expect(write()).rejects.toMatchObject({ code: '25006' })
    await expect(sql`truncate people`.execute(oldDb.db)).rejects.toMatchObject({ code: '25006' })
    const plan = await phasePlan(newDb.db, migration, 'complete')
    expect(plan.safetyNet).toMatchObject({ readOnly: true, revertWindowOpen: false })
    expect(plan.safetyNet?.readOnlyDaysLeft).toBeGreaterThan(29.9)

    await cutover.releaseSafetyNet('people', { actor: 'ops', reason: 'archive exported' })
    await expect(write()).resolves.toBeDefined()
    expect((await phasePlan(newDb.db, migration, 'complete')).safetyNet).toMatchObject({ readOnly: false, releasedBy: 'ops' })
    expect((await new AuditLog(newDb.db).entries('people')).at(-1)).toMatchObject({ action: 'safety_net_release', actor: 'ops' })
  })

  it('inside the revert window the reverse mirror runs and going back to cutover loses nothing', async () => {
    await completed({ complete: { revertWindowMs: 3_600_000 } })
    expect(cutover.migration('people').behavior.mirror).toBe('new-to-old')
    await sql`insert into people_v2 values (5000, 'New', 'Row', 'n@example.com', 1)`.execute(newDb.db)
    cutover.migration('people').recordWrite('new', { key: 5000, op: 'upsert' })
    await cutover.drain()
    expect(await oldDb.db.selectFrom('people').select('full_name').where('id', '=', 5000).executeTakeFirst()).toEqual({ full_name: 'New Row' })
    await cutover.setPhase('people', 'cutover', { actor: 'test', force: true, reason: 'revert' })
    expect(cutover.migration('people').phase).toBe('cutover')
  })

  it('after the revert window, going back needs a new migration', async () => {
    await completed({ complete: { revertWindowMs: 0 } })
    expect(cutover.migration('people').behavior.mirror).toBe('none')
    await expect(cutover.setPhase('people', 'cutover', { actor: 'test', force: true, reason: 'too late' })).rejects.toBeInstanceOf(RevertWindowClosedError)
  })
})

describe('cutover phase and cutover plan', () => {
  async function cli(...args: string[]): Promise<{ code: number; result: any; text: string }> {
    let out = ''
    const stream = { isTTY: false, write: (chunk: string) => ((out += chunk), true) } as unknown as NodeJS.WriteStream
    process.env.CUTOVER_TEST_OLD_URL = oldDb.url
    process.env.CUTOVER_TEST_NEW_URL = newDb.url
    process.env.CUTOVER_TEST_GATES = JSON.stringify({ shadow: { minDwellMs: 0 } })
    try {
      const code = await main([...args, '--config', 'test/fixtures/people.config.ts', '--actor', 'cli-test'], { stdout: stream, stderr: stream })
      const lines = out.split('\n').filter((line) => line.startsWith('{'))
      return { code, result: lines.length > 0 ? JSON.parse(lines.at(-1) as string) : undefined, text: out }
    } finally {
      delete process.env.CUTOVER_TEST_GATES
    }
  }

  it('refuses with the unmet gates and exit code 3, moves with --force --reason, and plans the next move', async () => {
    expect((await cli('phase', 'people', 'shadow')).code).toBe(0)
    const refused = await cli('phase', 'people', 'compare')
    expect(refused.code, refused.text).toBe(3)
    expect(refused.result).toMatchObject({ refused: true, to: 'compare', unmet: [{ gate: 'backfill done' }, { gate: 'new-side write success' }] })
    const plan = await cli('plan', 'people')
    expect(plan.code, plan.text).toBe(0)
    expect(plan.result).toMatchObject({ command: 'plan', phase: 'shadow', next: { to: 'compare', met: false } })
    const status = await cli('status', 'people')
    expect(status.result).toMatchObject({ command: 'status', migrations: [{ migration: 'people', plan: { next: { to: 'compare', met: false } } }] })
    const forced = await cli('phase', 'people', 'compare', '--force', '--reason', 'checked by hand')
    expect(forced.code, forced.text).toBe(0)
    expect(forced.result).toMatchObject({ after: { phase: 'compare' } })
  })
})
