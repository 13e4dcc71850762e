/**
 * Fleet control with several processes: four application instances (child processes) follow every
 * phase change through NOTIFY and the 1 s poll; a change of write authority passes a barrier, so no
 * instance accepts old-store writes once the new store is authoritative; a paused instance that
 * misses the barrier is named, fenced, and refuses writes when it wakes until it has caught up.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { createCutover, type Cutover, copy, defineMigration, fieldMapper, type Phase, silentLogger } from '@cutover/core'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { MemoryStore } from '../packages/core/test/memory-store.js'
import { createTestDatabase, type TestDatabase } from './setup/services.js'

interface Event {
  readonly type: string
  readonly name: string
  readonly at: number
  readonly to?: string
  readonly outcome?: string
  readonly phase?: string
  readonly instanceId?: string
}

const INSTANCES = 4
let database: TestDatabase
let coordinator: Cutover
const children: { name: string; process: ChildProcess; events: Event[] }[] = []

const schema = z.object({ id: z.number(), name: z.string() })
const migration = () => defineMigration({ name: 'people', gates: false, old: new MemoryStore('old'), new: new MemoryStore('new'), mapper: fieldMapper({ old: schema, new: schema, fields: [copy('id'), copy('name')] }) })

beforeAll(async () => {
  database = await createTestDatabase('cutover_fleet')
  // The operator's engine: no fleet membership of its own (like `cutover phase`).
  coordinator = await createCutover({ migrations: [migration()], control: database.db, env: { CUTOVER_PHASE: 'off' }, pollIntervalMs: false, logger: silentLogger, barrier: { timeoutMs: 3_000 } })
  for (let i = 0; i < INSTANCES; i++) {
    const name = `app-${i}`
    const child = spawn(process.execPath, ['--import', 'tsx', 'test/fixtures/fleet-instance.ts'], {
      env: { ...process.env, CONTROL_URL: database.url, FLEET_NAME: name },
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    const entry = { name, process: child, events: [] as Event[] }
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
  await waitFor(async () => (await sql<{ n: string }>`select count(*) as n from cutover.instances`.execute(database.db)).rows[0]?.n === String(INSTANCES), 10_000)
}, 120_000)

afterAll(async () => {
  for (const child of children) {
    child.process.kill('SIGCONT')
    child.process.kill('SIGTERM')
  }
  await Promise.all(children.map((c) => new Promise((resolve) => (c.process.exitCode !== null ? resolve(undefined) : c.process.once('exit', resolve)))))
  await coordinator?.close()
  await database?.drop()
})

async function waitFor(condition: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('timed out waiting')
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

/** Sets the phase; returns when the control row changed (its `updated_at`, the commit's own clock). */
async function change(phase: Phase, readPercent?: number): Promise<{ committedAt: number; details: Record<string, any> }> {
  await coordinator.refresh()
  await coordinator.setPhase('people', phase, { actor: 'test', ...(readPercent === undefined ? {} : { readPercent }) })
  const { rows } = await sql<{ updated_at: Date }>`select updated_at from cutover.migration_state where migration = 'people'`.execute(database.db)
  const audit = await sql<{ details: Record<string, any> }>`select details from cutover.audit order by seq desc limit 1`.execute(database.db)
  return { committedAt: (rows[0]?.updated_at as Date).getTime(), details: audit.rows[0]?.details ?? {} }
}

/** When each named child put `phase` in force after `since`. */
async function followed(names: readonly string[], phase: string, since: number, timeoutMs = 10_000): Promise<number[]> {
  const seen = () => names.map((name) => children.find((c) => c.name === name)?.events.find((e) => e.type === 'phase' && e.to === phase && e.at >= since - 5)?.at)
  await waitFor(() => seen().every((at) => at !== undefined), timeoutMs)
  return seen() as number[]
}

/** Intervals in which a child accepted old-store writes: [start, end). */
function acceptedOldWrites(events: readonly Event[]): [number, number][] {
  const writes = events.filter((e) => e.type === 'write')
  return writes.flatMap((e, i) => (e.outcome === 'ok' ? [[e.at, writes[i + 1]?.at ?? Number.POSITIVE_INFINITY] as [number, number]] : []))
}

