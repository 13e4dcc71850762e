/**
 * `cutover status` and `cutover rollback` against a running instance (in this process, a fleet
 * member heartbeating to the control database): the status shows per migration the phase, read
 * percent, compare sample, consistency of compared reads, dead letters and each instance with its
 * phase and heartbeat age; `rollback` moves the fleet back through the barrier, in one word.
 */
import { createCutover, type Cutover, silentLogger } from '@cutover/core'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { main } from '../packages/core/src/cli/main.js'
import { createPeopleTables, peopleMigration } from './fixtures/people.js'
import { createTestDatabase, type TestDatabase } from './setup/services.js'

let oldDb: TestDatabase
let newDb: TestDatabase
let app: Cutover

beforeAll(async () => {
  ;[oldDb, newDb] = await Promise.all([createTestDatabase('cutover_status_old'), createTestDatabase('cutover_status_new')])
  await createPeopleTables(oldDb.db, newDb.db, 10)
  process.env.CUTOVER_TEST_OLD_URL = oldDb.url
  process.env.CUTOVER_TEST_NEW_URL = newDb.url
  app = await createCutover({ migrations: [peopleMigration(oldDb.db, newDb.db)], control: newDb.db, env: {}, logger: silentLogger, fleet: { name: 'app-a', listenUrl: newDb.url } })
})
afterAll(async () => {
  await app?.close()
  await Promise.all([oldDb?.drop(), newDb?.drop()])
})

async function cutover(...args: string[]): Promise<{ code: number; result: any; text: string }> {
  let out = ''
  const tty = args.includes('--text')
  args = args.filter((a) => a !== '--text')
  const stream = (append: (s: string) => void) => ({ isTTY: tty, columns: 120, write: (chunk: string) => (append(chunk), true) }) as unknown as NodeJS.WriteStream
  const code = await main([...args, '--config', 'test/fixtures/people.config.ts', '--actor', 'oncall'], { stdout: stream((s) => (out += s)), stderr: stream(() => undefined) })
  const last = out.trim().split('\n').at(-1) ?? ''
  return { code, result: last.startsWith('{') ? JSON.parse(last) : undefined, text: out }
}

async function until(condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('timed out')
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

describe('cutover status and rollback', () => {
  it('shows phase, read percent, compare sample, consistency of compared reads and each instance with phase and heartbeat age', async () => {
    for (const phase of ['shadow', 'compare']) expect((await cutover('phase', 'people', phase, '--compare-sample', '0.5')).code).toBe(0)
    await until(() => app.migration('people').phase === 'compare')
    const runtime = app.migration('people')
    const person = { id: 1, full_name: 'Ann Lee', email: 'a@example.com', version: 1 }
    const mapped = { id: 1, first_name: 'Ann', last_name: 'Lee', email: 'a@example.com', version: 1 }
    for (let i = 0; i < 3; i++) runtime.compareRead([person], [mapped])
    runtime.compareRead([person], [{ ...mapped, email: 'b@example.com' }])
    await app.fleet?.tick() // the next heartbeat carries the counts

    const { code, result } = await cutover('status', 'people', '--json')
    expect(code).toBe(0)
    const [status] = result.migrations
    expect(status).toMatchObject({ migration: 'people', phase: 'compare', readPercent: 0, compareSample: 0.5, compared: { equal: 3, mismatch: 1, consistency: 0.75 }, deadLettersOpen: 0 })
    expect(status.instances).toEqual([expect.objectContaining({ name: 'app-a', phase: 'compare', live: true, fenced: false, writesRefused: null })])
    expect(status.instances[0].heartbeatAgeS).toBeLessThan(5)

    const text = (await cutover('status', 'people', '--text')).text
    expect(text).toMatch(/people: phase compare \(v\d+\), reads on new 0%, compare sample 0.5/)
    expect(text).toContain('75.00% consistent of 4 compared')
    expect(text).toMatch(/app-a: compare, heartbeat [\d.]+s ago/)
  })

  it("names the tenants whose writes an instance refuses while the migration's own writes go on", async () => {
    const instanceId = app.fleet!.instanceId
    await sql`insert into cutover.fences (instance_id, migration, tenant, barrier_id, until_version) values (${instanceId}, 'people', 'bolt', 0, 1000)`.execute(newDb.db)
    try {
      await app.fleet?.tick() // follows the fence, then heartbeats with it
      const { result } = await cutover('status', 'people', '--json')
      expect(result.migrations[0].instances).toEqual([expect.objectContaining({ name: 'app-a', writesRefused: null, tenantWritesRefused: { bolt: 'fenced' }, fenced: true })])
      expect((await cutover('status', 'people', '--text')).text).toMatch(/app-a: \w+, heartbeat [\d.]+s ago, FENCED, refusing writes for tenant bolt \(fenced\)/)
    } finally {
      await sql`delete from cutover.fences where instance_id = ${instanceId}`.execute(newDb.db)
      await app.fleet?.tick()
    }
    const { result } = await cutover('status', 'people', '--json')
    expect(result.migrations[0].instances).toEqual([expect.objectContaining({ name: 'app-a', tenantWritesRefused: {}, fenced: false })])
  })

  it('`cutover rollback <migration>` moves the fleet to rollback through the barrier, audited with the reason', { timeout: 30_000 }, async () => {
    expect((await cutover('phase', 'people', 'ramp', '--read-percent', '10')).code).toBe(0)
    expect((await cutover('phase', 'people', 'cutover')).code).toBe(0)
    await until(() => app.migration('people').phase === 'cutover')
    const rollback = await cutover('rollback', 'people', '--reason', 'p95 up', '--json')
    expect(rollback).toMatchObject({ code: 0, result: { command: 'rollback', before: 'cutover', after: 'rollback', barrier: { acknowledged: ['app-a'], fenced: [] } } })
    await until(() => app.migration('people').phase === 'rollback')
    const entry = (await app.audit!.entries('people')).at(-1)
    expect(entry).toMatchObject({ actor: 'oncall', action: 'phase_change', details: { before: { phase: 'cutover' }, after: { phase: 'rollback' }, reason: 'p95 up' } })
    expect((await cutover('rollback', 'people', '--json')).result).toMatchObject({ changed: false })
  })
})
