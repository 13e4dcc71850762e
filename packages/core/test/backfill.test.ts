import { sql } from 'kysely'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { z } from 'zod'
import {
  AuditLog,
  backfill,
  BackfillConfigChangedError,
  type BackfillProgress,
  CheckpointTable,
  copy,
  defineMigration,
  ensureSchema,
  fieldMapper,
  JobControl,
  type KeyValue,
  QuarantineTable,
  type Row,
  split,
  StoreError,
  type WriteMode,
  type WriteResult,
} from '../src/index.js'
import { createTestDatabase, type TestDatabase } from '../../../test/setup/services.js'
import { MemoryStore } from './memory-store.js'

const mapper = fieldMapper({
  old: z.object({ id: z.number().int(), full_name: z.string(), email: z.string() }),
  new: z.object({ id: z.number().int(), first_name: z.string(), last_name: z.string().nullable(), email: z.string() }),
  fields: [copy('id'), split('full_name', ['first_name', 'last_name']), copy('email')],
})

function people(n: number, from = 1): Row[] {
  return Array.from({ length: n }, (_, i) => ({ id: from + i, full_name: `Ada${from + i} Lovelace`, email: `ada${from + i}@example.com` }))
}

let control: TestDatabase
let migrationCounter = 0

beforeAll(async () => {
  control = await createTestDatabase('cutover_backfill')
  await ensureSchema(control.db)
})
afterAll(async () => {
  await control?.drop()
})

function setup(rows: Row[], newStore = new MemoryStore('new')) {
  const old = new MemoryStore('old', 'id', rows)
  const migration = defineMigration({ name: `people${++migrationCounter}`, old, new: newStore, mapper })
  return { old, new: newStore, migration }
}

