/**
 * Distributed backfill, range takeover: a worker killed mid-range, or whose lease connection is cut,
 * loses its range at once (its session advisory lock goes with its session), an idle worker resumes
 * it from its checkpoint long before the expiry, and the one that lost it cannot checkpoint it
 * afterwards. Child processes run the real CLI under tsx.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { AuditLog, BackfillJobs, CheckpointTable, ensureSchema, LeaseLostError, verifyExhaustive } from '@cutover/core'
import { Kysely, PostgresDialect, sql } from 'kysely'
import pg from 'pg'
import { afterAll, describe, expect, it } from 'vitest'
import { RangeLeases, workerIdentity } from '../packages/core/src/jobs/backfill/range-lease.js'
import { rangeLines, type RangeStatus } from '../packages/core/src/cli/range-status.js'
import { count, createPeopleTables, peopleMigration, peopleSegments } from './fixtures/people.js'
import { createTestDatabase, type TestDatabase } from './setup/services.js'

const ROOT = fileURLToPath(new URL('../', import.meta.url))
const ROWS = 30_000
/** Far longer than a takeover may take: the expiry is not what moves a dead worker's range. */
const EXPIRE_S = 60
const dbs: TestDatabase[] = []
const children: ChildProcess[] = []

afterAll(async () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  await Promise.all(dbs.map((db) => db.drop()))
})

interface Child {
  readonly process: ChildProcess
  readonly exit: Promise<number | null>
  readonly stdout: () => string
  readonly stderr: () => string
}

