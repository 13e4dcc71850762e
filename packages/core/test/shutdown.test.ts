import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import { copy, createCutover, type DeadLetter, defineMigration, fieldMapper, Metrics, MirrorQueue, type Row, silentLogger, type WriteMode, type WriteResult } from '../src/index.js'
import { MemoryStore } from './memory-store.js'

const mapper = fieldMapper({
  old: z.object({ id: z.number(), name: z.string() }),
  new: z.object({ id: z.number(), name: z.string() }),
  fields: [copy('id'), copy('name')],
})

/** A target whose writes never return, as a store behind a dead connection without timeouts. */
class HangingStore extends MemoryStore {
  override upsert(_records: readonly Row[], _mode: WriteMode): Promise<WriteResult> {
    return new Promise(() => {})
  }
}

const unreachableSink = { write: async (_entries: readonly DeadLetter[]): Promise<void> => Promise.reject(new Error('dead-letter table unreachable')) }

describe('shutdown', () => {
  it('drain finishes while a timer-started re-check is still reading, without pinning the event loop', async () => {
    // In a child process: a drain that spins synchronously would block this test's own timers too.
    const script = fileURLToPath(new URL('./fixtures/drain-during-recheck.ts', import.meta.url))
    const root = fileURLToPath(new URL('../../..', import.meta.url))
    const result = await new Promise<{ code: number | null; stdout: string }>((resolve) => {
      execFile(process.execPath, ['--import', 'tsx', script], { cwd: root, timeout: 20_000, killSignal: 'SIGKILL' }, (error, stdout) =>
        resolve({ code: error ? ((error as { code?: number }).code ?? null) : 0, stdout }),
      )
    })
    expect(result.stdout).toContain('drained; target rows: 1')
    expect(result.code).toBe(0)
  }, 30_000)

  it('close({ timeoutMs }) returns by its deadline and reports the keys not applied and the dead letters not flushed', async () => {
    const metrics = new Metrics()
    const queue = new MirrorQueue({
      migration: 'things',
      direction: 'old-to-new',
      source: new MemoryStore('old', 'id', [{ id: 1, name: 'a' }, { id: 2, name: 42 as unknown as string }]),
      target: new HangingStore('new', 'id'),
      translate: (record, key) => mapper.forward(record, { key, migration: 'things' }),
      deadLetters: unreachableSink,
      retry: { baseDelayMs: 5, maxDelayMs: 5 },
      recheckDelayMs: false,
      lingerMs: 0,
      metrics,
      logger: silentLogger,
    })
    queue.enqueue({ key: 1, op: 'upsert' })
    queue.enqueue({ key: 2, op: 'upsert' })
    await new Promise((resolve) => setTimeout(resolve, 20))
    const report = await queue.close({ timeoutMs: 100 })
    expect(report).toMatchObject({ migration: 'things', direction: 'old-to-new', complete: false })
    expect(report.unapplied).toContain('1')
    expect(report.unflushedDeadLetters).toEqual([{ key: '2', reasonCode: 'MAPPER_REJECTED' }])
    expect(metrics.counter('mirror.shutdown_incomplete', { migration: 'things', direction: 'old-to-new' })).toBe(1)
    // A drain after an incomplete close returns too: nothing is left that could still finish it.
    await queue.drain()
    // Closed: later writes are refused, not queued behind the abandoned ones.
    expect(queue.enqueue({ key: 3, op: 'upsert' })).toBe(false)
  })

  it('close reports complete when everything was applied in time', async () => {
    const target = new MemoryStore('new', 'id')
    const queue = new MirrorQueue({
      migration: 'things',
      direction: 'old-to-new',
      source: new MemoryStore('old', 'id', [{ id: 1, name: 'a' }]),
      target,
      translate: (record, key) => mapper.forward(record, { key, migration: 'things' }),
      deadLetters: unreachableSink,
      recheckDelayMs: 10,
      lingerMs: 0,
    })
    queue.enqueue({ key: 1, op: 'upsert' })
    expect(await queue.close({ timeoutMs: 5_000 })).toEqual({
      migration: 'things',
      direction: 'old-to-new',
      complete: true,
      unapplied: [],
      notRechecked: [],
      unflushedDeadLetters: [],
    })
    expect(target.rows.get('1')).toEqual({ id: 1, name: 'a' })
  })

  it('Cutover.close({ timeoutMs }) is bounded and reports what each migration left undone', async () => {
    const oldStore = new MemoryStore('old', 'id', [{ id: 1, name: 'a' }])
    const migration = defineMigration({ name: 'things', old: oldStore, new: new HangingStore('new', 'id'), mapper, mirror: { recheckDelayMs: false, lingerMs: 0 } })
    const cutover = await createCutover({ migrations: [migration], deadLetters: unreachableSink, env: { CUTOVER_PHASE: 'shadow' }, logger: silentLogger })
    cutover.migration('things').recordWrite('old', { key: 1, op: 'upsert' })
    const report = await cutover.close({ timeoutMs: 100 })
    expect(report.complete).toBe(false)
    expect(report.queues.find((q) => q.direction === 'old-to-new')?.unapplied).toEqual(['1'])
    expect(report.queues.find((q) => q.direction === 'new-to-old')).toMatchObject({ complete: true, unapplied: [] })
  })
})
