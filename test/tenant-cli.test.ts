/**
 * The CLI's tenant commands against a running instance (in this process, a fleet member): `cutover
 * phase <m> <phase> --tenant T` gives a tenant its own phase, `cutover status` lists the overrides
 * (text and JSON), `cutover rollback <m> --tenant T` rolls one tenant back through its barrier,
 * and `cutover phase <m> --tenant T --clear` makes it follow the migration again.
 */
import { createCutover, type Cutover, silentLogger } from '@cutover/core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { main } from '../packages/core/src/cli/main.js'
import { createPeopleTables, peopleMigration } from './fixtures/people.js'
import { createTestDatabase, type TestDatabase } from './setup/services.js'

let oldDb: TestDatabase
let newDb: TestDatabase
let app: Cutover

beforeAll(async () => {
  ;[oldDb, newDb] = await Promise.all([createTestDatabase('cutover_tcli_old'), createTestDatabase('cutover_tcli_new')])
  await createPeopleTables(oldDb.db, newDb.db, 10)
  process.env.CUTOVER_TEST_OLD_URL = oldDb.url
  process.env.CUTOVER_TEST_NEW_URL = newDb.url
  app = await createCutover({ migrations: [peopleMigration(oldDb.db, newDb.db)], control: newDb.db, env: {}, logger: silentLogger, fleet: { name: 'app-a', listenUrl: newDb.url } })
})
afterAll(async () => {
  await app?.close()
  await Promise.all([oldDb?.drop(), newDb?.drop()])
})

async function cutover(...args: string[]): Promise<{ code: number; result: any; text: string; errors: string }> {
  let out = ''
  let errors = ''
  const tty = args.includes('--text')
  args = args.filter((a) => a !== '--text')
  const stream = (append: (s: string) => void) => ({ isTTY: tty, columns: 120, write: (chunk: string) => (append(chunk), true) }) as unknown as NodeJS.WriteStream
  const code = await main([...args, '--config', 'test/fixtures/people.config.ts', '--actor', 'oncall'], { stdout: stream((s) => (out += s)), stderr: stream((s) => (errors += s)) })
  const last = out.trim().split('\n').at(-1) ?? ''
  return { code, result: last.startsWith('{') ? JSON.parse(last) : undefined, text: out, errors }
}