function cutover(args: string[], env: Record<string, string>): Child {
  let out = ''
  let err = ''
  const child = spawn(process.execPath, ['--import', 'tsx', 'packages/core/src/cli/bin.ts', ...args, '--config', 'test/fixtures/people.config.ts'], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  children.push(child)
  child.stdout?.on('data', (chunk: Buffer) => (out += chunk.toString()))
  child.stderr?.on('data', (chunk: Buffer) => (err += chunk.toString()))
  const exit = new Promise<number | null>((resolve) =>
    child.on('exit', (code) => {
      if (code !== 0 && code !== null) process.stderr.write(`cutover ${args.join(' ')} exited ${code}:\n${err}\n`)
      resolve(code)
    }),
  )
  return { process: child, exit, stdout: () => out, stderr: () => err }
}

async function until<T>(probe: () => Promise<T | undefined>, what: string, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await probe()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

interface Lease {
  readonly rangeId: string
  readonly token: number
  readonly holderPid: number | null
  readonly backend: number | null
  readonly read: number
}

async function leases(db: Kysely<any>): Promise<Lease[]> {
  const { rows } = await sql<{ range_id: string; lease_token: string; holder_pid: number | null; holder_backend: number | null; read: string | null }>`
    select r.range_id, r.lease_token, r.holder_pid, r.holder_backend, (c.counts->>'read') as read
      from cutover.backfill_ranges r left join cutover.backfill_checkpoints c using (migration, range_id)
     where r.migration = 'people' order by r.position`.execute(db)
  return rows.map((r) => ({ rangeId: r.range_id, token: Number(r.lease_token), holderPid: r.holder_pid, backend: r.holder_backend, read: Number(r.read ?? 0) }))
}

/**
 * Two ranges (20,000 and 10,000 rows) and three workers: A starts alone and takes the first range;
 * B and C start once A is under way, B takes the second and C is left idle, ready to take over.
 */
async function threeWorkers() {
  const [oldDb, newDb] = await Promise.all([createTestDatabase('cutover_takeover_old'), createTestDatabase('cutover_takeover_new')])
  dbs.push(oldDb, newDb)
  await ensureSchema(newDb.db)
  await createPeopleTables(oldDb.db, newDb.db, ROWS)
  const migration = peopleMigration(oldDb.db, newDb.db)
  const planner = new BackfillJobs({ control: newDb.db })
  expect(await planner.plan(migration, { rangeSize: 20_000 })).toHaveLength(2)

  const env = { CUTOVER_TEST_OLD_URL: oldDb.url, CUTOVER_TEST_NEW_URL: newDb.url, CUTOVER_TEST_BATCH: '250', CUTOVER_TEST_RATE: '2500' }
  const args = ['worker', 'people', '--expire', String(EXPIRE_S), '--poll', '0.5']
  const a = cutover(args, env)
  const held = await until(async () => (await leases(newDb.db)).find((l) => l.holderPid === a.process.pid && l.read >= 1_000), 'worker A mid-range')
  const b = cutover(args, env)
  const c = cutover(args, env)
  await until(async () => ((await leases(newDb.db)).some((l) => l.holderPid === b.process.pid || l.holderPid === c.process.pid) ? true : undefined), 'a second worker under way')
  return { oldDb, newDb, migration, planner, a, b, c, held }
}

/** Every row copied once, every range done, nothing counted twice, both sides equal. */
async function expectComplete(oldDb: TestDatabase, newDb: TestDatabase, migration: ReturnType<typeof peopleMigration>, planner: BackfillJobs) {
  expect(await planner.finished('people')).toBe(true)
  const checkpoints = await new CheckpointTable(newDb.db).list('people')
  expect(checkpoints.every((c) => c.status === 'done')).toBe(true)
  expect(checkpoints.reduce((sum, c) => sum + c.counts.read, 0)).toBe(ROWS)
  expect(checkpoints.reduce((sum, c) => sum + c.counts.written + c.counts.skipped, 0)).toBe(ROWS)
  expect(await count(newDb.db, 'people_v2')).toBe(ROWS)
  const report = await verifyExhaustive({ migration, ...(await peopleSegments(oldDb.db, newDb.db, migration)) })
  expect(report.consistent).toBe(true)
}

describe('distributed backfill: range takeover', () => {
  it('a worker killed mid-range: an idle worker resumes its range within about a second, long before the expiry', { timeout: 180_000 }, async () => {
    const { oldDb, newDb, migration, planner, a, b, c, held } = await threeWorkers()
    const killedAt = performance.now()
    a.process.kill('SIGKILL')
    const taken = await until(async () => (await leases(newDb.db)).find((l) => l.rangeId === held.rangeId && l.token > held.token), 'the takeover')
    const takeoverMs = performance.now() - killedAt
    process.stderr.write(`[backfill-takeover] range ${held.rangeId} taken over ${takeoverMs.toFixed(0)} ms after SIGKILL (expiry ${EXPIRE_S} s, poll 0.5 s)\n`)
    expect(takeoverMs).toBeLessThan((EXPIRE_S * 1_000) / 4)
    expect([b.process.pid, c.process.pid]).toContain(taken.holderPid)

    // `cutover status` names the new holder of the range, with its host, pid and progress.
    const env = { CUTOVER_TEST_OLD_URL: oldDb.url, CUTOVER_TEST_NEW_URL: newDb.url }
    const json = cutover(['status', 'people', '--json'], env)
    expect(await json.exit).toBe(0)
    const status = JSON.parse(json.stdout().trim().split('\n').at(-1) as string)
    const ranges = status.migrations[0].backfillRanges as { rangeId: string; status: string; holder: { pid: number; workerId: string; host: string; since: string } | null; read: number }[]
    expect(ranges.map((r) => r.rangeId)).toEqual(['r00000', 'r00001'])
    const shown = ranges.find((r) => r.rangeId === held.rangeId)
    if (shown?.status !== 'done') {
      expect(shown?.holder?.pid).toBe(taken.holderPid)
      expect(shown?.holder?.workerId).toContain(String(taken.holderPid))
      expect(shown?.read).toBeGreaterThanOrEqual(held.read)
    }
    // Its text form (a terminal gets it; a pipe gets the JSON above).
    const text = rangeLines(ranges as RangeStatus[]).join('\n')
    expect(text).toMatch(/ranges: \d done, \d started, \d not started; \d held now/)
    if (shown?.status !== 'done') expect(text).toContain(`${held.rangeId}: ${shown?.holder?.workerId} (${shown?.holder?.host} pid ${taken.holderPid}) since ${shown?.holder?.since}`)

    expect(await a.exit).toBe(null)
    expect(await b.exit).toBe(0)
    expect(await c.exit).toBe(0)
    await expectComplete(oldDb, newDb, migration, planner)
    // Resumed from A's checkpoint, not from the range's start.
    const started = (await new AuditLog(newDb.db).entries('people')).filter((e) => e.details.rangeId === held.rangeId && e.details.event === 'started')
    expect(started.map((e) => e.details.resumedAfter !== null)).toEqual([false, true])
  })

  it("a worker whose lease connection is cut loses its range and cannot checkpoint it afterwards", { timeout: 180_000 }, async () => {
    const { oldDb, newDb, migration, planner, a, b, c, held } = await threeWorkers()
    const cutAt = performance.now()
    await sql`select pg_terminate_backend(${held.backend})`.execute(newDb.db)
    const taken = await until(async () => (await leases(newDb.db)).find((l) => l.rangeId === held.rangeId && l.token > held.token), 'the takeover')
    process.stderr.write(`[backfill-takeover] range ${held.rangeId} taken over ${(performance.now() - cutAt).toFixed(0)} ms after its lease connection was terminated\n`)
    // Whoever looks first takes it, A itself too (on a new lease connection): under a new token either way.
    expect(taken.token).toBeGreaterThan(held.token)

    // The old token is fenced: A's progress on the range can no longer be saved.
    const checkpoints = new CheckpointTable(newDb.db)
    const current = await checkpoints.load('people', held.rangeId)
    const stale = checkpoints.save(newDb.db, { migration: 'people', rangeId: held.rangeId, lastKey: current?.lastKey, counts: current!.counts, batchSize: 250, status: 'running' }, { leaseToken: held.token })
    await expect(stale).rejects.toBeInstanceOf(LeaseLostError)
    await expect(stale).rejects.toMatchObject({ code: 'BACKFILL_LEASE_LOST', rangeId: held.rangeId })

    // A noticed, gave the range up, and (on a new lease connection) stays a worker to the end.
    await until(async () => (a.stderr().includes('BACKFILL_LEASE_LOST') || a.stderr().includes('lost its lease connection') ? true : undefined), "A's notice of its loss")
    expect(await a.exit).toBe(0)
    expect(await b.exit).toBe(0)
    expect(await c.exit).toBe(0)
    await expectComplete(oldDb, newDb, migration, planner)
  })

  it('a holder alive but stuck keeps its range until the expiry, counted from its last progress; then its session is ended', async () => {
    const db = await createTestDatabase('cutover_takeover_stuck')
    dbs.push(db)
    await ensureSchema(db.db)
    await db.db.insertInto('cutover.backfill_ranges').values({ migration: 'people', range_id: 'r00000', position: 0 }).execute()
    // Its own pool: the stuck holder's connection is terminated, which pg reports on the client.
    const pool = new pg.Pool({ connectionString: db.url, max: 2 })
    pool.on('connect', (client) => client.on('error', () => undefined))
    const control = new Kysely<any>({ dialect: new PostgresDialect({ pool }) })
    try {
      await control.connection().execute(async (stuckSession) => {
        const stuck = new RangeLeases(stuckSession, 'people', workerIdentity('stuck'), 5)
        const held = await stuck.claim()
        expect(held).toMatchObject({ rangeId: 'r00000', token: 1 })
        await control.connection().execute(async (otherSession) => {
          const other = new RangeLeases(otherSession, 'people', workerIdentity('other'), 5)
          expect(await other.claim()).toBeUndefined() // alive and within the expiry
          await sql`update cutover.backfill_ranges set leased_at = now() - interval '6 seconds'`.execute(db.db)
          const taken = await other.claim()
          expect(taken).toMatchObject({ rangeId: 'r00000', token: 2 })
          await expect(stuck.stillHeld(held!)).rejects.toThrow() // its session was ended
        })
      })
    } catch (error) {
      // The stuck session's connection fails on release; nothing else may.
      if (!String(error).includes('terminat')) throw error
    } finally {
      await control.destroy()
    }
  })
})
