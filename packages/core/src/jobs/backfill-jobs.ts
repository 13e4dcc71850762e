/**
 * Distributed backfill: the old store's key space cut into ranges at real keys, any number of
 * worker processes (or machines) taking them from the plan in `cutover.backfill_ranges`.
 *
 * A range is leased, not queued (range-lease.ts): a worker holds a session advisory lock on its own
 * lease connection for the range it works, and records itself, its host and pid, that connection's
 * backend pid and a new lease token on the range's row. The lock is the liveness signal: a worker
 * killed or cut off loses it with its session, and an idle worker takes the range on its next look
 * (every `pollingIntervalSeconds`), resuming after its last checkpoint. The expiry is only the
 * fallback for a holder that is alive but makes no progress. Checkpoints are fenced by the token, so
 * a worker that lost its range cannot move it afterwards; writes are insert-if-absent, so the
 * batch it was writing meanwhile changes nothing.
 *
 * (Cutover used pg-boss jobs here before; a job whose worker died stayed active until its expiry,
 * counted from the job's start: a dead worker's range waited up to the whole expiry.)
 */
import { type Kysely, sql } from 'kysely'
import { backfill, type BackfillOptions, type BackfillSummary, type KeyRange } from './backfill.js'
import { LeaseLostError } from '../control/checkpoint.js'
import { type Logger, silentLogger } from '../observe/logger.js'
import type { Migration } from '../model/migration.js'
import { type KeyValue, type Row, storeRecordKey } from '../model/store.js'
import { loadKey, storeKey } from '../model/stored-key.js'
import { type HeldRange, RangeLeases, type WorkerIdentity, workerIdentity } from './backfill/range-lease.js'

export interface BackfillJobsOptions {
  /** The control database: the plan, its leases and checkpoints live there. */
  readonly control: Kysely<any>
  /**
   * A held range whose checkpoint has not moved for this long is taken from its holder (alive but
   * stuck; a dead holder's range is taken at once). Default 900 s.
   */
  readonly expireInSeconds?: number
  /** How often an idle worker looks for ranges, and a holder checks it still holds its own. Default 1 s. */
  readonly pollingIntervalSeconds?: number
  /** Names this worker in `cutover status`. Default `host:pid`. */
  readonly workerId?: string
  readonly logger?: Logger
}

/** A planned range: its position and bounds. */
export interface PlannedRange extends KeyRange {
  readonly position: number
}

/** Who holds a range now and how far it got (`cutover status`). */
export interface RangeHolding {
  readonly rangeId: string
  readonly position: number
  readonly status: 'pending' | 'running' | 'done'
  readonly holder: { readonly workerId: string; readonly host: string; readonly pid: number; readonly since: Date } | undefined
  readonly read: number
  readonly lastKey: string | undefined
  readonly updatedAt: Date | undefined
}

export class BackfillJobs {
  readonly #control: Kysely<any>
  readonly #options: BackfillJobsOptions
  readonly #logger: Logger
  readonly #worker: WorkerIdentity
  readonly #working = new Set<Promise<void>>()
  readonly #stopping = new AbortController()

  constructor(options: BackfillJobsOptions) {
    this.#control = options.control
    this.#options = options
    this.#logger = options.logger ?? silentLogger
    this.#worker = workerIdentity(options.workerId)
  }

  /** Kept for callers of the queue-based version: there is nothing to start. */
  async start(): Promise<void> {}

