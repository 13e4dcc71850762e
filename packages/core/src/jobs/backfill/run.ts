import { AuditLog } from '../../control/audit-log.js'
import { addCounts, type BackfillCounts, BackfillConfigChangedError, type Checkpoint, CheckpointTable } from '../../control/checkpoint.js'
import { JobControl } from '../../control/job-control.js'
import { type QuarantinedRecord, QuarantineTable } from '../../control/quarantine.js'
import type { Migration } from '../../model/migration.js'
import { type KeyValue, keyString, type WriteMode } from '../../model/store.js'
import { type Logger, silentLogger } from '../../observe/logger.js'
import { BatchSizer } from '../batch-sizer.js'
import { Throttle, type ThrottleReason } from '../throttle.js'
import { backfillFingerprint } from './fingerprint.js'
import type { BackfillOptions, BackfillSummary, BatchMismatch } from './options.js'
import type { ReadBatch } from './read-batch.js'
import type { SourceRecheck } from './remove-deleted.js'
import { verifyBatch } from './verify-batch.js'
import type { WrittenBatch } from './write-batch.js'

const MAX_REPORTED_MISMATCHES = 1_000

/** What one batch cost, for the batch sizer and the throttle. */
export interface SettledBatch {
  readonly rows: number
  readonly latencyMs: number
}

/**
 * One run of a backfill over one range: where it resumed, what it counted, what it waited. Each
 * method is one step of a batch's life after its write (verify, checkpoint, report) or of the
 * run's (start, throttle, finish).
 */
export class BackfillRun {
  readonly migration: Migration<any, any>
  readonly rangeId: string
  readonly sizer: BatchSizer
  readonly throttle: Throttle
  readonly mode: WriteMode
  /** The key the next batch is read after. */
  lastKey: KeyValue | undefined
  status: BackfillSummary['status'] = 'done'
  readonly #options: BackfillOptions
  readonly #logger: Logger
  readonly #actor: string
  readonly #checkpoints: CheckpointTable
  readonly #quarantine: QuarantineTable
  readonly #audit: AuditLog
  readonly #resumedAfter: string | undefined
  readonly #started = performance.now()
  readonly #mismatches: BatchMismatch[] = []
  readonly #throttledMs = emptyThrottled()
  #counts: BackfillCounts
  #runRead = 0
  #batches = 0
  #savedDone = false
  /** Copies removed because their source was deleted while their batch ran. */
  #removed = 0
  /** What the previous batch slept afterwards (reported with the next batch). */
  #lastThrottled: ThrottleReason[] = []

  private constructor(options: BackfillOptions, checkpoints: CheckpointTable, checkpoint: Checkpoint, sizer: BatchSizer) {
    this.#options = options
    this.migration = options.migration
    this.rangeId = options.range?.id ?? 'all'
    this.#logger = options.logger ?? silentLogger
    this.#actor = options.actor ?? 'cutover:backfill'
    this.#checkpoints = checkpoints
    this.#quarantine = new QuarantineTable(options.control)
    this.#audit = new AuditLog(options.control)
    this.sizer = sizer
    this.#resumedAfter = checkpoint.lastKey === undefined ? undefined : keyString(checkpoint.lastKey)
    this.lastKey = checkpoint.lastKey ?? options.range?.after
    this.#counts = checkpoint.counts
    this.throttle = new Throttle(options.throttle ?? {}, new JobControl(options.control), this.migration.name)
    const version = this.migration.version?.new
    this.mode = version ? { kind: 'version-guard', field: version } : { kind: 'insert-if-absent' }
  }

