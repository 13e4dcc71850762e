/**
 * Tenant by tenant, across processes: three application instances (child processes, the Kysely
 * plugin on both databases) follow per-tenant rows of `cutover.tenant_state`. A tenant in `cutover`
 * writes to the new store with the reverse mirror while another in `shadow` writes to the old one;
 * each tenant's reads are served where its own phase says; a tenant's change of write authority
 * passes a barrier that holds and fences only that tenant's writes; every change is audited with
 * the tenant.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { ConfigError, createCutover, type Cutover, type Phase, silentLogger, TenantPhaseTransitionError } from '@cutover/core'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createPeopleTables, peopleMigration } from './fixtures/people.js'
import { createTestDatabase, type TestDatabase } from './setup/services.js'

interface Event {
  readonly type: string
  readonly name: string
  readonly at: number
  readonly seq?: number
  readonly ok?: boolean
  readonly code?: string
  readonly side?: string
  readonly rows?: { id: number; email: string }[]
  readonly tenant?: string
  readonly to?: string
  readonly outcome?: string
  readonly phase?: string
  readonly instanceId?: string
}

interface Child {
  readonly name: string
  readonly process: ChildProcess
  readonly events: Event[]
}

const INSTANCES = 3
/** acme and bolt get phases of their own; cole never does and follows the migration. */
const TENANTS = ['acme', 'bolt', 'cole']
let oldDb: TestDatabase
let newDb: TestDatabase
let coordinator: Cutover
const children: Child[] = []
let seq = 0

beforeAll(async () => {
  ;[oldDb, newDb] = await Promise.all([createTestDatabase('cutover_tenant_old'), createTestDatabase('cutover_tenant_new')])
  await createPeopleTables(oldDb.db, newDb.db, 0)
  // The operator's engine: no fleet membership of its own (like `cutover phase`).
  coordinator = await createCutover({ migrations: [peopleMigration(oldDb.db, newDb.db)], control: newDb.db, env: {}, pollIntervalMs: false, signalIntervalMs: false, logger: silentLogger, barrier: { timeoutMs: 3_000 } })
  for (let i = 0; i < INSTANCES; i++) {
    const name = `app-${i}`
    const child = spawn(process.execPath, ['--import', 'tsx', 'test/fixtures/tenant-instance.ts'], {
      env: { ...process.env, OLD_URL: oldDb.url, NEW_URL: newDb.url, FLEET_NAME: name, TENANTS: TENANTS.join(',') },
      stdio: ['pipe', 'pipe', 'inherit'],
    })
    const entry: Child = { name, process: child, events: [] }
    let buffer = ''
    child.stdout?.on('data', (chunk: Buffer) => {
      buffer += chunk.toString()
      const lines = buffer.split('\n')
      buffer = lines.pop() ?? ''
      for (const line of lines) if (line.startsWith('{')) entry.events.push(JSON.parse(line) as Event)
    })
    children.push(entry)
  }
  await waitFor(() => children.every((c) => c.events.some((e) => e.type === 'ready')), 60_000)
  await waitFor(async () => (await sql<{ n: string }>`select count(*) as n from cutover.instances`.execute(newDb.db)).rows[0]?.n === String(INSTANCES), 10_000)
}, 120_000)

afterAll(async () => {
  for (const child of children) {
    child.process.kill('SIGCONT')
    child.process.kill('SIGTERM')
  }
  await Promise.all(children.map((c) => new Promise((resolve) => (c.process.exitCode !== null ? resolve(undefined) : c.process.once('exit', resolve)))))
  await coordinator?.close()
  await Promise.all([oldDb?.drop(), newDb?.drop()])
})