describe('backfill', () => {
  beforeEach(() => undefined)

  it('copies every record in batches that start at 1,000 and grow, verifies them, and checkpoints the end', async () => {
    const { migration, new: target } = setup(people(5_000))
    const sizes: number[] = []
    const summary = await backfill({ migration, control: control.db, batch: { targetMs: 10_000 }, onProgress: (p) => sizes.push(p.batchSize) })
    expect(summary.status).toBe('done')
    expect(summary.counts).toEqual({ read: 5_000, written: 5_000, skipped: 0, quarantined: 0, mismatched: 0 })
    expect(target.rows.size).toBe(5_000)
    expect(target.rows.get('42')).toEqual({ id: 42, first_name: 'Ada42', last_name: 'Lovelace', email: 'ada42@example.com' })
    expect(sizes[0]).toBe(1_500) // the first batch was 1,000 and fast, so the next is larger
    expect(sizes.at(-1)).toBeGreaterThan(sizes[0] as number)
    const checkpoint = await new CheckpointTable(control.db).load(migration.name, 'all')
    expect(checkpoint).toMatchObject({ status: 'done', lastKey: 5_000 })

    const again = await backfill({ migration, control: control.db })
    expect(again.status).toBe('already-done')
    const restarted = await backfill({ migration, control: control.db, restart: true })
    expect(restarted.counts).toMatchObject({ read: 5_000, written: 0, skipped: 5_000, mismatched: 0 })
  })

  it('marks the checkpoint done when the last batch is exactly full', async () => {
    const { migration } = setup(people(1_000))
    const summary = await backfill({ migration, control: control.db, batch: { initial: 500, min: 500, max: 500 } })
    expect(summary.batches).toBe(2)
    expect(await new CheckpointTable(control.db).load(migration.name, 'all')).toMatchObject({ status: 'done', lastKey: 1_000 })
    expect((await backfill({ migration, control: control.db })).status).toBe('already-done')
  })

  it('never overwrites a record the mirror wrote, and reports the key if it still differs from the source', async () => {
    const target = new MemoryStore('new', 'id', [{ id: 7, first_name: 'Mirrored', last_name: null, email: 'new@example.com' }])
    const { migration } = setup(people(20), target)
    const summary = await backfill({ migration, control: control.db, verify: { retries: 1, delayMs: 1 } })
    expect(target.rows.get('7')).toEqual({ id: 7, first_name: 'Mirrored', last_name: null, email: 'new@example.com' })
    expect(summary.counts).toMatchObject({ written: 19, skipped: 1, mismatched: 1 })
    expect(summary.mismatches).toEqual([{ key: '7', kind: 'DIFFERENT', fields: ['email', 'first_name', 'last_name'] }])
  })

  it('writes with the version guard when the migration declares a version field', async () => {
    const versioned = fieldMapper({
      old: z.object({ id: z.number(), v: z.number(), name: z.string() }),
      new: z.object({ id: z.number(), v: z.number(), name: z.string() }),
      fields: [copy('id'), copy('v'), copy('name')],
    })
    const old = new MemoryStore('old', 'id', [
      { id: 1, v: 2, name: 'newer in old' },
      { id: 2, v: 1, name: 'older in old' },
    ])
    const target = new MemoryStore('new', 'id', [
      { id: 1, v: 1, name: 'stale' },
      { id: 2, v: 5, name: 'mirrored, newer' },
    ])
    const migration = defineMigration({ name: `versioned${++migrationCounter}`, old, new: target, mapper: versioned, version: { old: 'v', new: 'v' } })
    await backfill({ migration, control: control.db, verify: { retries: 0 } })
    expect(target.rows.get('1')).toMatchObject({ v: 2, name: 'newer in old' })
    expect(target.rows.get('2')).toMatchObject({ v: 5, name: 'mirrored, newer' })
  })

  it('resumes after the last checkpointed batch and refuses a changed configuration unless restarted', async () => {
    const { migration, new: target } = setup(people(3_000))
    const abort = new AbortController()
    const first = await backfill({
      migration,
      control: control.db,
      batch: { initial: 500, min: 500, max: 500 },
      signal: abort.signal,
      onProgress: (p) => p.counts.read >= 1_000 && abort.abort(),
    })
    expect(first.status).toBe('aborted')
    // The batch whose write was under way when the abort came (if the next one had begun: that
    // depends on timing) is finished and checkpointed too: nothing written is left without a
    // checkpoint, and nothing after it was begun.
    expect([1_000, 1_500]).toContain(first.counts.read)
    expect(target.rows.size).toBe(first.counts.read)

    await expect(backfill({ migration, control: control.db, configVersion: 'v2' })).rejects.toBeInstanceOf(BackfillConfigChangedError)

    const reads: number[] = []
    const second = await backfill({ migration, control: control.db, onProgress: (p: BackfillProgress) => reads.push(p.runRead) })
    expect(second.resumedAfter).toBe(String(first.counts.read))
    expect(second.counts.read).toBe(3_000)
    expect(reads.at(-1)).toBe(3_000 - first.counts.read) // nothing read twice
    expect(target.rows.size).toBe(3_000)

    const restarted = await backfill({ migration, control: control.db, configVersion: 'v2', restart: true })
    expect(restarted.counts).toMatchObject({ read: 3_000, written: 0, skipped: 3_000 })
  })

  it('quarantines records the mapper rejects or the new store refuses, with reasons, once, and goes on', async () => {
    const rows = people(50)
    rows[9] = { id: 10, full_name: null, email: 'x@example.com' }
    rows[19] = { id: 20, full_name: 'No Email' }
    const refusing = new RefusingStore('new', 'taken@example.com')
    rows[29] = { id: 30, full_name: 'Dup Licate', email: 'taken@example.com' }
    const { migration } = setup(rows, refusing)
    const summary = await backfill({ migration, control: control.db })
    expect(summary.counts).toMatchObject({ read: 50, written: 47, quarantined: 3 })
    expect(refusing.rows.size).toBe(47)
    const open = await new QuarantineTable(control.db).open(migration.name)
    expect(open.map((q) => [q.key, q.reasonCode, q.fields])).toEqual([
      ['10', 'MAPPER_REJECTED', ['full_name']],
      ['20', 'MAPPER_REJECTED', ['email']],
      ['30', 'STORE_REJECTED', []],
    ])
    expect(open[0]?.payload).toEqual({ id: 10, full_name: null, email: 'x@example.com' })
    expect(Object.values(summary.quarantinedByReason).reduce((a, b) => a + b, 0)).toBe(3)
    expect(Object.keys(summary.quarantinedByReason).some((r) => r.startsWith('STORE_REJECTED: unique constraint'))).toBe(true)

    await backfill({ migration, control: control.db, restart: true })
    expect(await new QuarantineTable(control.db).open(migration.name)).toHaveLength(3)
    const audit = await new AuditLog(control.db).entries(migration.name)
    expect(audit.filter((e) => e.action === 'quarantine')).toHaveLength(2)
    expect(audit.filter((e) => e.action === 'backfill').map((e) => e.details.event)).toEqual(['started', 'finished', 'started', 'finished'])
  })

  it('throws instead of quarantining everything when the new store is down', async () => {
    const target = new MemoryStore('new')
    target.failing = new StoreError('new', 'upsert', 'connection refused')
    const { migration } = setup(people(10), target)
    await expect(backfill({ migration, control: control.db })).rejects.toThrow(/connection refused/)
    expect(await new QuarantineTable(control.db).open(migration.name)).toHaveLength(0)
  })

  it('waits while paused from the control table, on the throttle query and for the rate limit, and says why', async () => {
    const { migration, new: target } = setup(people(400))
    const jobs = new JobControl(control.db)
    await jobs.pause(migration.name, 'test', 'maintenance window')
    let held = 2
    const running = backfill({
      migration,
      control: control.db,
      batch: { initial: 100, targetMs: 0 },
      throttle: { pollMs: 20, maxRowsPerSecond: 4_000, query: async () => (held-- > 0 ? 'replica lag 12s' : undefined) },
    })
    await new Promise((resolve) => setTimeout(resolve, 150))
    expect(target.rows.size).toBe(0)
    await jobs.resume(migration.name, 'test')
    const summary = await running
    expect(target.rows.size).toBe(400)
    expect(summary.throttledMs.paused).toBeGreaterThan(0)
    expect(summary.throttledMs.query).toBeGreaterThan(0)
    expect(summary.throttledMs['rate-limit']).toBeGreaterThan(0)
    await sql`delete from cutover.job_control where migration = ${migration.name}`.execute(control.db)
  })

  it('writes the next batch while the last is verified, but one at a time under a nice ratio', async () => {
    const overlapOf = async (throttle: { niceRatio?: number }) => {
      const slow = new OverlapStore('new')
      const { migration } = setup(people(500), slow)
      await backfill({ migration, control: control.db, batch: { initial: 50, min: 50, max: 50 }, throttle })
      expect(slow.rows.size).toBe(500)
      return slow.mostAtOnce
    }
    expect(await overlapOf({})).toBe(2)
    expect(await overlapOf({ niceRatio: 0.1 })).toBe(1)
  })

  it('stops a range at its upper key, or at a later range bound when that key was deleted', async () => {
    const { migration, old, new: target } = setup(people(100))
    await backfill({ migration, control: control.db, range: { id: 'r1', after: 10, until: 30, beyond: [60, 100] } })
    expect([...target.rows.keys()].map(Number).sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => 11 + i))
    await backfill({ migration, control: control.db, range: { id: 'r2', after: 30, until: 45, beyond: [60, 100] }, batch: { initial: 5 } })
    expect(target.rows.has('45')).toBe(true)
    expect(target.rows.has('46')).toBe(false)
    old.rows.delete('75')
    await backfill({ migration, control: control.db, range: { id: 'r3', after: 60, until: 75, beyond: [100] }, batch: { initial: 7 } })
    expect(target.rows.has('99')).toBe(true)
    expect(target.rows.has('100')).toBe(false)
    const ranges = await new CheckpointTable(control.db).list(migration.name)
    expect(ranges.map((r) => [r.rangeId, r.status])).toEqual([
      ['r1', 'done'],
      ['r2', 'done'],
      ['r3', 'done'],
    ])
  })
})

