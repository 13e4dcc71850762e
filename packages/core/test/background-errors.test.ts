import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { copy, createCutover, type DeadLetter, defineMigration, fieldMapper, type KeyValue, type Logger, type Row } from '../src/index.js'
import { createTestDatabase } from '../../../test/setup/services.js'
import { MemoryStore } from './memory-store.js'

const mapper = fieldMapper({
  old: z.object({ id: z.number(), name: z.string() }),
  new: z.object({ id: z.number(), name: z.string() }),
  fields: [copy('id'), copy('name')],
})

/** A store whose reads throw synchronously, before returning any promise. */
class ThrowingStore extends MemoryStore {
  override get(_keys: readonly KeyValue[]): Promise<ReadonlyMap<string, Row>> {
    throw new TypeError('Cannot read properties of undefined (reading "collection")')
  }
}

/** A store whose reads resolve to something that is not a Map. */
class GarbageStore extends MemoryStore {
  override get(_keys: readonly KeyValue[]): Promise<ReadonlyMap<string, Row>> {
    return Promise.resolve(42 as unknown as ReadonlyMap<string, Row>)
  }
}

/** A logger that throws, as a misconfigured transport might. */
const throwingLogger: Logger = {
  debug() {},
  info() {},
  warn() {
    throw new Error('log transport closed')
  },
  error() {
    throw new Error('log transport closed')
  },
}

const throwingSink = {
  write(_entries: readonly DeadLetter[]): Promise<void> {
    throw new Error('dead-letter sink broken')
  },
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

describe('background work never throws into the application', () => {
  const escaped: unknown[] = []
  const onEscape = (error: unknown) => void escaped.push(error)
  beforeEach(() => {
    escaped.length = 0
    process.on('uncaughtException', onEscape)
    process.on('unhandledRejection', onEscape)
  })
  afterEach(() => {
    process.off('uncaughtException', onEscape)
    process.off('unhandledRejection', onEscape)
  })

  it('stores that throw synchronously or return garbage, a broken dead-letter sink and a throwing logger: all caught and counted', async () => {
    const retry = { attempts: 2, baseDelayMs: 1, maxDelayMs: 2 }
    const failingSource = defineMigration({ name: 'a', old: new ThrowingStore('old', 'id'), new: new MemoryStore('new', 'id'), mapper, mirror: { retry, lingerMs: 0 } })
    const garbageTarget = defineMigration({
      name: 'b',
      old: new MemoryStore('old', 'id', [{ id: 1, name: 'x' }]),
      new: new GarbageStore('new', 'id'),
      mapper,
      mirror: { retry, lingerMs: 0, recheckDelayMs: 5 },
    })
    const cutover = await createCutover({ migrations: [failingSource, garbageTarget], deadLetters: throwingSink, env: { CUTOVER_PHASE: 'shadow' }, logger: throwingLogger })
    const a = cutover.migration('a')
    const b = cutover.migration('b')
    a.recordWrite('old', { key: 1, op: 'upsert' })
    b.recordWrite('old', { key: 1, op: 'upsert' })
    // Keys a plugin could hand over from unusual documents (`_id: null`, a deleted `_id`).
    expect(() => a.recordWrite('old', { key: null as unknown as KeyValue, op: 'upsert' })).not.toThrow()
    expect(() => b.readSideFor([undefined as unknown as KeyValue])).not.toThrow()
    expect(() => b.compareRead([{ name: 'no key' }], [{ id: null, name: 'no key' }])).not.toThrow()
    await pause(100)
    const report = await cutover.close({ timeoutMs: 200 })
    await pause(20)

    expect(escaped).toEqual([])
    expect(cutover.metrics.counter('mirror.dead_lettered', { migration: 'a', direction: 'old-to-new', reason: 'STORE_FAILED' })).toBe(1)
    expect(cutover.metrics.counter('mirror.dead_letter_write_failed', { migration: 'a', direction: 'old-to-new' })).toBeGreaterThan(0)
    expect(cutover.metrics.counter('mirror.invalid_key', { migration: 'a', direction: 'old-to-new' })).toBe(1)
    expect(cutover.metrics.counter('mirror.recheck_failed', { migration: 'b', direction: 'old-to-new' })).toBeGreaterThan(0)
    expect(cutover.metrics.counter('compare.unkeyed', { migration: 'b' })).toBe(2)
    // The dead letters the broken sink refused are reported by the bounded close, not dropped.
    expect(report.queues.find((q) => q.migration === 'a' && q.direction === 'old-to-new')?.unflushedDeadLetters.map((e) => e.key).sort()).toEqual(['1', 'null'])
  })

  it('a control database that goes away: polls, guard writes and dead letters fail, are counted, and nothing escapes', async () => {
    const database = await createTestDatabase('cutover_control_gone')
    const newStore = new MemoryStore('new', 'id')
    newStore.failing = new Error('connect ECONNREFUSED')
    const migration = defineMigration({
      name: 'users',
      old: new MemoryStore('old', 'id', [{ id: 1, name: 'x' }]),
      new: newStore,
      mapper,
      guards: { maxErrorRate: 0.1, minSamples: 5 },
      mirror: { retry: { attempts: 1, baseDelayMs: 1, maxDelayMs: 2 }, lingerMs: 0, recheckDelayMs: false },
    })
    // The poll path (`fleet: false`); the fleet member's own loss of the control database is bounded in `close` and covered by the fleet tests.
    const cutover = await createCutover({ migrations: [migration], control: database.db, env: { CUTOVER_PHASE: 'ramp', CUTOVER_READ_PERCENT: '100' }, pollIntervalMs: 10, fleet: false, logger: throwingLogger })
    await database.drop()
    const runtime = cutover.migration('users')
    // The new store fails every read: the guard rolls back locally and tries to tell the fleet.
    for (let i = 0; i < 10; i++) runtime.recordRead('new', false, 1)
    expect(runtime.phase).toBe('rollback')
    runtime.recordWrite('old', { key: 1, op: 'upsert' })
    await pause(300)
    await cutover.close({ timeoutMs: 100 })
    await pause(20)

    expect(escaped).toEqual([])
    expect(cutover.metrics.counter('control.refresh_failed')).toBeGreaterThan(0)
    expect(cutover.metrics.counter('guard.record_failed', { migration: 'users' })).toBe(1)
    expect(cutover.metrics.counter('mirror.dead_letter_write_failed', { migration: 'users', direction: 'old-to-new' })).toBeGreaterThan(0)
  })
})
