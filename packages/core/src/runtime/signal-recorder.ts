import { hostname } from 'node:os'
import { NO_SIGNALS, type SignalCounts, type SignalHistory, subtractSignals } from '../control/signal-history.js'
import type { Logger } from '../observe/logger.js'
import { type Metrics, type MetricsSnapshot, metricId, parseMetricId } from '../observe/metrics.js'
import type { MigrationRuntime } from './cutover.js'

/** How often an instance adds what it counted to `cutover.signals`. */
export const DEFAULT_SIGNAL_INTERVAL_MS = 10_000

/**
 * Writes, every interval, what this process counted per migration since the last interval (mirror
 * outcomes, compared reads, reads per side) and its current levels (queue depths, lag) to
 * `cutover.signals`. Never throws into the application: a failed write is logged and counted, and
 * its counts are carried into the next interval.
 */
export class SignalRecorder {
  readonly instance = `${hostname()}:${process.pid}:${Math.random().toString(36).slice(2, 8)}`
  readonly #history: SignalHistory
  readonly #metrics: Metrics
  readonly #logger: Logger
  readonly #runtimes: () => readonly MigrationRuntime[]
  readonly #reported = new Map<string, SignalCounts>()
  #timer: NodeJS.Timeout | undefined
  #flushing: Promise<void> | undefined

  constructor(history: SignalHistory, metrics: Metrics, logger: Logger, runtimes: () => readonly MigrationRuntime[]) {
    this.#history = history
    this.#metrics = metrics
    this.#logger = logger
    this.#runtimes = runtimes
  }

  start(intervalMs: number): void {
    this.#timer = setInterval(() => void this.flush(), intervalMs)
    this.#timer.unref?.()
  }

  /** Writes one report now (at most one at a time); resolves when it is written or has failed. */
  flush(): Promise<void> {
    this.#flushing ??= this.#write().finally(() => (this.#flushing = undefined))
    return this.#flushing
  }

  /** Stops the timer and, if it was running, writes a last report. */
  async stop(): Promise<void> {
    if (!this.#timer) return
    clearInterval(this.#timer)
    this.#timer = undefined
    await this.flush()
  }

  async #write(): Promise<void> {
    const snapshot = this.#metrics.snapshot()
    const at = new Date()
    for (const runtime of this.#runtimes()) {
      const total = countsOf(snapshot, runtime.name)
      const delta = subtractSignals(total, this.#reported.get(runtime.name) ?? NO_SIGNALS)
      try {
        await this.#history.add(runtime.name, this.instance, at, delta, {
          phase: runtime.phase,
          readPercent: runtime.readPercent,
          mirrorDepth: runtime.queue('old-to-new').depth,
          reverseDepth: runtime.queue('new-to-old').depth,
          mirrorLagMs: Math.max(lagOf(snapshot, runtime.name, 'old-to-new'), lagOf(snapshot, runtime.name, 'new-to-old')),
        })
        this.#reported.set(runtime.name, total)
      } catch (error) {
        this.#metrics.increment('signals.write_failed', { migration: runtime.name })
        this.#logger.warn('could not record signals in the control table; they are carried into the next report', { migration: runtime.name, error })
      }
    }
  }
}

/** This migration's counters, summed over the labels the gates do not need (reasons, targets). */
export function countsOf(snapshot: MetricsSnapshot, migration: string): SignalCounts {
  const sum = (name: string, match: Readonly<Record<string, string>>) =>
    Object.entries(snapshot.counters).reduce((total, [id, value]) => {
      const parsed = parseMetricId(id)
      if (parsed.name !== name || parsed.labels.migration !== migration) return total
      return Object.entries(match).every(([label, wanted]) => parsed.labels[label] === wanted) ? total + value : total
    }, 0)
  return {
    mirrorApplied: sum('mirror.applied', { direction: 'old-to-new' }),
    mirrorFailed: sum('mirror.dead_lettered', { direction: 'old-to-new' }),
    reverseApplied: sum('mirror.applied', { direction: 'new-to-old' }),
    reverseFailed: sum('mirror.dead_lettered', { direction: 'new-to-old' }),
    compareEqual: sum('compare.equal', {}),
    compareMismatch: sum('compare.mismatch', {}),
    readsOld: sum('read.ok', { side: 'old' }) + sum('read.error', { side: 'old' }),
    readsNew: sum('read.ok', { side: 'new' }) + sum('read.error', { side: 'new' }),
    readErrorsNew: sum('read.error', { side: 'new' }),
  }
}

function lagOf(snapshot: MetricsSnapshot, migration: string, direction: string): number {
  return snapshot.histograms[metricId('mirror.lag_ms', { migration, direction })]?.p99 ?? 0
}
