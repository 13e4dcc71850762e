import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import { copy, createCutover, type DeadLetter, defineMigration, fieldMapper, type MigrationDefinition, silentLogger } from '../src/index.js'
import { MemoryStore } from './memory-store.js'

const mapper = fieldMapper({
  old: z.object({ id: z.number(), name: z.string() }),
  new: z.object({ id: z.number(), name: z.string() }),
  fields: [copy('id'), copy('name')],
})

const sink = { entries: [] as DeadLetter[], async write(entries: readonly DeadLetter[]) { this.entries.push(...entries) } }

/** A migration in `ramp` at 100 %: every read would be served from the new store. */
async function ramp(overrides: Partial<MigrationDefinition> = {}) {
  const oldStore = new MemoryStore('old', 'id', [{ id: 1, name: 'a' }, { id: 2, name: 'b' }])
  const newStore = new MemoryStore('new', 'id')
  const migration = defineMigration({
    name: 'things',
    old: oldStore,
    new: newStore,
    mapper,
    mirror: { retry: { attempts: 1, baseDelayMs: 1, maxDelayMs: 1 }, lingerMs: 0, recheckDelayMs: false },
    ...overrides,
  })
  const cutover = await createCutover({ migrations: [migration], deadLetters: sink, env: { CUTOVER_PHASE: 'ramp', CUTOVER_READ_PERCENT: '100' }, logger: silentLogger })
  return { cutover, runtime: cutover.migration('things'), oldStore, newStore }
}

describe('read-your-writes in ramp', () => {
  it('a read of a key whose change is not applied yet goes to the old store, and is counted', async () => {
    const { cutover, runtime, newStore } = await ramp()
    newStore.latencyMs = 30
    expect(runtime.readSideFor([1], { routingKey: 'u' })).toBe('new')
    runtime.recordWrite('old', { key: 1, op: 'upsert' })
    expect(runtime.readSideFor([1], { routingKey: 'u' })).toBe('old')
    expect(runtime.readSideFor([2], { routingKey: 'u' })).toBe('new')
    expect(runtime.readSideFor(undefined, { routingKey: 'u' })).toBe('old') // not by key: any change counts
    await cutover.drain()
    expect(runtime.readSideFor([1], { routingKey: 'u' })).toBe('new')
    expect(cutover.metrics.counter('read.fresh_fallback', { migration: 'things' })).toBe(2)
    await cutover.close()
  })

  it('a key whose mirrored change was dead-lettered stays stale in this process until a replay applies it', async () => {
    const { cutover, runtime, newStore } = await ramp()
    newStore.failing = new Error('connect ECONNREFUSED')
    runtime.recordWrite('old', { key: 1, op: 'upsert' })
    await cutover.drain()
    expect(runtime.queue('old-to-new').depth).toBe(0)
    expect(runtime.readSideFor([1], { routingKey: 'u' })).toBe('old')
    expect(runtime.readSideFor(undefined, { routingKey: 'u' })).toBe('old')
    expect(runtime.readSideFor([2], { routingKey: 'u' })).toBe('new')
    // Waiting cannot apply a dead letter: a bounded wait gives up at once.
    expect(await runtime.queue('old-to-new').whenApplied([1], 5_000)).toBe(false)

    newStore.failing = undefined
    const [outcome] = await runtime.queue('old-to-new').apply([{ key: 1, op: 'upsert' }], { deadLetter: false }) // a replay
    expect(outcome?.status).toBe('applied')
    await cutover.drain()
    expect(runtime.readSideFor([1], { routingKey: 'u' })).toBe('new')
    expect(runtime.readSideFor(undefined, { routingKey: 'u' })).toBe('new')
    await cutover.close()
  })

  it('with freshness.waitMs a read waits for its own write to be applied and stays on the new store', async () => {
    const { cutover, runtime, newStore } = await ramp({ freshness: { waitMs: 2_000 } })
    newStore.latencyMs = 30
    runtime.recordWrite('old', { key: 1, op: 'upsert' })
    expect(await runtime.awaitReadSide([1], { routingKey: 'u' })).toBe('new')
    expect(newStore.rows.get('1')).toEqual({ id: 1, name: 'a' }) // served from the new store, which has the write
    expect(cutover.metrics.counter('read.fresh_waited', { migration: 'things' })).toBe(1)
    expect(cutover.metrics.counter('read.fresh_fallback', { migration: 'things' })).toBe(0)
    await cutover.close()
  })

  it('the wait is bounded: past waitMs the read falls back to the old store', async () => {
    const { cutover, runtime, newStore } = await ramp({ freshness: { waitMs: 20 } })
    newStore.latencyMs = 500
    runtime.recordWrite('old', { key: 1, op: 'upsert' })
    const started = performance.now()
    expect(await runtime.awaitReadSide([1], { routingKey: 'u' })).toBe('old')
    expect(performance.now() - started).toBeLessThan(400)
    expect(cutover.metrics.counter('read.fresh_fallback', { migration: 'things' })).toBe(1)
    await cutover.close()
  })

  it('only ramp with the old store authoritative falls back: in cutover the new store is the one written', async () => {
    const { cutover, runtime } = await ramp()
    await cutover.setPhase('things', 'cutover', { actor: 't' })
    runtime.recordWrite('new', { key: 1, op: 'upsert' })
    expect(runtime.readSideFor([1], { routingKey: 'u' })).toBe('new')
    await cutover.close()
  })
})