async function waitFor(condition: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('timed out waiting')
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

/** Sends a command to a child and waits for its reply. */
async function ask(child: Child, command: Record<string, unknown>): Promise<Event> {
  const id = ++seq
  child.process.stdin?.write(`${JSON.stringify({ seq: id, ...command })}\n`)
  await waitFor(() => child.events.some((e) => e.type === 'reply' && e.seq === id), 10_000)
  return child.events.find((e) => e.type === 'reply' && e.seq === id) as Event
}

/** Moves a tenant (null: clears it) and waits until every named child has put its phase in force. */
async function moveTenant(tenant: string, phase: Phase | null, options: { readPercent?: number; followers?: readonly Child[] } = {}): Promise<void> {
  const since = Date.now()
  await coordinator.refresh()
  await coordinator.setTenantPhase('people', tenant, phase, { actor: 'test', ...(options.readPercent === undefined ? {} : { readPercent: options.readPercent }) })
  const to = phase ?? coordinator.migration('people').configuredPhase
  const followers = options.followers ?? children
  await waitFor(() => followers.every((c) => c.events.some((e) => e.type === 'tenant-phase' && e.tenant === tenant && e.to === to && e.at >= since - 5)), 10_000)
}

async function lastAudit(): Promise<{ action: string; actor: string; details: Record<string, any> }> {
  const { rows } = await sql<{ action: string; actor: string; details: Record<string, any> }>`select action, actor, details from cutover.audit order by seq desc limit 1`.execute(newDb.db)
  return rows[0] as { action: string; actor: string; details: Record<string, any> }
}

async function row(db: TestDatabase, table: string, id: number): Promise<{ email: string } | undefined> {
  return db.db.selectFrom(table).select('email').where('id', '=', id).executeTakeFirst() as Promise<{ email: string } | undefined>
}

describe('tenant by tenant across processes', () => {
  it('tenant acme in cutover, bolt in shadow: each tenant writes to its authoritative side and the mirror runs its way', { timeout: 60_000 }, async () => {
    await coordinator.setPhase('people', 'shadow', { actor: 'test' })
    await moveTenant('acme', 'compare')
    await moveTenant('acme', 'ramp', { readPercent: 100 })
    await moveTenant('acme', 'cutover')
    const [writer, other] = children as [Child, Child, Child]

    expect(await ask(writer, { op: 'write', tenant: 'bolt', id: 1, email: 'bolt@old.example', version: 1 })).toMatchObject({ ok: true, side: 'old' })
    expect(await ask(writer, { op: 'write', tenant: 'acme', id: 2, email: 'acme@new.example', version: 1 })).toMatchObject({ ok: true, side: 'new' })
    await ask(writer, { op: 'drain' })
    // bolt's write went old → new, acme's new → old (the rollback net of a tenant in cutover).
    expect(await row(oldDb, 'people', 1)).toEqual({ email: 'bolt@old.example' })
    expect(await row(newDb, 'people_v2', 1)).toEqual({ email: 'bolt@old.example' })
    expect(await row(newDb, 'people_v2', 2)).toEqual({ email: 'acme@new.example' })
    expect(await row(oldDb, 'people', 2)).toEqual({ email: 'acme@new.example' })

    // Through the plugin on the old table: refused for acme (the new store is its authority), taken for bolt.
    expect(await ask(other, { op: 'write-old', tenant: 'acme', id: 3, email: 'x', version: 1 })).toMatchObject({ ok: false, code: 'WRITE_REJECTED_BY_PHASE' })
    expect(await ask(other, { op: 'write-old', tenant: 'bolt', id: 3, email: 'bolt3@old.example', version: 1 })).toMatchObject({ ok: true })
    expect(await ask(other, { op: 'write-old', id: 4, email: 'nobody@old.example', version: 1 })).toMatchObject({ ok: true })
  })

  it("each tenant's reads are served by the side its own phase says; a request without a tenant follows the migration", { timeout: 30_000 }, async () => {
    // A row that differs between the stores, never written through the application (no mirror touches it).
    await sql`insert into people (id, full_name, email, version) values (10, 'Ten Row', 'ten@old.example', 1)`.execute(oldDb.db)
    await sql`insert into people_v2 (id, first_name, last_name, email, version) values (10, 'Ten', 'Row', 'ten@new.example', 1)`.execute(newDb.db)
    const reader = children[2] as Child
    expect(await ask(reader, { op: 'read', tenant: 'acme', id: 10 })).toMatchObject({ ok: true, phase: 'cutover', rows: [{ id: 10, email: 'ten@new.example' }] })
    expect(await ask(reader, { op: 'read', tenant: 'bolt', id: 10 })).toMatchObject({ ok: true, phase: 'shadow', rows: [{ id: 10, email: 'ten@old.example' }] })
    expect(await ask(reader, { op: 'read', id: 10 })).toMatchObject({ ok: true, phase: 'shadow', rows: [{ id: 10, email: 'ten@old.example' }] })
  })

  it("a tenant's barrier holds and fences only that tenant's writes", { timeout: 60_000 }, async () => {
    for (const phase of ['compare', 'ramp'] as const) await moveTenant('bolt', phase)
    const [first, second, paused] = children as [Child, Child, Child]
    await waitFor(() => children.every((c) => c.events.filter((e) => e.type === 'write' && e.tenant === 'bolt').at(-1)?.outcome === 'ok'), 10_000)
    paused.process.kill('SIGSTOP')
    const stoppedAt = Date.now()
    await moveTenant('bolt', 'cutover', { followers: [first, second] })
    const committedAt = Date.now()

    const entry = await lastAudit()
    expect(entry).toMatchObject({ action: 'tenant_phase_change', actor: 'test', details: { tenant: 'bolt', before: { phase: 'ramp' }, after: { phase: 'cutover' }, barrier: { tenant: 'bolt', acknowledged: ['app-0', 'app-1'], fenced: ['app-2'] } } })
    const fences = await sql<{ instance_id: string; migration: string; tenant: string }>`select instance_id, migration, tenant from cutover.fences`.execute(newDb.db)
    expect(fences.rows).toEqual([{ instance_id: paused.events.find((e) => e.type === 'ready')?.instanceId, migration: 'people', tenant: 'bolt' }])
    for (const child of [first, second]) {
      const during = child.events.filter((e) => e.type === 'write' && e.at >= stoppedAt && e.at <= committedAt)
      // bolt's writes were held while the barrier was open; cole and acme were never touched.
      expect(during.filter((e) => e.tenant === 'bolt').map((e) => e.outcome)).toContain('WRITE_FENCED:barrier')
      expect(during.filter((e) => e.tenant !== 'bolt'), `${child.name} changed another tenant's write outcome`).toEqual([])
      expect(child.events.filter((e) => e.type === 'write' && e.tenant === 'bolt').at(-1)).toMatchObject({ outcome: 'WRITE_REJECTED_BY_PHASE', phase: 'cutover' })
    }

    const resumedAt = Date.now()
    paused.process.kill('SIGCONT')
    await waitFor(() => paused.events.some((e) => e.type === 'tenant-phase' && e.tenant === 'bolt' && e.to === 'cutover'), 10_000)
    await waitFor(async () => (await sql`select 1 from cutover.fences`.execute(newDb.db)).rows.length === 0, 5_000)
    // The fence row goes a moment before the instance stops refusing (and the probe reports it).
    await waitFor(() => paused.events.filter((e) => e.type === 'write' && e.tenant === 'bolt').at(-1)?.outcome === 'WRITE_REJECTED_BY_PHASE', 5_000)
    const afterWake = paused.events.filter((e) => e.type === 'write' && e.at >= resumedAt)
    // Woken in ramp past its lease, it refused bolt's old-store writes until it followed; cole (in
    // shadow, whose authority cannot move in one step) kept writing.
    const bolt = afterWake.filter((e) => e.tenant === 'bolt')
    expect(bolt[0]?.outcome).toMatch(/^WRITE_FENCED:(lease|fenced)$/)
    expect(bolt.some((e) => e.outcome === 'ok')).toBe(false)
    expect(bolt.at(-1)).toMatchObject({ outcome: 'WRITE_REJECTED_BY_PHASE', phase: 'cutover' })
    expect(afterWake.filter((e) => e.tenant === 'cole')).toEqual([])
  })

  it('a tenant moves by the phase table from its own phase, and its override is cleared through a legal move', { timeout: 60_000 }, async () => {
    // acme is in cutover, the migration in shadow: dropping the override would be cutover → shadow.
    await expect(coordinator.setTenantPhase('people', 'acme', null, { actor: 'test' })).rejects.toBeInstanceOf(TenantPhaseTransitionError)
    await expect(coordinator.setTenantPhase('people', 'acme', 'complete', { actor: 'test' })).rejects.toBeInstanceOf(ConfigError)
    await expect(coordinator.setTenantPhase('people', '', 'shadow', { actor: 'test' })).rejects.toBeInstanceOf(ConfigError)
    await expect(coordinator.setTenantPhase('people', 'acme', 'ramp', { actor: 'test', readPercent: 100.001 })).rejects.toBeInstanceOf(ConfigError)

    await moveTenant('acme', 'rollback')
    expect(await lastAudit()).toMatchObject({ details: { tenant: 'acme', before: { phase: 'cutover' }, after: { phase: 'rollback' }, barrier: { tenant: 'acme', fenced: [] } } })
    await moveTenant('acme', null)
    expect(await lastAudit()).toMatchObject({ action: 'tenant_phase_change', details: { tenant: 'acme', cleared: true, before: { phase: 'rollback', override: true }, after: { phase: 'shadow', override: false } } })
    // Cleared: acme follows the migration again, in every process.
    expect(await ask(children[0] as Child, { op: 'write', tenant: 'acme', id: 5, email: 'acme5@old.example', version: 1 })).toMatchObject({ ok: true, side: 'old' })
    const rows = await sql<{ tenant: string; phase: string | null; version: string }>`select tenant, phase, version from cutover.tenant_state order by tenant`.execute(newDb.db)
    expect(rows.rows.map((r) => ({ tenant: r.tenant, phase: r.phase }))).toEqual([
      { tenant: 'acme', phase: null },
      { tenant: 'bolt', phase: 'cutover' },
    ])
  })
})
