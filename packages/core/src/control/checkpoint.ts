import { type Kysely, sql, type Transaction } from 'kysely'
import { CutoverError } from '../model/errors.js'
import type { KeyValue } from '../model/store.js'
import { loadKey, storeKey } from '../model/stored-key.js'

/** What a backfill has done so far: kept in its checkpoint and reported in its summary. */
export interface BackfillCounts {
  /** Old records scanned. */
  readonly read: number
  /** Records inserted (or replaced under the version guard) in the new store. */
  readonly written: number
  /** Records left alone because the new store had them (mirrored, or an earlier run). */
  readonly skipped: number
  readonly quarantined: number
  /** Keys whose read-back differed from the source after retries. */
  readonly mismatched: number
}

export const NO_COUNTS: BackfillCounts = Object.freeze({ read: 0, written: 0, skipped: 0, quarantined: 0, mismatched: 0 })

export function addCounts(a: BackfillCounts, b: Partial<BackfillCounts>): BackfillCounts {
  return {
    read: a.read + (b.read ?? 0),
    written: a.written + (b.written ?? 0),
    skipped: a.skipped + (b.skipped ?? 0),
    quarantined: a.quarantined + (b.quarantined ?? 0),
    mismatched: a.mismatched + (b.mismatched ?? 0),
  }
}

/** One backfill range's progress, as stored in `cutover.backfill_checkpoints`. */
export interface Checkpoint {
  readonly migration: string
  /** `all` for a single-process backfill; the range id for distributed ones. */
  readonly rangeId: string
  /** Hash of the configuration that wrote it: a resumed run must have the same. */
  readonly fingerprint: string
  /** The last key handled (written, skipped or quarantined); the next batch starts after it. */
  readonly lastKey: KeyValue | undefined
  readonly status: 'running' | 'done'
  readonly counts: BackfillCounts
  readonly batchSize: number
  readonly startedAt: Date
  readonly updatedAt: Date
}

/** A checkpoint exists with another configuration; resuming would mix two backfills. */
export class BackfillConfigChangedError extends CutoverError {
  readonly code = 'BACKFILL_CONFIG_CHANGED'

  constructor(
    readonly migration: string,
    readonly rangeId: string,
    readonly stored: string,
    readonly current: string,
  ) {
    super(
      `Backfill of "${migration}" (range ${rangeId}) has a checkpoint written with another configuration ` +
        `(${stored.slice(0, 12)}…, now ${current.slice(0, 12)}…); restart it explicitly (restart: true / --restart) to begin again`,
    )
  }
}

/**
 * A distributed range's checkpoint was refused: another worker took the range over (its holder's
 * lease connection was gone, or its lease expired), so this worker's progress is no longer its own.
 */
export class LeaseLostError extends CutoverError {
  readonly code = 'BACKFILL_LEASE_LOST'

  constructor(
    readonly migration: string,
    readonly rangeId: string,
    readonly token: number,
  ) {
    super(`Backfill of "${migration}": range ${rangeId} is no longer held under lease ${token}; another worker has taken it over`)
  }
}

/** The checkpoint table. Saves run inside the caller's transaction, with that batch's quarantines. */
export class CheckpointTable {
  constructor(readonly db: Kysely<any>) {}

  async load(migration: string, rangeId: string): Promise<Checkpoint | undefined> {
    const row = await this.db
      .selectFrom('cutover.backfill_checkpoints')
      .selectAll()
      .where('migration', '=', migration)
      .where('range_id', '=', rangeId)
      .executeTakeFirst()
    return row ? fromRow(row) : undefined
  }

  async list(migration: string): Promise<Checkpoint[]> {
    const rows = await this.db.selectFrom('cutover.backfill_checkpoints').selectAll().where('migration', '=', migration).orderBy('range_id').execute()
    return rows.map(fromRow)
  }

  /** Creates (or, on an explicit restart, replaces) the checkpoint of a run that begins. */
  async begin(migration: string, rangeId: string, fingerprint: string, batchSize: number): Promise<Checkpoint> {
    const row = await this.db
      .insertInto('cutover.backfill_checkpoints')
      .values({ migration, range_id: rangeId, fingerprint, status: 'running', counts: JSON.stringify(NO_COUNTS), batch_size: batchSize, last_key: null, last_key_type: null })
      .onConflict((oc) =>
        oc.columns(['migration', 'range_id']).doUpdateSet({
          fingerprint,
          status: 'running',
          counts: JSON.stringify(NO_COUNTS),
          batch_size: batchSize,
          last_key: null,
          last_key_type: null,
          started_at: sql`now()`,
          updated_at: sql`now()`,
          finished_at: null,
        }),
      )
      .returningAll()
      .executeTakeFirstOrThrow()
    return fromRow(row)
  }

  /**
   * Saves progress. With `leaseToken` (a distributed range), only while the range is still held
   * under that token: a worker that lost its range cannot move its checkpoint afterwards.
   */
  async save(
    trx: Transaction<any> | Kysely<any>,
    checkpoint: Pick<Checkpoint, 'migration' | 'rangeId' | 'lastKey' | 'counts' | 'batchSize' | 'status'>,
    options: { readonly leaseToken?: number } = {},
  ): Promise<void> {
    const key = checkpoint.lastKey === undefined ? undefined : storeKey(checkpoint.lastKey)
    const token = options.leaseToken
    const result = await trx
      .updateTable('cutover.backfill_checkpoints')
      .set({
        last_key: key?.text ?? null,
        last_key_type: key?.type ?? null,
        counts: JSON.stringify(checkpoint.counts),
        batch_size: checkpoint.batchSize,
        status: checkpoint.status,
        updated_at: sql`now()`,
        finished_at: checkpoint.status === 'done' ? sql`now()` : null,
      })
      .where('migration', '=', checkpoint.migration)
      .where('range_id', '=', checkpoint.rangeId)
      .$if(token !== undefined, (qb) =>
        qb.where(({ exists, selectFrom }) =>
          exists(
            selectFrom('cutover.backfill_ranges as r')
              .select('r.range_id')
              .where('r.migration', '=', checkpoint.migration)
              .where('r.range_id', '=', checkpoint.rangeId)
              .where('r.lease_token', '=', token as number),
          ),
        ),
      )
      .executeTakeFirst()
    if (token !== undefined && Number(result.numUpdatedRows) === 0) throw new LeaseLostError(checkpoint.migration, checkpoint.rangeId, token)
  }

  /** Forgets every checkpoint of a migration (a new backfill from the start). */
  async clear(migration: string): Promise<void> {
    await this.db.deleteFrom('cutover.backfill_checkpoints').where('migration', '=', migration).execute()
  }
}

function fromRow(row: Record<string, any>): Checkpoint {
  return {
    migration: row.migration,
    rangeId: row.range_id,
    fingerprint: row.fingerprint,
    lastKey: row.last_key === null ? undefined : loadKey({ text: row.last_key, type: row.last_key_type }),
    status: row.status,
    counts: { ...NO_COUNTS, ...(typeof row.counts === 'string' ? JSON.parse(row.counts) : row.counts) },
    batchSize: row.batch_size,
    startedAt: row.started_at,
    updatedAt: row.updated_at,
  }
}
