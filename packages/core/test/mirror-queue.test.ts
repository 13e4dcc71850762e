import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import { copy, type DeadLetter, type DeadLetterSink, defineMapper, fieldMapper, type KeyValue, Metrics, MirrorQueue, type MirrorQueueOptions, type Row, StoreError, type WriteMode } from '../src/index.js'
import { MemoryStore } from './memory-store.js'

class ArraySink implements DeadLetterSink {
  readonly entries: DeadLetter[] = []
  failing = false
  async write(entries: readonly DeadLetter[]): Promise<void> {
    if (this.failing) throw new Error('dead-letter table unreachable')
    this.entries.push(...entries)
  }
}

const mapper = fieldMapper({
  old: z.object({ id: z.number(), name: z.string(), v: z.number().optional() }),
  new: z.object({ id: z.number(), name: z.string(), v: z.number().optional() }),
  fields: [copy('id'), copy('name'), copy('v')],
})

function setup(overrides: Partial<MirrorQueueOptions> = {}, rows: Row[] = []) {
  const source = new MemoryStore('old', 'id', rows)
  const target = new MemoryStore('new', 'id')
  const sink = new ArraySink()
  const metrics = new Metrics()
  const queue = new MirrorQueue({
    migration: 'things',
    direction: 'old-to-new',
    source,
    target,
    translate: (record, key) => mapper.forward(record, { key, migration: 'things' }),
    deadLetters: sink,
    metrics,
    retry: { attempts: 3, baseDelayMs: 1, maxDelayMs: 5 },
    recheckDelayMs: false,
    lingerMs: 0,
    ...overrides,
  })
  return { source, target, sink, metrics, queue }
}

/** A store wrapper that records every write and can hold individual calls back. */
class RecordingStore extends MemoryStore {
  readonly writes: Array<{ op: 'upsert' | 'delete'; keys: string[]; values: unknown[] }> = []
  upsertDelays: number[] = []
  active = 0
  maxActive = 0
  override async upsert(records: readonly Row[], mode: WriteMode) {
    this.active++
    this.maxActive = Math.max(this.maxActive, this.active)
    const delay = this.upsertDelays.shift() ?? 0
    if (delay > 0) await new Promise((resolve) => setTimeout(resolve, delay))
    try {
      this.writes.push({ op: 'upsert', keys: records.map((r) => String(r.id)), values: records.map((r) => r.name) })
      return await super.upsert(records, mode)
    } finally {
      this.active--
    }
  }
  override async delete(keys: readonly KeyValue[]) {
    this.writes.push({ op: 'delete', keys: keys.map(String), values: [] })
    return super.delete(keys)
  }
}

