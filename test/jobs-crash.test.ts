/**
 * Crashes: the `cutover` command killed with SIGKILL mid-backfill and restarted, and one of two
 * distributed workers killed mid-range. Child processes run the real CLI under tsx.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { AuditLog, BackfillJobs, CheckpointTable, ensureSchema, verifyExhaustive } from '@cutover/core'
import { sql } from 'kysely'
import { afterAll, describe, expect, it } from 'vitest'
import { count, createPeopleTables, peopleMigration, peopleSegments } from './fixtures/people.js'
import { createTestDatabase, type TestDatabase } from './setup/services.js'

const ROOT = fileURLToPath(new URL('../', import.meta.url))
const ROWS = 30_000
const dbs: TestDatabase[] = []

afterAll(async () => {
  await Promise.all(dbs.map((db) => db.drop()))
})

async function databases(rows: number): Promise<{ oldDb: TestDatabase; newDb: TestDatabase }> {
  const [oldDb, newDb] = await Promise.all([createTestDatabase('cutover_crash_old'), createTestDatabase('cutover_crash_new')])
  dbs.push(oldDb, newDb)
  await ensureSchema(newDb.db)
  await createPeopleTables(oldDb.db, newDb.db, rows)
  return { oldDb, newDb }
}

interface Child {
  readonly process: ChildProcess
  readonly exit: Promise<number | null>
  readonly stdout: () => string
}

function cutover(args: string[], env: Record<string, string>): Child {
  let out = ''
  let err = ''
  // `node --import tsx`, not the tsx binary: that one runs node as a child of its own, which a
  // SIGKILL of the parent would leave running.
  const child = spawn(process.execPath, ['--import', 'tsx', 'packages/core/src/cli/bin.ts', ...args, '--config', 'test/fixtures/people.config.ts', '--json'], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  child.stdout?.on('data', (chunk: Buffer) => (out += chunk.toString()))
  child.stderr?.on('data', (chunk: Buffer) => (err += chunk.toString()))
  const exit = new Promise<number | null>((resolve) =>
    child.on('exit', (code) => {
      if (code !== 0 && code !== null) process.stderr.write(`cutover ${args.join(' ')} exited ${code}:\n${err}\n`)
      resolve(code)
    }),
  )
  return { process: child, exit, stdout: () => out }
}

async function until(condition: () => Promise<boolean>, what: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
}

describe('crashes', () => {
  it('SIGKILL at three random points, then a restart: every row once, nothing counted twice, verified', { timeout: 180_000 }, async () => {
    const { oldDb, newDb } = await databases(ROWS)
    const env = { CUTOVER_TEST_OLD_URL: oldDb.url, CUTOVER_TEST_NEW_URL: newDb.url, CUTOVER_TEST_BATCH: '500', CUTOVER_TEST_RATE: '12000' }
    // One random point in each third of 10 %…90 %, so every run is killed after doing some work.
    const kills = [0, 1, 2].map((third) => Math.floor((0.1 + (0.8 * (third + Math.random())) / 3) * ROWS))
    const read = async () => {
      const { rows } = await sql<{ n: string | null }>`select (counts->>'read') as n from cutover.backfill_checkpoints where migration = 'people'`.execute(newDb.db)
      return Number(rows[0]?.n ?? 0)
    }
    for (const at of kills) {
      const readBefore = await read()
      const child = cutover(['backfill', 'people'], env)
      let exited = false
      void child.exit.then(() => (exited = true))
      await until(async () => exited || (await read()) >= Math.max(at, readBefore + 1), `${at} rows read`)
      expect(exited, `the backfill ended before the kill at ${at}`).toBe(false)
      child.process.kill('SIGKILL')
      expect(await child.exit).toBe(null)
    }
    const beforeLast = await read()
    expect(beforeLast).toBeGreaterThanOrEqual(kills[2] as number)
    expect(await count(newDb.db, 'people_v2')).toBeLessThan(ROWS)

    const last = cutover(['backfill', 'people'], env)
    expect(await last.exit).toBe(0)
    const result = JSON.parse(last.stdout().trim().split('\n').at(-1) as string)
    expect(result).toMatchObject({ type: 'result', status: 'done', counts: { read: ROWS, quarantined: 0, mismatched: 0 } })
    expect(result.resumedAfter).toBeDefined()
    expect(result.counts.written + result.counts.skipped).toBe(ROWS)

    expect(await count(newDb.db, 'people_v2')).toBe(ROWS)
    const migration = peopleMigration(oldDb.db, newDb.db)
    const report = await verifyExhaustive({ migration, ...(await peopleSegments(oldDb.db, newDb.db, migration)) })
    expect(report.consistent, `killed at ${kills.join(', ')}`).toBe(true)
    const audit = await new AuditLog(newDb.db).entries('people')
    expect(audit.filter((e) => e.details.event === 'started')).toHaveLength(4)
    expect(audit.filter((e) => e.details.event === 'finished')).toHaveLength(1)
  })

  it('two workers share a distributed backfill; killing one mid-range leaves no gap and nothing done twice', { timeout: 180_000 }, async () => {
    const rows = 20_000
    const { oldDb, newDb } = await databases(rows)
    const migration = peopleMigration(oldDb.db, newDb.db)
    // A range job whose worker goes silent for 4 s is failed and retried elsewhere.
    const planner = new BackfillJobs({ control: newDb.db, expireInSeconds: 4 })
    expect(await planner.plan(migration, { rangeSize: 2_000 })).toHaveLength(11)
    expect(await planner.enqueue('people')).toBe(11)
    await planner.stop()

    const env = { CUTOVER_TEST_OLD_URL: oldDb.url, CUTOVER_TEST_NEW_URL: newDb.url, CUTOVER_TEST_BATCH: '250', CUTOVER_TEST_RATE: '3000' }
    const workerArgs = ['worker', 'people', '--expire', '4', '--poll', '0.5']
    const a = cutover(workerArgs, { ...env, CUTOVER_TEST_APP: 'worker-a' })
    const b = cutover(workerArgs, { ...env, CUTOVER_TEST_APP: 'worker-b' })
    // Kill A mid-range: while it holds a range's advisory lock and that range has checkpointed work.
    const rangeOfA = async (): Promise<string | undefined> => {
      const { rows: held } = await sql<{ range_id: string }>`
        select r.range_id from cutover.backfill_ranges r
        join cutover.backfill_checkpoints c using (migration, range_id)
        join pg_locks l on l.locktype = 'advisory' and l.objid = (hashtext('cutover.backfill:people:' || r.range_id)::bigint & 4294967295)::text::oid
        join pg_stat_activity s on s.pid = l.pid and s.application_name = 'worker-a'
        where r.migration = 'people' and c.status = 'running' and (c.counts->>'read')::int > 0`.execute(newDb.db)
      return held[0]?.range_id
    }
    let killedRange: string | undefined
    await until(async () => (killedRange = await rangeOfA()) !== undefined, 'worker A mid-range')
    a.process.kill('SIGKILL')
    expect(await a.exit).toBe(null)

    expect(await b.exit).toBe(0)
    expect(await planner.finished('people')).toBe(true)
    const checkpoints = await new CheckpointTable(newDb.db).list('people')
    expect(checkpoints.every((c) => c.status === 'done')).toBe(true)
    // The killed range was finished by B from A's checkpoint, not from its start.
    const resumed = (await new AuditLog(newDb.db).entries('people')).filter((e) => e.details.rangeId === killedRange && e.details.event === 'started')
    expect(resumed.map((e) => e.details.resumedAfter !== null)).toEqual([false, true])
    expect(checkpoints.reduce((sum, c) => sum + c.counts.read, 0)).toBe(rows)
    expect(checkpoints.reduce((sum, c) => sum + c.counts.written + c.counts.skipped, 0)).toBe(rows)
    expect(await count(newDb.db, 'people_v2')).toBe(rows)
    const report = await verifyExhaustive({ migration, ...(await peopleSegments(oldDb.db, newDb.db, migration)) })
    expect(report.consistent).toBe(true)
  })
})