  /**
   * Stops taking ranges. `graceful` (default): the range in progress stops after its batch in
   * flight, checkpointed, within `timeoutMs`; otherwise at once (its lease connection is released,
   * so another worker resumes it from its checkpoint).
   */
  async stop(options: { graceful?: boolean; timeoutMs?: number } = {}): Promise<void> {
    this.#stopping.abort()
    const all = Promise.allSettled([...this.#working])
    if (options.graceful === false) return
    await Promise.race([all, new Promise((resolve) => setTimeout(resolve, options.timeoutMs ?? 30_000).unref())])
  }

  /**
   * Cuts the old store into ranges of about `rangeSize` records at real keys (one pass over the
   * store, a batch at a time) and stores the plan. An existing plan is kept unless `replan`: the
   * checkpoints belong to its ranges.
   */
  async plan(migration: Migration<any, any>, options: { rangeSize: number; replan?: boolean; scanBatch?: number }): Promise<PlannedRange[]> {
    const existing = await this.ranges(migration.name)
    if (existing.length > 0 && !options.replan) return existing
    const bounds: KeyValue[] = []
    const batch = Math.max(1, Math.min(options.scanBatch ?? 10_000, options.rangeSize))
    // A composite key is read from all its columns, as the rest of the backfill reads it.
    const keyOf = (row: Row | undefined) => storeRecordKey(migration.old, migration.key.old, row)
    let after: KeyValue | undefined
    let seen = 0
    for (;;) {
      const rows = await migration.old.scan({ ...(after === undefined ? {} : { after }), limit: batch })
      for (const row of rows) {
        seen++
        if (seen % options.rangeSize === 0) bounds.push(keyOf(row))
      }
      if (rows.length < batch) break
      after = keyOf(rows.at(-1))
    }
    const ranges: PlannedRange[] = []
    for (let i = 0; i <= bounds.length; i++) {
      const lower = i === 0 ? undefined : bounds[i - 1]
      const upper = bounds[i]
      ranges.push({ id: `r${String(i).padStart(5, '0')}`, position: i, ...(lower === undefined ? {} : { after: lower }), ...(upper === undefined ? {} : { until: upper }) })
    }
    await this.#control.transaction().execute(async (trx) => {
      await trx.deleteFrom('cutover.backfill_ranges').where('migration', '=', migration.name).execute()
      await trx.deleteFrom('cutover.backfill_checkpoints').where('migration', '=', migration.name).execute()
      for (let i = 0; i < ranges.length; i += 1_000) {
        await trx
          .insertInto('cutover.backfill_ranges')
          .values(
            ranges.slice(i, i + 1_000).map((r) => {
              const a = r.after === undefined ? undefined : storeKey(r.after)
              const u = r.until === undefined ? undefined : storeKey(r.until)
              return { migration: migration.name, range_id: r.id, position: r.position, after_key: a?.text ?? null, after_key_type: a?.type ?? null, until_key: u?.text ?? null, until_key_type: u?.type ?? null }
            }),
          )
          .execute()
      }
    })
    return this.ranges(migration.name)
  }

  /** The stored plan, each range knowing the next few bounds (in case its own was deleted). */
  async ranges(migration: string): Promise<PlannedRange[]> {
    const rows = await this.#control.selectFrom('cutover.backfill_ranges').selectAll().where('migration', '=', migration).orderBy('position').execute()
    const bounds = rows.map((row) => (row.until_key === null ? undefined : loadKey({ text: row.until_key, type: row.until_key_type })))
    return rows.map((row, i) => ({
      id: row.range_id,
      position: row.position,
      ...(row.after_key === null ? {} : { after: loadKey({ text: row.after_key, type: row.after_key_type }) }),
      ...(bounds[i] === undefined ? {} : { until: bounds[i] as KeyValue }),
      beyond: bounds.slice(i + 1, i + 4).filter((b): b is KeyValue => b !== undefined),
    }))
  }

