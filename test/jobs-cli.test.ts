/**
 * The `cutover` command end to end on PostgreSQL, run in-process through `main` (the crash tests
 * run the real binary): status, backfill with JSON progress, verify/reconcile exit codes, pause,
 * and audit verification catching a tampered row.
 */
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { main } from '../packages/core/src/cli/main.js'
import { createPeopleTables } from './fixtures/people.js'
import { createTestDatabase, type TestDatabase } from './setup/services.js'

let oldDb: TestDatabase
let newDb: TestDatabase
const ROWS = 5_000

beforeAll(async () => {
  ;[oldDb, newDb] = await Promise.all([createTestDatabase('cutover_cli_old'), createTestDatabase('cutover_cli_new')])
  await createPeopleTables(oldDb.db, newDb.db, ROWS)
  process.env.CUTOVER_TEST_OLD_URL = oldDb.url
  process.env.CUTOVER_TEST_NEW_URL = newDb.url
  process.env.CUTOVER_TEST_BATCH = '500'
})
afterAll(async () => {
  await Promise.all([oldDb?.drop(), newDb?.drop()])
})

async function cutover(...args: string[]): Promise<{ code: number; lines: any[]; text: string; stderr: string }> {
  let out = ''
  let err = ''
  const stream = (append: (s: string) => void) => ({ isTTY: false, write: (chunk: string) => (append(chunk), true) }) as unknown as NodeJS.WriteStream
  const code = await main([...args, '--config', 'test/fixtures/people.config.ts', '--actor', 'cli-test'], {
    stdout: stream((s) => (out += s)),
    stderr: stream((s) => (err += s)),
  })
  const lines = out
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line))
  return { code, lines, text: out, stderr: err }
}

describe('cutover CLI', () => {
  it('reports status, backfills with JSON progress, verifies, reconciles, pauses and checks the audit chain', { timeout: 120_000 }, async () => {
    const before = await cutover('status', 'people')
    expect(before.code).toBe(0)
    expect(before.lines.at(-1)).toMatchObject({ type: 'result', migrations: [{ migration: 'people', phase: 'off', backfill: { ranges: 0 } }] })

    const backfill = await cutover('backfill', 'people', '--rate', '20000')
    expect(backfill.code, backfill.stderr).toBe(0)
    const progress = backfill.lines.filter((l) => l.type === 'progress')
    expect(progress.length).toBeGreaterThan(0)
    expect(progress[0]).toMatchObject({ label: 'people', total: ROWS, counts: { read: expect.any(Number) } })
    expect(progress[0].rate).toBeGreaterThan(0)
    expect(backfill.lines.at(-1)).toMatchObject({ type: 'result', command: 'backfill', status: 'done', counts: { read: ROWS, written: ROWS } })

    const verified = await cutover('verify', 'people')
    expect(verified.code).toBe(0)
    expect(verified.lines.at(-1)).toMatchObject({ type: 'result', command: 'verify', consistent: true })

    await sql`update people_v2 set email = 'wrong@example.com' where id = 123`.execute(newDb.db)
    const inconsistent = await cutover('verify', 'people', '--recheck-ms', '10')
    expect(inconsistent.code).toBe(2)
    expect(inconsistent.lines.at(-1).inconsistencies).toEqual([
      { key: '123', kind: 'DIFFERENT', differences: [{ path: 'email', kind: 'changed', expected: 'p123@example.com', actual: 'wrong@example.com' }] },
    ])
    const sampled = await cutover('verify', 'people', '--sample', '100')
    expect(sampled.code).toBe(2)

    const reconciled = await cutover('reconcile', 'people')
    expect(reconciled.code).toBe(0)
    expect(reconciled.lines.at(-1)).toMatchObject({ authoritative: 'old', repaired: 1 })
    expect((await cutover('verify', 'people')).code).toBe(0)

    expect((await cutover('pause', 'people', '--reason', 'replica lag')).code).toBe(0)
    const paused = await cutover('status')
    expect(paused.lines.at(-1).migrations[0]).toMatchObject({ jobControl: { paused: true, reason: 'replica lag' }, backfill: { ranges: 1, done: 1, read: ROWS } })
    expect((await cutover('resume', 'people')).code).toBe(0)
    const { rows: controls } = await sql<{ actor: string; details: object }>`
      select actor, details from cutover.audit where action = 'job_control' order by id`.execute(newDb.db)
    expect(controls).toEqual([
      { actor: 'cli-test', details: { paused: true, reason: 'replica lag' } },
      { actor: 'cli-test', details: { paused: false, reason: null } },
    ])

    // Run-time phase control for the fleet: checked against the phase table, audited.
    expect((await cutover('phase', 'people')).lines.at(-1)).toMatchObject({ phase: 'off' })
    const illegal = await cutover('phase', 'people', 'cutover')
    expect(illegal.code).toBe(1)
    expect(illegal.stderr).toContain('PHASE_TRANSITION')
    const shadow = await cutover('phase', 'people', 'shadow', '--reason', 'start mirroring')
    expect(shadow.code).toBe(0)
    expect(shadow.lines.at(-1)).toMatchObject({ before: { phase: 'off' }, after: { phase: 'shadow' } })
    expect((await cutover('phase', 'people', 'compare', '--compare-sample', '0.25')).lines.at(-1)).toMatchObject({ after: { phase: 'compare', compareSample: 0.25 } })
    expect((await cutover('status', 'people')).lines.at(-1).migrations[0]).toMatchObject({ phase: 'compare' })
    expect((await cutover('phase', 'people', 'sideways')).code).toBe(64)
    const { rows: changes } = await sql<{ actor: string; details: { reason: string | null } }>`
      select actor, details from cutover.audit where action = 'phase_change' order by id`.execute(newDb.db)
    expect(changes.map((c) => [c.actor, c.details.reason])).toEqual([['cli-test', 'start mirroring'], ['cli-test', null]])

    const audit = await cutover('audit', 'verify')
    expect(audit.code).toBe(0)
    expect(audit.lines.at(-1)).toMatchObject({ ok: true })
    const { rows } = await sql<{ id: string }>`select id from cutover.audit where action = 'backfill' order by id limit 1`.execute(newDb.db)
    await sql`update cutover.audit set actor = 'someone else' where id = ${rows[0]?.id}`.execute(newDb.db)
    const tampered = await cutover('audit', 'verify')
    expect(tampered.code).toBe(2)
    expect(tampered.lines.at(-1)).toMatchObject({ ok: false, entryId: rows[0]?.id, problem: 'entry was changed' })
  })

  it('fails with a usage error naming the known migrations, and a clear error for a missing config', async () => {
    const unknown = await cutover('backfill', 'nope')
    expect(unknown.code).toBe(1)
    expect(unknown.stderr).toContain('no migration named "nope" in the config; known: people')
    expect(await main(['status', '--config', 'missing.config.ts'], { stdout: process.stdout, stderr: { write: () => true } as unknown as NodeJS.WriteStream })).toBe(64)
    expect(await main(['frobnicate'], { stdout: process.stdout, stderr: { write: () => true } as unknown as NodeJS.WriteStream })).toBe(64)
  })
})
