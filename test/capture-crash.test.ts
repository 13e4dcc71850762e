/**
 * Crashes with change-log capture, on real PostgreSQL and real child processes: writer processes
 * killed with SIGKILL at random points lose nothing (no reconciliation runs), a worker killed
 * mid-way resumes from the log, and two workers sharing one log apply each entry exactly once.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { ChangeLogWorker, createCutover, DeadLetterTable, ensureSchema, installCapture, Metrics, silentLogger } from '@cutover/core'
import { sql } from 'kysely'
import { afterAll, describe, expect, it } from 'vitest'
import { accountsMigration, createAccountsTables, kyselyOn, mirrorDifferences } from './fixtures/capture-accounts.js'
import { createTestDatabase, type TestDatabase } from './setup/services.js'

const ROOT = fileURLToPath(new URL('../', import.meta.url))
const dbs: TestDatabase[] = []

afterAll(async () => {
  await Promise.all(dbs.map((db) => db.drop()))
})

async function databases() {
  const [oldDb, newDb] = await Promise.all([createTestDatabase('cutover_capcrash_old'), createTestDatabase('cutover_capcrash_new')])
  dbs.push(oldDb, newDb)
  await ensureSchema(oldDb.db)
  await createAccountsTables(oldDb.db, newDb.db)
  await installCapture(accountsMigration(oldDb.db, newDb.db), ['old'])
  return { oldDb, newDb, env: { CUTOVER_TEST_OLD_URL: oldDb.url, CUTOVER_TEST_NEW_URL: newDb.url } }
}

interface Child {
  readonly process: ChildProcess
  readonly exit: Promise<void>
  /** The last number the child printed. */
  readonly progress: () => number
}

function child(script: string, env: Record<string, string>): Child {
  let last = 0
  let buffer = ''
  // `node --import tsx`, so a SIGKILL hits the process doing the work, not a tsx wrapper.
  const proc = spawn(process.execPath, ['--import', 'tsx', script], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] })
  proc.stdout?.on('data', (chunk: Buffer) => {
    buffer += chunk.toString()
    const lines = buffer.split('\n')
    buffer = lines.pop() ?? ''
    const value = Number(lines.at(-1))
    if (lines.length > 0 && Number.isFinite(value)) last = value
  })
  return { process: proc, exit: new Promise((resolve) => proc.on('exit', () => resolve())), progress: () => last }
}

