/**
 * Distributed backfill: the old store's key space cut into ranges at real keys, each range a job
 * on pg-boss, any number of worker processes (or machines) taking them.
 *
 * Why pg-boss 10: it keeps its queue in the PostgreSQL Cutover already needs (no Redis), takes jobs
 * with `SKIP LOCKED`, and fails an active job whose worker went silent after the job's own
 * `expireInSeconds`, then retries it elsewhere — so a dead worker's range moves on in seconds or
 * minutes, as configured. It supports Node 20, which Cutover does; graphile-worker's current line
 * needs Node 22, and its older line holds a dead worker's jobs for a fixed 4 hours.
 *
 * Idempotency comes from the range checkpoints, not from the queue: a range picked up again resumes
 * after its last checkpointed batch, and writes are insert-if-absent. A session advisory lock per
 * range keeps two live workers off one range when a slow job outlives its expiry; a dead worker's
 * lock dies with its connection.
 */
import { CompiledQuery, type Kysely, sql } from 'kysely'
import PgBoss from 'pg-boss'
import { backfill, type BackfillOptions, type BackfillSummary, type KeyRange } from './backfill.js'
import { ConfigError } from '../model/errors.js'
import { type Logger, silentLogger } from '../observe/logger.js'
import type { Migration } from '../model/migration.js'
import type { KeyValue } from '../model/store.js'
import { loadKey, storeKey } from '../model/stored-key.js'

export interface BackfillJobsOptions {
  /** The control database: ranges, checkpoints, and pg-boss's own schema live there. */
  readonly control: Kysely<any>
  /** pg-boss's schema. Default `cutover_jobs`. */
  readonly schema?: string
  /** An active range job not finished in this time is failed and retried by another worker. Default 900 s. */
  readonly expireInSeconds?: number
  /** How often pg-boss expires jobs of dead workers. Default 30 s. */
  readonly maintenanceIntervalSeconds?: number
  /** How often idle workers look for ranges. Default 2 s. */
  readonly pollingIntervalSeconds?: number
  readonly logger?: Logger
}

/** A planned range: its position and bounds. */
export interface PlannedRange extends KeyRange {
  readonly position: number
}

export class BackfillJobs {
  readonly #control: Kysely<any>
  readonly #boss: PgBoss
  readonly #options: BackfillJobsOptions
  readonly #logger: Logger
  #started = false

  constructor(options: BackfillJobsOptions) {
    this.#control = options.control
    this.#options = options
    this.#logger = options.logger ?? silentLogger
    const control = options.control
    this.#boss = new PgBoss({
      db: { executeSql: async (text: string, values: unknown[] = []) => control.executeQuery(CompiledQuery.raw(text, values)) as Promise<{ rows: any[] }> },
      schema: options.schema ?? 'cutover_jobs',
      maintenanceIntervalSeconds: options.maintenanceIntervalSeconds ?? 30,
      monitorStateIntervalSeconds: 60,
      schedule: false,
    })
    this.#boss.on('error', (error: unknown) => this.#logger.warn('job engine error', { error }))
  }

  async start(): Promise<void> {
    if (this.#started) return
    await this.#boss.start()
    this.#started = true
  }

  /** Stops taking jobs; waits for ranges in progress (up to `timeoutMs`) unless `graceful` is false. */
  async stop(options: { graceful?: boolean; timeoutMs?: number } = {}): Promise<void> {
    if (!this.#started) return
    await this.#boss.stop({ graceful: options.graceful ?? true, timeout: options.timeoutMs ?? 30_000, wait: true, close: false })
    this.#started = false
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
    let after: KeyValue | undefined
    let seen = 0
    for (;;) {
      const rows = await migration.old.scan({ ...(after === undefined ? {} : { after }), limit: batch })
      for (const row of rows) {
        seen++
        if (seen % options.rangeSize === 0) bounds.push(row[migration.key.old] as KeyValue)
      }
      if (rows.length < batch) break
      after = rows.at(-1)?.[migration.key.old] as KeyValue
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

  /** Queues every range not yet done. Safe to call again: one job per range at a time. */
  async enqueue(migration: string): Promise<number> {
    await this.start()
    const queue = queueName(migration)
    await this.#boss.createQueue(queue, { name: queue, policy: 'stately' }).catch(() => undefined)
    const done = new Set(
      (await this.#control.selectFrom('cutover.backfill_checkpoints').select('range_id').where('migration', '=', migration).where('status', '=', 'done').execute()).map(
        (row) => row.range_id as string,
      ),
    )
    let queued = 0
    for (const range of await this.ranges(migration)) {
      if (done.has(range.id)) continue
      const id = await this.#boss.send(queue, { migration, rangeId: range.id }, {
        singletonKey: `${migration}:${range.id}`,
        expireInSeconds: this.#options.expireInSeconds ?? 900,
        retryLimit: 1_000,
        retryDelay: 1,
      })
      if (id) queued++
    }
    return queued
  }

  /**
   * Works ranges of `migration` until `signal` aborts: each job runs `backfill` on its range with
   * the range's checkpoint. Resolves when the worker is registered.
   */
  async work(
    migration: Migration<any, any>,
    options: { readonly signal?: AbortSignal; readonly backfill?: Partial<Omit<BackfillOptions, 'migration' | 'control' | 'range'>>; readonly onRange?: (summary: BackfillSummary) => void } = {},
  ): Promise<void> {
    await this.start()
    const queue = queueName(migration.name)
    await this.#boss.createQueue(queue, { name: queue, policy: 'stately' }).catch(() => undefined)
    await this.#boss.work<{ migration: string; rangeId: string }>(
      queue,
      { batchSize: 1, pollingIntervalSeconds: this.#options.pollingIntervalSeconds ?? 2 },
      async ([job]) => {
        if (!job) return
        const range = (await this.ranges(migration.name)).find((r) => r.id === job.data.rangeId)
        if (!range) throw new ConfigError([{ source: 'backfill_ranges', value: job.data.rangeId, message: `range ${job.data.rangeId} of ${migration.name} is not in the plan (replanned?)` }])
        const summary = await this.#withRangeLock(migration.name, range.id, () =>
          backfill({ ...options.backfill, migration, control: this.#control, range, ...(options.signal ? { signal: options.signal } : {}) }),
        )
        if (summary.status === 'aborted') throw new Error(`range ${range.id} stopped before its end; it will be resumed from its checkpoint`)
        options.onRange?.(summary)
      },
    )
    options.signal?.addEventListener('abort', () => void this.#boss.offWork(queue).catch(() => undefined), { once: true })
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

  /** Serializes live workers on one range; a dead worker's session lock is released with its connection. */
  async #withRangeLock<T>(migration: string, rangeId: string, run: () => Promise<T>): Promise<T> {
    return this.#control.connection().execute(async (connection) => {
      const lockKey = `cutover.backfill:${migration}:${rangeId}`
      for (;;) {
        const { rows } = await sql<{ locked: boolean }>`select pg_try_advisory_lock(hashtext(${lockKey})) as locked`.execute(connection)
        if (rows[0]?.locked) break
        await new Promise((resolve) => setTimeout(resolve, 500))
      }
      try {
        return await run()
      } finally {
        await sql`select pg_advisory_unlock(hashtext(${lockKey}))`.execute(connection)
      }
    })
  }
}

function queueName(migration: string): string {
  return `cutover-backfill-${migration}`
}