describe('fleet control across processes', () => {
  it('every live instance follows each change within 1 s at p99, through barriers too', { timeout: 180_000 }, async () => {
    const names = children.map((c) => c.name)
    const cycle: [Phase, number?][] = [['shadow'], ['compare'], ['ramp', 10], ['cutover'], ['ramp', 50], ['compare'], ['shadow'], ['off']]
    const delays: number[] = []
    for (let round = 0; round < 3; round++) {
      for (const [phase, readPercent] of cycle) {
        const { committedAt } = await change(phase, readPercent)
        const ats = await followed(names, phase, committedAt)
        delays.push(...ats.map((at) => at - committedAt))
      }
    }
    delays.sort((a, b) => a - b)
    const p99 = delays[Math.ceil(0.99 * delays.length) - 1] as number
    console.info(`fleet follow delay over ${delays.length} samples: p50 ${delays[Math.floor(delays.length / 2)]} ms, p99 ${p99} ms, max ${delays.at(-1)} ms`)
    expect(delays).toHaveLength(3 * cycle.length * INSTANCES)
    expect(p99).toBeLessThan(1_000)
  })

  it('a barrier leaves no instance accepting old-store writes once cutover is in force', { timeout: 60_000 }, async () => {
    await change('shadow')
    await change('compare')
    const { committedAt: rampAt } = await change('ramp', 20)
    await followed(children.map((c) => c.name), 'ramp', rampAt)
    const { committedAt, details } = await change('cutover')
    expect(details.barrier).toMatchObject({ fenced: [], acknowledged: children.map((c) => c.name) })
    for (const child of children) {
      const overlapping = acceptedOldWrites(child.events).filter(([, end]) => end > committedAt)
      expect(overlapping, `${child.name} accepted old-store writes after cutover was committed`).toEqual([])
      // While the barrier was open the instance held its writes (WRITE_FENCED: barrier).
      expect(child.events.some((e) => e.type === 'write' && e.outcome === 'WRITE_FENCED:barrier' && e.at >= rampAt)).toBe(true)
    }
    await change('ramp', 20)
  })

  it('an instance that misses the barrier is named and fenced, and refuses writes when it wakes until it caught up', { timeout: 60_000 }, async () => {
    const [paused, ...others] = children as [(typeof children)[0], ...typeof children]
    await waitFor(() => children.every((c) => c.events.filter((e) => e.type === 'phase').at(-1)?.to === 'ramp'), 10_000)
    await waitFor(() => children.every((c) => c.events.filter((e) => e.type === 'write').at(-1)?.outcome === 'ok'), 10_000)
    paused.process.kill('SIGSTOP')
    const stoppedAt = Date.now()
    const { committedAt, details } = await change('cutover')
    expect(details.barrier).toMatchObject({ fenced: [paused.name] })
    expect(details.barrier.acknowledged).toEqual(others.map((c) => c.name))
    const fences = await sql<{ instance_id: string }>`select instance_id from cutover.fences`.execute(database.db)
    const instanceId = paused.events.find((e) => e.type === 'ready')?.instanceId
    expect(fences.rows.map((r) => r.instance_id)).toEqual([instanceId])
    expect(committedAt - stoppedAt).toBeGreaterThanOrEqual(2_900) // it waited out the barrier's timeout

    const resumedAt = Date.now()
    paused.process.kill('SIGCONT')
    await followed([paused.name], 'cutover', resumedAt)
    await waitFor(async () => (await sql`select 1 from cutover.fences`.execute(database.db)).rows.length === 0, 5_000)
    // The fence row goes, and the lease renews, a moment before the instance stops refusing.
    await waitFor(() => paused.events.filter((e) => e.type === 'write').at(-1)?.outcome === 'WRITE_REJECTED_BY_PHASE', 5_000)
    const afterWake = paused.events.filter((e) => e.type === 'write' && e.at >= resumedAt)
    // Woken in `ramp`, past its lease: it refuses, it does not write to the old store.
    expect(afterWake[0]?.outcome).toMatch(/^WRITE_FENCED:(lease|fenced)$/)
    expect(afterWake.some((e) => e.outcome === 'ok')).toBe(false)
    expect(afterWake.at(-1)).toMatchObject({ outcome: 'WRITE_REJECTED_BY_PHASE', phase: 'cutover' })
    for (const child of others) expect(acceptedOldWrites(child.events).filter(([, end]) => end > committedAt)).toEqual([])
  })
})
