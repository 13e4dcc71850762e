import type { Kysely } from 'kysely'
import type { BatchSizing } from '../batch-sizer.js'
import type { BackfillCounts } from '../../control/checkpoint.js'
import type { Logger } from '../../observe/logger.js'
import type { Migration } from '../../model/migration.js'
import type { KeyValue } from '../../model/store.js'
import type { ThrottleReason, ThrottleSettings } from '../throttle.js'

/**
 * A slice of the old store's key space, bounded by real keys (never computed ones, so any key type
 * and collation works). Ranges let several workers share one backfill (backfill-jobs.ts).
 */
export interface KeyRange {
  /** Names the range's checkpoint. */
  readonly id: string
  /** Exclusive lower bound; absent: from the first key. */
  readonly after?: KeyValue
  /** Inclusive upper bound; absent: to the last key. */
  readonly until?: KeyValue
  /**
   * The bounds of the ranges after this one. The range ends when it reaches `until`; if `until` was
   * deleted meanwhile, reaching any of these tells it that it went past its end. (Overlap with the
   * next range is harmless: writes are insert-if-absent.)
   */
  readonly beyond?: readonly KeyValue[]
}

export interface BackfillOptions {
  readonly migration: Migration<any, any>
  /** PostgreSQL with the `cutover` schema (`ensureSchema`): checkpoints, quarantine, audit, control. */
  readonly control: Kysely<any>
  readonly range?: KeyRange
  /**
   * The range's lease (distributed backfills): checkpoints are saved only while the range is still
   * held under this token, else the run fails with `LeaseLostError`.
   */
  readonly leaseToken?: number
  readonly batch?: BatchSizing
  readonly throttle?: ThrottleSettings
  /** Inline verification of each batch; `false` turns it off. */
  readonly verify?: { readonly retries?: number; readonly delayMs?: number } | false
  /** Discard an existing checkpoint (also one written with another configuration) and begin again. */
  readonly restart?: boolean
  /** Part of the configuration fingerprint: bump it when the mapper's code changes. */
  readonly configVersion?: string
  readonly actor?: string
  readonly logger?: Logger
  readonly onProgress?: (progress: BackfillProgress) => void
  /** Stops after the batch in flight (its checkpoint is saved). */
  readonly signal?: AbortSignal
}

/** Reported after every batch. */
export interface BackfillProgress {
  readonly migration: string
  readonly rangeId: string
  /** Totals of the range, including work of earlier runs. */
  readonly counts: BackfillCounts
  /** Rows read by this run, and its rate. */
  readonly runRead: number
  readonly rowsPerSecond: number
  readonly elapsedMs: number
  readonly batchSize: number
  readonly lastKey: string | undefined
  /** Why the last batch waited, if it did. */
  readonly throttled: readonly ThrottleReason[]
}

/** A key whose copy in the new store still differed from the source after the retries. */
export interface BatchMismatch {
  readonly key: string
  readonly kind: 'MISSING_IN_NEW' | 'MISSING_IN_OLD' | 'DIFFERENT'
  readonly fields: readonly string[]
}

export interface BackfillSummary {
  readonly migration: string
  readonly rangeId: string
  /** `already-done`: the checkpoint said so and nothing was read. */
  readonly status: 'done' | 'already-done' | 'aborted'
  /** The key this run resumed after, if it resumed. */
  readonly resumedAfter: string | undefined
  readonly counts: BackfillCounts
  /** Open quarantine entries of the migration, by `REASON_CODE: reason`. */
  readonly quarantinedByReason: Readonly<Record<string, number>>
  /**
   * Copies this run removed again because their source row was deleted between the batch's read
   * and its write (see `removeDeleted`).
   */
  readonly removedAsDeleted: number
  /** The first 1,000 mismatches of this run. */
  readonly mismatches: readonly BatchMismatch[]
  /** Milliseconds waited, by throttle source. */
  readonly throttledMs: Readonly<Record<ThrottleReason['source'], number>>
  readonly batches: number
  readonly elapsedMs: number
  readonly rowsPerSecond: number
}