  /** How many planned ranges are not done yet: what workers will take. (Planning is all the queueing.) */
  async enqueue(migration: string): Promise<number> {
    const row = await sql<{ open: string }>`
      select count(*) as open from cutover.backfill_ranges r left join cutover.backfill_checkpoints c using (migration, range_id)
       where r.migration = ${migration} and c.status is distinct from 'done'`.execute(this.#control)
    return Number(row.rows[0]?.open ?? 0)
  }

  /**
   * Works ranges of `migration` until `signal` aborts or `stop`: claims one, runs `backfill` on it
   * with its checkpoint and lease token, gives it back, repeats. Resolves once the loop runs.
   */
  async work(
    migration: Migration<any, any>,
    options: { readonly signal?: AbortSignal; readonly backfill?: Partial<Omit<BackfillOptions, 'migration' | 'control' | 'range'>>; readonly onRange?: (summary: BackfillSummary) => void } = {},
  ): Promise<void> {
    const signal = options.signal ? AbortSignal.any([options.signal, this.#stopping.signal]) : this.#stopping.signal
    const loop = this.#workLoop(migration, { ...options, signal })
    this.#working.add(loop)
    void loop.finally(() => this.#working.delete(loop))
  }

  /** Per range: its holder (worker, host, pid, since when) and its checkpoint's progress. */
  async holdings(migration: string): Promise<RangeHolding[]> {
    const rows = await this.#control
      .selectFrom('cutover.backfill_ranges as r')
      .leftJoin('cutover.backfill_checkpoints as c', (join) => join.onRef('c.migration', '=', 'r.migration').onRef('c.range_id', '=', 'r.range_id'))
      .select(['r.range_id', 'r.position', 'r.holder', 'r.holder_host', 'r.holder_pid', 'r.leased_at', 'c.status', 'c.counts', 'c.last_key', 'c.updated_at'])
      .where('r.migration', '=', migration)
      .orderBy('r.position')
      .execute()
    return rows.map((row) => ({
      rangeId: row.range_id,
      position: row.position,
      status: row.status ?? 'pending',
      holder: row.holder === null || row.status === 'done' ? undefined : { workerId: row.holder, host: row.holder_host, pid: row.holder_pid, since: row.leased_at },
      read: Number((typeof row.counts === 'string' ? JSON.parse(row.counts) : row.counts)?.read ?? 0),
      lastKey: row.last_key ?? undefined,
      updatedAt: row.updated_at ?? undefined,
    }))
  }

  /** Whether every planned range of `migration` has a finished checkpoint. */
  async finished(migration: string): Promise<boolean> {
    const row = await sql<{ planned: string; done: string }>`
      select (select count(*) from cutover.backfill_ranges where migration = ${migration}) as planned,
             (select count(*) from cutover.backfill_checkpoints c join cutover.backfill_ranges r using (migration, range_id)
               where c.migration = ${migration} and c.status = 'done') as done`.execute(this.#control)
    const counts = row.rows[0] as { planned: string; done: string }
    return Number(counts.planned) > 0 && counts.planned === counts.done
  }

  /** Claims and works ranges until aborted; a lost lease connection is replaced by a new one. */
  async #workLoop(migration: Migration<any, any>, options: Parameters<BackfillJobs['work']>[1] & { signal: AbortSignal }): Promise<void> {
    while (!options.signal.aborted) {
      try {
        await this.#control.connection().execute(async (session) => {
          const leases = new RangeLeases(session, migration.name, this.#worker, this.#options.expireInSeconds ?? 900)
          while (!options.signal.aborted) {
            const held = await leases.claim()
            if (!held) {
              await sleep(this.#pollMs(), options.signal)
              continue
            }
            const summary = await this.#workRange(migration, leases, held, options)
            if (summary) options.onRange?.(summary)
          }
        })
      } catch (error) {
        if (options.signal.aborted) return
        // The lease session failed (cut, or the database restarted): its locks are gone with it.
        this.#logger.warn('backfill worker lost its lease connection; reconnecting', { migration: migration.name, worker: this.#worker.id, error })
        await sleep(this.#pollMs(), options.signal)
      }
    }
  }

  /**
   * Runs one held range, watching the lease meanwhile: if the lease session fails or the token moves
   * on, the run is stopped (its next checkpoint would be refused anyway). `undefined`: lost.
   */
  async #workRange(migration: Migration<any, any>, leases: RangeLeases, held: HeldRange, options: Parameters<BackfillJobs['work']>[1] & { signal: AbortSignal }): Promise<BackfillSummary | undefined> {
    const range = (await this.ranges(migration.name)).find((r) => r.id === held.rangeId) as PlannedRange
    const lost = new AbortController()
    let sessionError: unknown
    const watch = (async () => {
      while (!lost.signal.aborted) {
        await sleep(this.#pollMs(), lost.signal)
        if (lost.signal.aborted) return
        const ok = await leases.stillHeld(held).catch((error: unknown) => ((sessionError = error), false))
        if (!ok) lost.abort()
      }
    })()
    try {
      const summary = await backfill({ ...options.backfill, migration, control: this.#control, range, leaseToken: held.token, signal: AbortSignal.any([options.signal, lost.signal]) })
      if (lost.signal.aborted) throw new LeaseLostError(migration.name, held.rangeId, held.token)
      return summary.status === 'aborted' ? undefined : summary
    } catch (error) {
      const leaseLost = error instanceof LeaseLostError || lost.signal.aborted
      lost.abort()
      if (sessionError !== undefined) throw sessionError
      const context = { migration: migration.name, rangeId: held.rangeId, token: held.token, worker: this.#worker.id }
      if (leaseLost) this.#logger.warn('backfill range lease lost; another worker resumes it', { ...context, code: 'BACKFILL_LEASE_LOST' })
      else {
        // Given back, to be retried from its checkpoint (here or elsewhere) after a pause.
        this.#logger.error('backfill range failed; it will be retried from its checkpoint', { ...context, error })
        await sleep(this.#pollMs(), options.signal)
      }
      return undefined
    } finally {
      lost.abort()
      await watch
      if (sessionError === undefined) await leases.release(held)
    }
  }

  #pollMs(): number {
    return (this.#options.pollingIntervalSeconds ?? 1) * 1_000
  }
}

/** Resolves after `ms`, or early when `signal` aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve()
    const timer = setTimeout(done, ms)
    signal.addEventListener('abort', done, { once: true })
    function done() {
      clearTimeout(timer)
      signal.removeEventListener('abort', done)
      resolve()
    }
  })
}
