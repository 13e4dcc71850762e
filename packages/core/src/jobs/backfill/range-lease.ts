import { hostname } from 'node:os'
import { type Kysely, sql } from 'kysely'

/** Who a worker is, as `cutover status` shows a range's holder. */
export interface WorkerIdentity {
  readonly id: string
  readonly host: string
  readonly pid: number
}

export function workerIdentity(id?: string): WorkerIdentity {
  const host = hostname()
  return { id: id ?? `${host}:${process.pid}`, host, pid: process.pid }
}

/** A range this worker holds: the token its checkpoints are fenced by. */
export interface HeldRange {
  readonly rangeId: string
  readonly token: number
}

/** One range of the plan as a worker looking for work sees it. */
interface Candidate {
  readonly range_id: string
  readonly holder_backend: number | null
  readonly stalled: boolean
}

/**
 * A worker's lease connection: one control-database session that holds a session advisory lock per
 * range it works. The lock is the liveness signal: it goes with the session, so a worker killed (or
 * whose connection is cut) frees its range at once, and another worker's `pg_try_advisory_lock`
 * succeeds on its next look. The expiry is only the fallback for a holder that is alive but stuck:
 * no checkpoint for `expireInSeconds` (counted from its last progress, not from the range's start),
 * and its lease session is terminated so that its lock goes too.
 *
 * Every claim bumps the range's `lease_token`; checkpoints are saved only under the current token
 * (`CheckpointTable.save`), so a worker that lost its range cannot move it afterwards.
 */
export class RangeLeases {
  constructor(
    /** A Kysely bound to one connection (`control.connection()`), held for the worker's life. */
    readonly session: Kysely<any>,
    readonly migration: string,
    readonly worker: WorkerIdentity,
    readonly expireInSeconds: number,
  ) {}

  /** Claims the first range that is not done and whose holder is gone (or stuck); none: `undefined`. */
  async claim(): Promise<HeldRange | undefined> {
    for (const candidate of await this.#candidates()) {
      if (!(await this.#lock(candidate))) continue
      const held = await this.#take(candidate.range_id)
      if (held) return held
      await this.#unlock(candidate.range_id)
    }
    return undefined
  }

  /** Whether this session still holds `range` under its token (a failed query: the session is gone). */
  async stillHeld(range: HeldRange): Promise<boolean> {
    const row = await this.session
      .selectFrom('cutover.backfill_ranges')
      .select('lease_token')
      .where('migration', '=', this.migration)
      .where('range_id', '=', range.rangeId)
      .executeTakeFirst()
    return row !== undefined && Number(row.lease_token) === range.token
  }

  /** Gives the range back: clears the holder (if still ours) and drops the lock. */
  async release(range: HeldRange): Promise<void> {
    await this.session
      .updateTable('cutover.backfill_ranges')
      .set({ holder: null, holder_host: null, holder_pid: null, holder_backend: null, leased_at: null })
      .where('migration', '=', this.migration)
      .where('range_id', '=', range.rangeId)
      .where('lease_token', '=', range.token)
      .execute()
    await this.#unlock(range.rangeId)
  }

  /** Ranges not done, in plan order, each with whether its holder made no progress within the expiry. */
  async #candidates(): Promise<Candidate[]> {
    const { rows } = await sql<Candidate>`
      select r.range_id, r.holder_backend,
             coalesce(greatest(r.leased_at, c.updated_at) < now() - make_interval(secs => ${this.expireInSeconds}), false) as stalled
        from cutover.backfill_ranges r
        left join cutover.backfill_checkpoints c using (migration, range_id)
       where r.migration = ${this.migration} and c.status is distinct from 'done'
       order by r.position`.execute(this.session)
    return rows
  }

  /**
   * Takes the range's advisory lock. Held by a live session: no, unless that holder is stalled,
   * whose lease session is then terminated (it can no longer checkpoint either way) and the lock
   * taken once it is gone.
   */
  async #lock(candidate: Candidate): Promise<boolean> {
    if (await this.#tryLock(candidate.range_id)) return true
    if (!candidate.stalled || candidate.holder_backend === null) return false
    await sql`
      select pg_terminate_backend(l.pid, 5000) from pg_locks l
       where l.locktype = 'advisory' and l.pid = ${candidate.holder_backend} and l.granted
         and l.objid = (hashtext(${lockName(this.migration, candidate.range_id)})::bigint & 4294967295)::text::oid`.execute(this.session)
    return this.#tryLock(candidate.range_id)
  }

  /** Records this worker as the holder under a new token, unless the range got done meanwhile. */
  async #take(rangeId: string): Promise<HeldRange | undefined> {
    const row = await this.session
      .updateTable('cutover.backfill_ranges as r')
      .set({
        lease_token: sql`r.lease_token + 1`,
        holder: this.worker.id,
        holder_host: this.worker.host,
        holder_pid: this.worker.pid,
        holder_backend: sql`pg_backend_pid()`,
        leased_at: sql`now()`,
      })
      .where('r.migration', '=', this.migration)
      .where('r.range_id', '=', rangeId)
      .where(({ not, exists, selectFrom }) =>
        not(
          exists(
            selectFrom('cutover.backfill_checkpoints as c')
              .select('c.range_id')
              .whereRef('c.migration', '=', 'r.migration')
              .whereRef('c.range_id', '=', 'r.range_id')
              .where('c.status', '=', 'done'),
          ),
        ),
      )
      .returning('r.lease_token')
      .executeTakeFirst()
    return row ? { rangeId, token: Number(row.lease_token) } : undefined
  }

  async #tryLock(rangeId: string): Promise<boolean> {
    const { rows } = await sql<{ locked: boolean }>`select pg_try_advisory_lock(hashtext(${lockName(this.migration, rangeId)})) as locked`.execute(this.session)
    return rows[0]?.locked === true
  }

  async #unlock(rangeId: string): Promise<void> {
    await sql`select pg_advisory_unlock(hashtext(${lockName(this.migration, rangeId)}))`.execute(this.session)
  }
}

/** The advisory lock's name; `hashtext` of it is the key (tests find holders in `pg_locks` by it). */
export function lockName(migration: string, rangeId: string): string {
  return `cutover.backfill:${migration}:${rangeId}`
}