async function until(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

async function kill(c: Child): Promise<void> {
  c.process.kill('SIGKILL')
  await c.exit
}

async function logSize(db: TestDatabase): Promise<number> {
  const { rows } = await sql<{ n: number }>`select count(*)::int as n from cutover.change_log where capture = 'accounts/old'`.execute(db.db)
  return rows[0]?.n ?? 0
}

describe('change-log capture survives crashes', () => {
  it('writer processes killed with SIGKILL at random points lose no change, with no reconciliation', { timeout: 180_000 }, async () => {
    const { oldDb, newDb, env } = await databases()
    const writers = [0, 1, 2].map(() => child('test/fixtures/capture-writer.ts', env))
    // Each writer is killed at a random point after some hundreds of writes, and one is restarted
    // and killed again, so kills land mid-transaction, mid-statement and right after commits.
    const killAt = writers.map(() => 150 + Math.floor(Math.random() * 600))
    await Promise.all(writers.map(async (w, i) => {
      await until(() => w.progress() >= (killAt[i] as number), `writer ${i} at ${killAt[i]} writes`)
      await kill(w)
    }))
    const again = child('test/fixtures/capture-writer.ts', env)
    await until(() => again.progress() >= 100 + Math.floor(Math.random() * 300), 'the restarted writer')
    await kill(again)
    expect(await logSize(oldDb)).toBeGreaterThan(0)

    // Only now does a worker run: the log, not any process's memory, holds every change.
    const cutover = await createCutover({ migrations: [accountsMigration(oldDb.db, newDb.db, { workers: 1 })], control: oldDb.db, env: { CUTOVER_ACCOUNTS_PHASE: 'shadow' }, pollIntervalMs: false, logger: silentLogger })
    await cutover.drain()
    await cutover.close()
    expect(await logSize(oldDb)).toBe(0)
    expect(await mirrorDifferences(oldDb.db, newDb.db)).toEqual([])
    const { rows } = await sql<{ n: number }>`select count(*)::int as n from accounts`.execute(oldDb.db)
    expect(rows[0]?.n).toBeGreaterThan(50)
  })

  it('a worker killed with SIGKILL while applying resumes from the log and applies everything', { timeout: 120_000 }, async () => {
    const { oldDb, newDb, env } = await databases()
    await sql`insert into accounts select i, 'First' || i || ' Last', i from generate_series(1, 3000) i`.execute(oldDb.db)
    await sql`update accounts set balance = balance + 1 where id % 3 = 0`.execute(oldDb.db)
    const total = await logSize(oldDb)
    for (const fraction of [0.2, 0.5]) {
      const worker = child('test/fixtures/capture-worker.ts', { ...env, CUTOVER_TEST_BATCH: '25' })
      const before = total - (await logSize(oldDb))
      await until(async () => worker.progress() >= fraction * total - before, `worker past ${fraction * 100} %`)
      await kill(worker)
      const left = await logSize(oldDb)
      expect(left, 'the kill left work to resume').toBeGreaterThan(0)
      expect(left).toBeLessThan(total)
    }
    const resumed = new ChangeLogWorker({ migration: accountsMigration(oldDb.db, newDb.db), direction: 'old-to-new', deadLetters: new DeadLetterTable(oldDb.db), phase: () => 'shadow', logger: silentLogger })
    await resumed.drain()
    expect(await logSize(oldDb)).toBe(0)
    expect(await mirrorDifferences(oldDb.db, newDb.db)).toEqual([])
  })

  it('two workers sharing one log under live writes apply each entry once and leave the stores equal', { timeout: 120_000 }, async () => {
    const { oldDb, newDb, env } = await databases()
    // Every committed entry, kept aside (an entry of a rolled-back write disappears with it).
    await sql`create table committed_entries (id bigint primary key)`.execute(oldDb.db)
    await sql`create function keep_entry() returns trigger language plpgsql as $$ begin insert into public.committed_entries values (new.id); return null; end $$`.execute(oldDb.db)
    await sql`create trigger keep_entry after insert on cutover.change_log for each row execute function keep_entry()`.execute(oldDb.db)
    const writer = child('test/fixtures/capture-writer.ts', env)
    const metrics = [new Metrics(), new Metrics()]
    const workers = metrics.map((m) => {
      const db = kyselyOn(oldDb.url, 3)
      oldDb.track(db)
      return new ChangeLogWorker({ migration: accountsMigration(db, newDb.db), direction: 'old-to-new', deadLetters: new DeadLetterTable(db), phase: () => 'shadow', batchSize: 40, pollIntervalMs: 5, metrics: m, logger: silentLogger })
    })
    for (const w of workers) w.start()
    await until(() => writer.progress() >= 1500, '1,500 writes')
    await kill(writer)
    await Promise.all(workers.map((w) => w.drain()))
    await Promise.all(workers.map((w) => w.stop()))
    const { rows } = await sql<{ last: string | null }>`select max(id)::text as last from cutover.change_log`.execute(oldDb.db)
    expect(rows[0]?.last ?? null, 'every entry removed').toBeNull()
    const applied = metrics.map((m) => m.counter('capture.applied', { migration: 'accounts', direction: 'old-to-new' }))
    const { rows: logged } = await sql<{ n: number }>`select count(*)::int as n from committed_entries`.execute(oldDb.db)
    expect(applied[0], 'both workers took part').toBeGreaterThan(0)
    expect(applied[1], 'both workers took part').toBeGreaterThan(0)
    expect((applied[0] as number) + (applied[1] as number), 'each committed entry applied exactly once').toBe(logged[0]?.n)
    expect(await mirrorDifferences(oldDb.db, newDb.db)).toEqual([])
  })
})