  /**
   * Loads (or begins) the range's checkpoint and audits the start; a summary instead when the
   * checkpoint says the range is done. A checkpoint of another configuration is refused.
   */
  static async start(options: BackfillOptions): Promise<BackfillRun | BackfillSummary> {
    const { migration, control } = options
    const rangeId = options.range?.id ?? 'all'
    const checkpoints = new CheckpointTable(control)
    const fingerprint = backfillFingerprint(options)
    let checkpoint = await checkpoints.load(migration.name, rangeId)
    if (checkpoint && checkpoint.fingerprint !== fingerprint && !options.restart) {
      throw new BackfillConfigChangedError(migration.name, rangeId, checkpoint.fingerprint, fingerprint)
    }
    if (checkpoint?.status === 'done' && !options.restart) {
      return { ...(await summaryOf(options, rangeId, 'already-done', checkpoint.counts)), resumedAfter: undefined }
    }
    const sizer = new BatchSizer(options.batch, options.restart ? undefined : checkpoint?.batchSize)
    if (!checkpoint || options.restart) checkpoint = await checkpoints.begin(migration.name, rangeId, fingerprint, sizer.size)
    const run = new BackfillRun(options, checkpoints, checkpoint, sizer)
    await run.#audit.append({ actor: run.#actor, migration: migration.name, action: 'backfill', details: { event: 'started', rangeId, resumedAfter: run.#resumedAfter ?? null, fingerprint } })
    run.#logger.info('backfill started', { migration: migration.name, rangeId, resumedAfter: run.#resumedAfter })
    return run
  }

