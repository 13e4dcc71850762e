import { type Kysely, sql } from 'kysely'
import { AuditLog } from './audit-log.js'

/** What operators set at run time for a migration's jobs (`cutover.job_control`). */
export interface JobControlState {
  readonly paused: boolean
  /** Overrides the job's own rows-per-second limit while set. */
  readonly maxRowsPerSecond: number | undefined
  readonly reason: string | undefined
}

const RUNNING: JobControlState = Object.freeze({ paused: false, maxRowsPerSecond: undefined, reason: undefined })

/**
 * Pause, resume and rate limits for backfills, read by every batch of every worker: one update
 * throttles the whole fleet, as gh-ost's interactive commands do for one process.
 */
export class JobControl {
  constructor(readonly db: Kysely<any>) {}

  async state(migration: string): Promise<JobControlState> {
    const row = await this.db.selectFrom('cutover.job_control').selectAll().where('migration', '=', migration).executeTakeFirst()
    if (!row) return RUNNING
    return {
      paused: row.paused,
      maxRowsPerSecond: row.max_rows_per_second === null ? undefined : Number(row.max_rows_per_second),
      reason: row.reason ?? undefined,
    }
  }

  async pause(migration: string, actor: string, reason?: string): Promise<void> {
    await this.#set(migration, actor, { paused: true, reason: reason ?? null })
  }

  async resume(migration: string, actor: string): Promise<void> {
    await this.#set(migration, actor, { paused: false, reason: null })
  }

  /** `undefined` removes the override. */
  async limitRate(migration: string, actor: string, maxRowsPerSecond: number | undefined): Promise<void> {
    await this.#set(migration, actor, { max_rows_per_second: maxRowsPerSecond ?? null })
  }

  /** Sets the state and audits who changed what: a paused backfill is an operator's decision. */
  async #set(migration: string, actor: string, values: Record<string, unknown>): Promise<void> {
    await this.db
      .insertInto('cutover.job_control')
      .values({ migration, updated_by: actor, ...values })
      .onConflict((oc) => oc.column('migration').doUpdateSet({ ...values, updated_by: actor, updated_at: sql`now()` }))
      .execute()
    await new AuditLog(this.db).append({ actor, migration, action: 'job_control', details: values })
  }
}