async function until(condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('timed out')
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

const acmePhase = () => app.migration('people').phaseFor({ tenant: 'acme' })

describe('cutover phase/status/rollback --tenant', () => {
  it('gives a tenant its own phase, shows it in status, rolls it back alone and clears it', { timeout: 60_000 }, async () => {
    expect((await cutover('phase', 'people', 'shadow')).code).toBe(0)
    const moved = await cutover('phase', 'people', 'compare', '--tenant', 'acme', '--compare-sample', '0.5', '--json')
    expect(moved).toMatchObject({ code: 0, result: { tenant: 'acme', before: { phase: 'shadow', override: false }, after: { phase: 'compare', compareSample: 0.5, override: true } } })
    await until(() => acmePhase() === 'compare')
    expect(app.migration('people').phaseFor({ tenant: 'other' })).toBe('shadow')
    expect(app.migration('people').phaseFor({})).toBe('shadow')

    expect((await cutover('phase', 'people', '--tenant', 'acme', '--json')).result).toMatchObject({ tenant: 'acme', phase: 'compare', override: true })
    expect((await cutover('phase', 'people', '--tenant', 'acme', '--text')).text).toContain('people tenant acme: compare (reads on new 0%, compare sample 0.5, its own phase)')

    for (const [phase, extra] of [['ramp', ['--read-percent', '25']], ['cutover', []]] as const) expect((await cutover('phase', 'people', phase, '--tenant', 'acme', ...extra)).code).toBe(0)
    await until(() => acmePhase() === 'cutover')
    await app.fleet?.tick() // the next heartbeat says which tenant phases the instance has in force
    const { result } = await cutover('status', 'people', '--json')
    expect(result.migrations[0]).toMatchObject({ phase: 'shadow', tenants: [{ tenant: 'acme', phase: 'cutover', readPercent: 25, compareSample: 0.5, updatedBy: 'oncall', lagging: [] }] })
    expect(result.migrations[0].instances).toEqual([expect.objectContaining({ name: 'app-a', phase: 'shadow' })])
    const text = (await cutover('status', 'people', '--text')).text
    expect(text).toContain('tenant overrides (1):')
    expect(text).toMatch(/acme: cutover \(v\d+\), reads on new 25%, compare sample 0.5, set by oncall/)

    // `plan --tenant`: the tenant's own phase, dwell and next move; without it, the migration's.
    const plan = await cutover('plan', 'people', '--tenant', 'acme', '--json')
    expect(plan).toMatchObject({ code: 0, result: { command: 'plan', tenant: 'acme', phase: 'cutover', next: { from: 'cutover', to: 'complete' } } })
    expect(plan.result.dwell.find((d: { phase: string }) => d.phase === 'cutover').dwellMs).toBeGreaterThan(0)
    expect((await cutover('plan', 'people', '--json')).result).toMatchObject({ phase: 'shadow', next: { from: 'shadow', to: 'compare' } })
    expect((await cutover('plan', 'people', '--json')).result.tenant).toBeUndefined()
    expect((await cutover('plan', 'people', '--tenant', 'acme', '--text')).text).toMatch(/^people tenant acme: phase cutover\n/)

    // The migration cannot complete while a tenant has a phase of its own.
    expect((await cutover('phase', 'people', 'complete')).code).toBe(1)

    const rollback = await cutover('rollback', 'people', '--tenant', 'acme', '--reason', 'acme sees errors', '--json')
    expect(rollback).toMatchObject({ code: 0, result: { command: 'rollback', tenant: 'acme', before: 'cutover', after: 'rollback', barrier: { tenant: 'acme', acknowledged: ['app-a'], fenced: [] } } })
    await until(() => acmePhase() === 'rollback')
    expect(app.migration('people').phase).toBe('shadow')
    // A retry goes back to the phase before the rollback's, by the tenant's own timeline.
    expect((await cutover('plan', 'people', '--tenant', 'acme', '--json')).result).toMatchObject({ tenant: 'acme', phase: 'rollback', next: { to: 'ramp' } })
    const entry = (await app.audit!.entries('people')).at(-1)
    expect(entry).toMatchObject({ actor: 'oncall', action: 'tenant_phase_change', details: { tenant: 'acme', before: { phase: 'cutover' }, after: { phase: 'rollback' }, reason: 'acme sees errors' } })
    expect((await cutover('rollback', 'people', '--tenant', 'acme', '--json')).result).toMatchObject({ changed: false })

    const cleared = await cutover('phase', 'people', '--tenant', 'acme', '--clear', '--json')
    expect(cleared).toMatchObject({ code: 0, result: { before: { phase: 'rollback', override: true }, after: { phase: 'shadow', override: false } } })
    await until(() => acmePhase() === 'shadow' && app.migration('people').tenantOverrides.size === 0)
    expect((await cutover('status', 'people', '--text')).text).toContain('tenant overrides: none')
    expect((await cutover('status', 'people', '--json')).result.migrations[0].tenants).toEqual([])
  })

  it('refuses --clear without a tenant, and a move the phase table does not allow from the tenant\'s phase', async () => {
    expect((await cutover('phase', 'people', '--clear')).code).toBe(64)
    expect((await cutover('phase', 'people', 'shadow', '--tenant', 'acme', '--clear')).code).toBe(64)
    const skip = await cutover('phase', 'people', 'cutover', '--tenant', 'acme')
    expect(skip.code).toBe(1)
    expect(skip.errors).toContain('Tenant "acme" of migration "people" cannot move from phase "shadow" to "cutover"')
  })

  it('`cutover rollback <migration>` rolls back the tenants with phases of their own too, each through its barrier', { timeout: 30_000 }, async () => {
    expect((await cutover('phase', 'people', 'compare', '--tenant', 'acme')).code).toBe(0)
    for (const phase of ['compare', 'ramp']) expect((await cutover('phase', 'people', phase, '--tenant', 'bolt')).code).toBe(0)
    const rollback = await cutover('rollback', 'people', '--json')
    expect(rollback).toMatchObject({ code: 0, result: { before: 'shadow', after: 'rollback', tenants: [{ tenant: 'acme', before: 'compare' }, { tenant: 'bolt', before: 'ramp' }] } })
    await until(() => app.migration('people').phase === 'rollback' && acmePhase() === 'rollback' && app.migration('people').phaseFor({ tenant: 'bolt' }) === 'rollback')
    for (const tenant of ['acme', 'bolt']) expect((await cutover('phase', 'people', '--tenant', tenant, '--clear')).code).toBe(0)
    expect((await cutover('rollback', 'people', '--json')).result).toMatchObject({ changed: false })
  })
})