/** A new store whose writes and reads take a while, counting how many writes ran at once. */
class OverlapStore extends MemoryStore {
  mostAtOnce = 0
  #writing = 0

  override async upsert(records: readonly Row[], mode: WriteMode): Promise<WriteResult> {
    this.mostAtOnce = Math.max(this.mostAtOnce, ++this.#writing)
    try {
      await new Promise((resolve) => setTimeout(resolve, 5))
      return await super.upsert(records, mode)
    } finally {
      this.#writing--
    }
  }

  override async get(keys: readonly KeyValue[]): Promise<ReadonlyMap<string, Row>> {
    await new Promise((resolve) => setTimeout(resolve, 10))
    return super.get(keys)
  }
}

/** A new store with a unique email constraint, refusing like PostgreSQL does (SQLSTATE 23505). */
class RefusingStore extends MemoryStore {
  constructor(
    name: string,
    readonly taken: string,
  ) {
    super(name)
  }

  override async upsert(records: readonly Row[], mode: WriteMode): Promise<WriteResult> {
    if (records.some((r) => r.email === this.taken)) {
      const cause = Object.assign(new Error('duplicate key value violates unique constraint "people_email_key"'), { code: '23505', constraint: 'people_email_key' })
      throw new StoreError(this.name, 'upsert', cause.message, { cause })
    }
    return super.upsert(records, mode)
  }
}
