/**
 * Work the plugin does outside the application's call (comparisons, comparison lookups, mirror
 * captures after a commit, unmirrored-write reports from driver events) runs through `guarded`:
 * whatever it throws, synchronously or later, is counted (`<activity>` metric, by migration) and
 * logged, never left to reach `uncaughtException` / `unhandledRejection`, which end a Node process.
 *
 * Logging is rate-limited per migration and activity (one line per 10 s with the count it stood
 * for), since such a failure can repeat once per read or write.
 */
import type { Logger, Metrics } from '@cutover/core'

export interface BackgroundOwner {
  readonly logger: Logger
  readonly metrics?: Metrics
  /** The migration, for labels and log fields. */
  readonly migration: string
}

const LOG_INTERVAL_MS = 10_000
const lastLogged = new Map<string, { at: number; suppressed: number }>()

/** Runs `work` now; an error it throws or rejects with is counted as `metric` and logged as `message`. */
export function guarded(owner: BackgroundOwner, metric: string, message: string, work: () => unknown, fields: Record<string, unknown> = {}): void {
  const fail = (error: unknown) => reportFailure(owner, metric, message, { ...fields, error })
  try {
    const result = work()
    if (isPromiseLike(result)) result.then(undefined, fail)
  } catch (error) {
    fail(error)
  }
}

/** Counts and logs (rate-limited) one failure of background work. Never throws. */
export function reportFailure(owner: BackgroundOwner, metric: string, message: string, fields: Record<string, unknown>): void {
  try {
    owner.metrics?.increment(metric, { migration: owner.migration })
    const id = `${owner.migration}\u0000${metric}`
    const now = Date.now()
    const last = lastLogged.get(id)
    if (last && now - last.at < LOG_INTERVAL_MS) {
      last.suppressed++
      return
    }
    owner.logger.warn(message, { migration: owner.migration, ...fields, ...(last?.suppressed ? { alsoSinceLastLine: last.suppressed } : {}) })
    lastLogged.set(id, { at: now, suppressed: 0 })
  } catch {
    // A logger or metrics sink that throws must not turn a reported failure into an escaped one.
  }
}

function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as { then?: unknown } | null)?.then === 'function'
}
