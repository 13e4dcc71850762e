import type { BackfillProgress } from '../jobs/backfill.js'
import type { Metrics } from './metrics.js'

/**
 * An `onProgress` for `backfill()` that feeds the exported metrics: rows read
 * (`backfill.rows`, a counter) and the run's rate (`backfill.rate`, a gauge), per migration.
 */
export function backfillProgressMetrics(metrics: Metrics): (progress: BackfillProgress) => void {
  const lastRead = new Map<string, number>()
  return (progress) => {
    const id = `${progress.migration}\n${progress.rangeId}`
    const delta = progress.runRead - (lastRead.get(id) ?? 0)
    lastRead.set(id, progress.runRead)
    const labels = { migration: progress.migration }
    if (delta > 0) metrics.increment('backfill.rows', labels, delta)
    metrics.set('backfill.rate', progress.rowsPerSecond, labels)
  }
}