  /** Verifies a written batch, then commits its quarantine and checkpoint, audits, reports. */
  async settle(batch: ReadBatch, written: WrittenBatch, recheck: SourceRecheck, waited: ThrottleReason[], writeMs: number): Promise<SettledBatch> {
    const verifyStarted = performance.now()
    const verification =
      this.#options.verify === false ? { mismatches: [] } : await verifyBatch(this.migration, written, recheck, this.#options.verify ?? {})
    this.#removed += recheck.removed
    const latencyMs = writeMs + (performance.now() - verifyStarted)
    const read = batch.rows.length
    this.#counts = addCounts(this.#counts, {
      read,
      written: written.written,
      skipped: written.skipped,
      quarantined: written.quarantined.length,
      mismatched: verification.mismatches.length,
    })
    await this.#checkpoint(batch, written.quarantined)
    await this.#auditQuarantine(written.quarantined)
    this.#recordMismatches(verification.mismatches)
    this.#runRead += read
    this.#batches++
    this.sizer.observe(latencyMs)
    for (const reason of waited) this.#throttledMs[reason.source] += reason.waitedMs
    this.#report(batch.lastKey, [...waited, ...this.#lastThrottled])
    return { rows: read, latencyMs }
  }

  /** Sleeps what the throttle asks after a settled batch. */
  async throttleAfter(settled: SettledBatch, options: { last?: boolean } = {}): Promise<void> {
    const signal = this.#options.signal
    this.#lastThrottled = await this.throttle.afterBatch(settled.rows, settled.latencyMs, signal, options).catch((error: unknown) => {
      if (signal?.aborted) return []
      throw error
    })
    for (const reason of this.#lastThrottled) this.#throttledMs[reason.source] += reason.waitedMs
  }

  /** Saves the final checkpoint if the last batch did not, audits the end, summarizes. */
  async finish(): Promise<BackfillSummary> {
    const { migration } = this
    if (this.status === 'done' && !this.#savedDone) {
      // The last batch was full and the next scan found nothing (or there was nothing to read).
      await this.#checkpoints.save(this.#options.control, { migration: migration.name, rangeId: this.rangeId, lastKey: this.lastKey, counts: this.#counts, batchSize: this.sizer.size, status: 'done' }, this.#fence)
    }
    const elapsedMs = performance.now() - this.#started
    await this.#audit.append({
      actor: this.#actor,
      migration: migration.name,
      action: 'backfill',
      details: {
        event: this.status === 'done' ? 'finished' : 'aborted',
        rangeId: this.rangeId,
        counts: this.#counts,
        runRead: this.#runRead,
        batches: this.#batches,
        mismatched: this.#mismatches.length,
        removedAsDeleted: this.#removed,
      },
    })
    this.#logger.info('backfill ended', { migration: migration.name, rangeId: this.rangeId, status: this.status, counts: this.#counts })
    return {
      ...(await summaryOf(this.#options, this.rangeId, this.status, this.#counts)),
      resumedAfter: this.#resumedAfter,
      removedAsDeleted: this.#removed,
      mismatches: this.#mismatches,
      throttledMs: this.#throttledMs,
      batches: this.#batches,
      elapsedMs,
      rowsPerSecond: this.#runRead && elapsedMs > 0 ? this.#runRead / (elapsedMs / 1_000) : 0,
    }
  }

  get #fence(): { leaseToken?: number } {
    return this.#options.leaseToken === undefined ? {} : { leaseToken: this.#options.leaseToken }
  }

  /** The batch's quarantined records and the checkpoint after it, in one transaction. */
  async #checkpoint(batch: ReadBatch, quarantined: readonly QuarantinedRecord[]): Promise<void> {
    const { migration, rangeId } = this
    await this.#options.control.transaction().execute(async (trx) => {
      await this.#quarantine.write(trx, quarantined)
      await this.#checkpoints.save(trx, { migration: migration.name, rangeId, lastKey: batch.lastKey, counts: this.#counts, batchSize: this.sizer.size, status: batch.finished ? 'done' : 'running' }, this.#fence)
    })
    this.#savedDone = batch.finished
  }

  async #auditQuarantine(quarantined: readonly QuarantinedRecord[]): Promise<void> {
    if (quarantined.length === 0) return
    await this.#audit.append({
      actor: this.#actor,
      migration: this.migration.name,
      action: 'quarantine',
      details: { rangeId: this.rangeId, count: quarantined.length, keys: quarantined.slice(0, 100).map((q) => q.key), reasons: countReasons(quarantined) },
    })
  }

  #recordMismatches(found: readonly BatchMismatch[]): void {
    for (const mismatch of found) if (this.#mismatches.length < MAX_REPORTED_MISMATCHES) this.#mismatches.push(mismatch)
    if (found.length > 0) this.#logger.warn('backfilled records differ from the source after retries', { migration: this.migration.name, keys: found.slice(0, 20) })
  }

  #report(batchKey: KeyValue, throttled: ThrottleReason[]): void {
    const elapsedMs = performance.now() - this.#started
    this.#options.onProgress?.({
      migration: this.migration.name,
      rangeId: this.rangeId,
      counts: this.#counts,
      runRead: this.#runRead,
      rowsPerSecond: this.#runRead / (elapsedMs / 1_000),
      elapsedMs,
      batchSize: this.sizer.size,
      lastKey: keyString(batchKey),
      throttled,
    })
  }
}

/** The parts of a summary every outcome has; the rest default to an empty run. */
async function summaryOf(options: BackfillOptions, rangeId: string, status: BackfillSummary['status'], counts: BackfillCounts): Promise<BackfillSummary> {
  return {
    migration: options.migration.name,
    rangeId,
    status,
    resumedAfter: undefined,
    counts,
    quarantinedByReason: await new QuarantineTable(options.control).countByReason(options.migration.name),
    removedAsDeleted: 0,
    mismatches: [],
    throttledMs: emptyThrottled(),
    batches: 0,
    elapsedMs: 0,
    rowsPerSecond: 0,
  }
}

function countReasons(records: readonly QuarantinedRecord[]): Record<string, number> {
  const counts: Record<string, number> = {}
  for (const r of records) counts[`${r.reasonCode}: ${r.reason}`] = (counts[`${r.reasonCode}: ${r.reason}`] ?? 0) + 1
  return counts
}

function emptyThrottled(): Record<ThrottleReason['source'], number> {
  return { paused: 0, query: 0, 'rate-limit': 0, nice: 0 }
}
