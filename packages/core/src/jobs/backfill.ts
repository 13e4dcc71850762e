import { BackfillRun, type SettledBatch } from './backfill/run.js'
import { mapBatch } from './backfill/map-batch.js'
import type { BackfillOptions, BackfillSummary } from './backfill/options.js'
import { BatchReader, type ReadBatch } from './backfill/read-batch.js'
import { removeDeleted } from './backfill/remove-deleted.js'
import { writeBatch } from './backfill/write-batch.js'
import type { ThrottleReason } from './throttle.js'

export { backfillFingerprint } from './backfill/fingerprint.js'
export type { BackfillOptions, BackfillProgress, BackfillSummary, BatchMismatch, KeyRange } from './backfill/options.js'

/**
 * Copies the old store's history into the new store (DESIGN property 4).
 *
 * - Walks the old store in key order, in batches sized by `BatchSizer`; holds at most three (one
 *   read ahead, two being written or verified), never the table.
 * - Writes `insert-if-absent`, or `version-guard` when the migration declares a new-side version
 *   field, so whatever the mirror wrote is never replaced by an older copy. Re-running is harmless.
 * - After each batch, in one control-database transaction: that batch's quarantined records and
 *   the checkpoint. A crash before the commit re-runs the batch (idempotent); after it, resumes
 *   after it. The checkpoint's configuration fingerprint must match, unless `restart`.
 * - Records the mapper rejects, or the new store refuses one by one (a unique constraint the old
 *   data breaks), are quarantined with the reason and the raw record; the run goes on.
 * - Each batch is read back and compared with the mapped source by row checksums; keys that differ
 *   are re-read on both sides after a delay (the mirror may be mid-write) and reported if they still
 *   differ. The backfill never repairs them itself: overwriting could undo a newer mirrored write.
 *   `reconcile` does, from the authoritative side.
 *
 * A batch is: wait for the throttle, `read`, `mapBatch`, `writeBatch`, `removeDeleted` (re-read
 * the batch's keys from the old store and delete the copies of rows deleted meanwhile), then
 * `settle` (verify against the re-read rows, checkpoint, report) once the batch before it has
 * settled.
 */
export async function backfill(options: BackfillOptions): Promise<BackfillSummary> {
  const run = await BackfillRun.start(options)
  if (!(run instanceof BackfillRun)) return run
  await walk(run, options)
  return run.finish()
}

/**
 * A two-deep pipeline: batch N+1 is mapped and its write begun before batch N is verified and
 * checkpointed, so the two overlap (and N+2 is read ahead meanwhile). Each checkpoint waits for the
 * one before it and for its own batch's write, so a checkpoint always means every batch up to it is
 * written; a crash only means the batches after the last checkpoint are written again, which
 * changes nothing. A nice ratio asks for idle time after each batch, which a batch written
 * meanwhile would fill: then one batch at a time.
 */
async function walk(run: BackfillRun, options: BackfillOptions): Promise<void> {
  const reader = new BatchReader(run.migration, options.range)
  const inFlight = options.throttle?.niceRatio ? 1 : 2
  const unsettled: Promise<SettledBatch>[] = []
  try {
    for (;;) {
      const waited = await waitForThrottle(run, options.signal)
      if (waited === 'aborted') break
      const batchStarted = performance.now()
      const batch = await reader.read(run.lastKey, run.sizer.size, { stale: waited.length > 0 })
      if (!batch) break
      run.lastKey = batch.lastKey
      unsettled.push(startBatch(run, batch, waited, batchStarted, unsettled.at(-1)))
      if (unsettled.length >= inFlight) await run.throttleAfter(await (unsettled.shift() as Promise<SettledBatch>))
      if (batch.finished) break
    }
  } catch (error) {
    // No write left running behind the throw.
    await Promise.allSettled(unsettled.splice(0))
    throw error
  }
  // The last batches pay for their rows too: the run's average stays at or under the rate limit.
  for (const batch of unsettled.splice(0)) await run.throttleAfter(await batch, { last: true })
}

/** Maps and writes a batch now; settles it once `previous` (the batch before it) has settled. */
function startBatch(run: BackfillRun, batch: ReadBatch, waited: ThrottleReason[], batchStarted: number, previous: Promise<SettledBatch> | undefined): Promise<SettledBatch> {
  const writing = Promise.resolve()
    .then(() => writeBatch(run.migration, mapBatch(run.migration, batch.rows), run.mode))
    .then(async (written) => ({ written, recheck: await removeDeleted(run.migration, batch, written, run.mode), writeMs: performance.now() - batchStarted }))
  writing.catch(() => undefined) // awaited below
  const settling = (async () => {
    const { written, recheck, writeMs } = await writing
    await previous
    return run.settle(batch, written, recheck, waited, writeMs)
  })()
  settling.catch(() => undefined) // awaited by the walk
  return settling
}

/** The throttle's wait before a batch (pause, throttle query), or `aborted`. */
async function waitForThrottle(run: BackfillRun, signal: AbortSignal | undefined): Promise<ThrottleReason[] | 'aborted'> {
  if (signal?.aborted) {
    run.status = 'aborted'
    return 'aborted'
  }
  try {
    return await run.throttle.beforeBatch(signal)
  } catch (error) {
    if (!signal?.aborted) throw error
    run.status = 'aborted'
    return 'aborted'
  }
}