describe('MirrorQueue', () => {
  it('writes the current source state of each key, and deletes keys absent from the source', async () => {
    const { source, target, queue, metrics } = setup({}, [{ id: 1, name: 'a' }, { id: 2, name: 'b' }])
    target.rows.set('3', { id: 3, name: 'stale' })
    queue.enqueue({ key: 1, op: 'upsert' })
    queue.enqueue({ key: 2, op: 'upsert', postImage: { id: 2, name: 'ignored without a version guard' } })
    queue.enqueue({ key: 3, op: 'delete' })
    await queue.drain()
    expect([...target.rows.values()]).toEqual([{ id: 1, name: 'a' }, { id: 2, name: 'b' }])
    expect(metrics.counter('mirror.applied', { migration: 'things', direction: 'old-to-new' })).toBe(3)
    expect(source.rows.size).toBe(2)
  })

  it('applies a key written while it is in flight after the first apply, never before', async () => {
    const target = new RecordingStore('new', 'id')
    const { source, queue } = setup({ target }, [{ id: 1, name: 'v1' }])
    target.upsertDelays = [30]
    queue.enqueue({ key: 1, op: 'upsert' })
    await new Promise((resolve) => setTimeout(resolve, 5)) // v1 is being written
    source.rows.set('1', { id: 1, name: 'v2' })
    queue.enqueue({ key: 1, op: 'upsert' })
    source.rows.set('1', { id: 1, name: 'v3' })
    queue.enqueue({ key: 1, op: 'upsert' })
    await queue.drain()
    expect(target.writes.map((w) => w.values[0])).toEqual(['v1', 'v3'])
    expect(target.rows.get('1')).toEqual({ id: 1, name: 'v3' })
  })

  it('coalesces a hot key into one pending slot', async () => {
    const { source, queue, metrics, target } = setup({}, [{ id: 1, name: 'x' }])
    for (let i = 0; i < 1_000; i++) {
      source.rows.set('1', { id: 1, name: `x${i}` })
      queue.enqueue({ key: 1, op: 'upsert' })
    }
    expect(queue.depth).toBeLessThanOrEqual(2)
    await queue.drain()
    expect(target.rows.get('1')).toEqual({ id: 1, name: 'x999' })
    expect(metrics.counter('mirror.coalesced', { migration: 'things', direction: 'old-to-new' })).toBeGreaterThan(990)
  })

  it('applies different keys concurrently, in batches', async () => {
    const target = new RecordingStore('new', 'id')
    const rows = Array.from({ length: 400 }, (_, i) => ({ id: i, name: `n${i}` }))
    const { queue } = setup({ target, concurrency: 4, batchSize: 10 }, rows)
    target.upsertDelays = new Array(40).fill(5)
    for (const row of rows) queue.enqueue({ key: row.id, op: 'upsert' })
    await queue.drain()
    expect(target.rows.size).toBe(400)
    expect(target.maxActive).toBe(4)
    expect(target.writes.every((w) => w.keys.length <= 10)).toBe(true)
  })

  it('is bounded: beyond capacity keys are dead-lettered for replay and the caller never waits', async () => {
    const rows = Array.from({ length: 50 }, (_, i) => ({ id: i, name: `n${i}` }))
    const { queue, sink, target, metrics } = setup({ capacity: 10, concurrency: 1, batchSize: 5 }, rows)
    target.latencyMs = 5
    const accepted = rows.map((row) => queue.enqueue({ key: row.id, op: 'upsert' }))
    expect(accepted.every(Boolean)).toBe(true)
    await queue.drain()
    const overflowed = sink.entries.filter((e) => e.reasonCode === 'QUEUE_FULL').map((e) => Number(e.key))
    expect(overflowed.length).toBeGreaterThan(0)
    expect(metrics.counter('mirror.overflow', { migration: 'things', direction: 'old-to-new' })).toBe(overflowed.length)
    // Nothing is lost: every key is either in the target or in the dead letters.
    for (const row of rows) expect(target.rows.has(String(row.id)) || overflowed.includes(row.id)).toBe(true)
  })

  it('with the reject policy tells the caller the key was not taken', async () => {
    const rows = Array.from({ length: 30 }, (_, i) => ({ id: i, name: `n${i}` }))
    const { queue, sink } = setup({ capacity: 5, concurrency: 1, batchSize: 5, overflow: 'reject' }, rows)
    const accepted = rows.map((row) => queue.enqueue({ key: row.id, op: 'upsert' }))
    expect(accepted.filter((a) => !a).length).toBeGreaterThan(0)
    await queue.drain()
    expect(sink.entries).toEqual([])
  })

  it('retries a failing target with backoff and succeeds when it recovers', async () => {
    const { queue, target, metrics } = setup({}, [{ id: 1, name: 'a' }])
    let failures = 2
    const upsert = target.upsert.bind(target)
    target.upsert = async (records, mode) => {
      if (failures-- > 0) throw new StoreError('new', 'upsert', 'connection refused')
      return upsert(records, mode)
    }
    const [outcome] = await queue.apply([{ key: 1, op: 'upsert' }])
    expect(outcome).toEqual({ key: '1', status: 'applied' })
    expect(target.rows.get('1')).toEqual({ id: 1, name: 'a' })
    expect(metrics.counter('mirror.retried', { migration: 'things', direction: 'old-to-new' })).toBe(2)
  })

  it('dead-letters every key of a batch that still fails, with the reason', async () => {
    const rows = Array.from({ length: 5 }, (_, i) => ({ id: i, name: `n${i}` }))
    const { queue, target, sink } = setup({}, rows)
    target.failing = new StoreError('new', 'upsert', 'connection refused')
    const outcomes = await queue.apply(rows.map((row) => ({ key: row.id, op: 'upsert' as const })))
    expect(outcomes.every((o) => o.status === 'dead-lettered')).toBe(true)
    expect(sink.entries.map((e) => e.key).sort()).toEqual(['0', '1', '2', '3', '4'])
    expect(sink.entries[0]).toMatchObject({ migration: 'things', direction: 'old-to-new', op: 'upsert', reasonCode: 'STORE_FAILED', attempts: 3 })
    expect(sink.entries[0]!.reason).toContain('connection refused')
  })

  it('dead-letters a record the mapper rejects at once, with key, fields and payload, and applies the rest', async () => {
    const { queue, target, sink, metrics } = setup({}, [{ id: 1, name: 'ok' }, { id: 2, name: 42 as unknown as string }])
    queue.enqueue({ key: 1, op: 'upsert' })
    queue.enqueue({ key: 2, op: 'upsert' })
    await queue.drain()
    expect(target.rows.get('1')).toEqual({ id: 1, name: 'ok' })
    expect(target.rows.has('2')).toBe(false)
    expect(sink.entries).toHaveLength(1)
    expect(sink.entries[0]).toMatchObject({ key: '2', reasonCode: 'MAPPER_REJECTED', fields: ['name'], payload: { id: 2, name: 42 }, attempts: 1 })
    expect(metrics.counter('mirror.retried', { migration: 'things', direction: 'old-to-new' })).toBe(0)
  })

  it('holds dead letters in memory while their table is unreachable and flushes them on drain', async () => {
    const { queue, target, sink } = setup({}, [{ id: 1, name: 'a' }])
    target.failing = new Error('down')
    sink.failing = true
    queue.enqueue({ key: 1, op: 'upsert' })
    setTimeout(() => (sink.failing = false), 30)
    await queue.drain()
    expect(sink.entries.map((e) => e.key)).toEqual(['1'])
  })

  it('with a version field trusts post-images and never overwrites a newer version', async () => {
    const { queue, target } = setup({ versionField: 'v' }, [])
    target.rows.set('1', { id: 1, name: 'newer', v: 5 })
    queue.enqueue({ key: 1, op: 'upsert', postImage: { id: 1, name: 'older', v: 4 } })
    queue.enqueue({ key: 2, op: 'upsert', postImage: { id: 2, name: 'fresh', v: 1 } })
    await queue.drain()
    expect(target.rows.get('1')).toEqual({ id: 1, name: 'newer', v: 5 })
    expect(target.rows.get('2')).toEqual({ id: 2, name: 'fresh', v: 1 })
  })

  it('applies an exact post-image without reading the source back, even without a version field', async () => {
    const { queue, target, source } = setup({}, [{ id: 1, name: 'as inserted' }])
    queue.enqueue({ key: 1, op: 'upsert', postImage: { id: 1, name: 'as inserted' }, postImageExact: true })
    await queue.drain()
    expect(target.rows.get('1')).toEqual({ id: 1, name: 'as inserted' })
    expect(source.calls).toBe(0)
  })

  it('repairs an exact post-image that another process overtook, through the re-check', async () => {
    // The image is what this process inserted; by the time it is applied another process has
    // changed the document (and mirrored it first): the image lands last and is stale.
    const { queue, target, source } = setup({ recheckDelayMs: 5 }, [{ id: 1, name: 'changed by another process' }])
    queue.enqueue({ key: 1, op: 'upsert', postImage: { id: 1, name: 'as inserted' }, postImageExact: true })
    await queue.drain()
    expect(target.rows.get('1')).toEqual({ id: 1, name: 'changed by another process' })
    expect(source.calls).toBeGreaterThan(0)
  })

  it('reads back a key whose exact post-image arrives while the key is already queued or in flight', async () => {
    // Two changes of one key may reach the queue in another order than the source applied them,
    // so only a key's single change is trusted as an image.
    const pending = setup({ lingerMs: 20 }, [{ id: 1, name: 'current' }])
    pending.queue.enqueue({ key: 1, op: 'upsert' })
    pending.queue.enqueue({ key: 1, op: 'upsert', postImage: { id: 1, name: 'stale image' }, postImageExact: true })
    await pending.queue.drain()
    expect(pending.target.rows.get('1')).toEqual({ id: 1, name: 'current' })

    const target = new RecordingStore('new', 'id')
    const inFlight = setup({ target }, [{ id: 1, name: 'current' }])
    target.upsertDelays = [20]
    inFlight.queue.enqueue({ key: 1, op: 'upsert' })
    await new Promise((resolve) => setTimeout(resolve, 5))
    inFlight.queue.enqueue({ key: 1, op: 'upsert', postImage: { id: 1, name: 'stale image' }, postImageExact: true })
    await inFlight.queue.drain()
    expect(target.rows.get('1')).toEqual({ id: 1, name: 'current' })
  })

  it('two instances applying one key concurrently converge through the re-check (no version field)', async () => {
    const run = async (recheckDelayMs: number | false) => {
      const source = new MemoryStore('old', 'id', [{ id: 1, name: 'v1' }])
      const target = new RecordingStore('new', 'id')
      const sink = new ArraySink()
      const make = () =>
        new MirrorQueue({
          migration: 'things',
          direction: 'old-to-new',
          source,
          target,
          translate: (record) => mapper.forward(record),
          deadLetters: sink,
          recheckDelayMs,
          lingerMs: 0, // A reads v1 at once, before the source changes
        })
      const a = make()
      const b = make()
      target.upsertDelays = [60, 0] // instance A's write of v1 is slow and lands last
      a.enqueue({ key: 1, op: 'upsert' })
      await new Promise((resolve) => setTimeout(resolve, 10))
      source.rows.set('1', { id: 1, name: 'v2' })
      b.enqueue({ key: 1, op: 'upsert' })
      await Promise.all([a.drain(), b.drain()])
      await new Promise((resolve) => setTimeout(resolve, 20))
      await Promise.all([a.drain(), b.drain()])
      return { final: target.rows.get('1'), writes: target.writes.map((w) => w.values[0]) }
    }
    const without = await run(false)
    expect(without.writes).toEqual(['v2', 'v1']) // the race is real: the stale write lands last
    expect(without.final).toEqual({ id: 1, name: 'v1' })
    const withRecheck = await run(20)
    expect(withRecheck.final).toEqual({ id: 1, name: 'v2' })
  })

  it('drain resolves only when everything has been applied', async () => {
    const rows = Array.from({ length: 100 }, (_, i) => ({ id: i, name: `n${i}` }))
    const { queue, target } = setup({ batchSize: 7, concurrency: 2 }, rows)
    target.latencyMs = 2
    for (const row of rows) queue.enqueue({ key: row.id, op: 'upsert' })
    await queue.drain()
    expect(target.rows.size).toBe(100)
    expect(queue.depth).toBe(0)
  })

  it('lets a partial batch linger for more keys, so single writes share reads and writes', async () => {
    const target = new RecordingStore('new', 'id')
    const rows = Array.from({ length: 50 }, (_, i) => ({ id: i, name: `n${i}` }))
    const { queue, source } = setup({ target, lingerMs: 20, batchSize: 100 }, rows)
    for (const row of rows) {
      queue.enqueue({ key: row.id, op: 'upsert' })
      await Promise.resolve()
    }
    await queue.drain()
    expect(target.rows.size).toBe(50)
    expect(target.writes).toHaveLength(1)
    expect(source.calls).toBe(1)
    // Without lingering, the first key starts a batch of its own.
    const eager = setup({ target: new RecordingStore('new', 'id'), lingerMs: 0 }, rows)
    for (const row of rows) eager.queue.enqueue({ key: row.id, op: 'upsert' })
    await eager.queue.drain()
    expect(eager.source.calls).toBeGreaterThan(1)
  })

  it('measures the lag from queueing to applied, per key', async () => {
    const rows = Array.from({ length: 20 }, (_, i) => ({ id: i, name: `n${i}` }))
    const { queue, target, metrics } = setup({ batchSize: 5, concurrency: 1 }, rows)
    target.latencyMs = 10
    for (const row of rows) queue.enqueue({ key: row.id, op: 'upsert' })
    await queue.drain()
    const lag = metrics.histogram('mirror.lag_ms', { migration: 'things', direction: 'old-to-new' })
    expect(lag?.count).toBe(20)
    // The last key waited for at least four earlier batches, each with a 10 ms write.
    expect(lag!.max).toBeGreaterThanOrEqual(40)
    expect(lag!.p50).toBeLessThanOrEqual(lag!.max)
  })

  it('maps keys between stores when told to', async () => {
    const source = new MemoryStore('old', 'user_id', [{ user_id: 'u1', name: 'a' }])
    const target = new MemoryStore('new', 'id')
    const renaming = defineMapper({
      old: z.object({ user_id: z.string(), name: z.string() }),
      new: z.object({ id: z.string(), name: z.string() }),
      forward: (o) => ({ id: o.user_id, name: o.name }),
      backward: (n) => ({ user_id: n.id, name: n.name }),
    })
    const queue = new MirrorQueue({ migration: 'm', direction: 'old-to-new', source, target, translate: (r) => renaming.forward(r), deadLetters: new ArraySink(), recheckDelayMs: false })
    queue.enqueue({ key: 'u1', op: 'upsert' })
    await queue.drain()
    expect(target.rows.get('u1')).toEqual({ id: 'u1', name: 'a' })
    source.rows.delete('u1')
    queue.enqueue({ key: 'u1', op: 'delete' })
    await queue.drain()
    expect(target.rows.size).toBe(0)
  })
})
