/**
 * Thresholds that roll a migration back by themselves. Evaluated over a sliding window of the new
 * store's read outcomes while it serves traffic (`ramp`, `cutover`); crossing any of them, with at
 * least `minSamples` in the window, moves the migration to `rollback`.
 */
import { evaluateTriggers, type TriggerThresholds } from './rollback-triggers.js'

/** See also `TriggerThresholds`: the design source's triggers, each a statistical test. */
export interface GuardThresholds extends TriggerThresholds {
  /** Share of new-store reads that failed, 0–1. */
  readonly maxErrorRate?: number
  /** New-store p99 latency divided by old-store p99 latency. */
  readonly maxLatencyRatio?: number
  /** Share of compared reads that differed, 0–1. */
  readonly maxMismatchRate?: number
  /** Observations needed in the window before any threshold counts. Default 100. */
  readonly minSamples?: number
  /** Window length. Default 60,000 ms. */
  readonly windowMs?: number
}

export type GuardSignal =
  | { readonly kind: 'read'; readonly side: 'old' | 'new'; readonly ok: boolean; readonly latencyMs: number }
  | { readonly kind: 'comparison'; readonly equal: boolean }

export interface GuardVerdict {
  readonly trip: boolean
  readonly reason?: string
  readonly observed: { readonly errorRate: number; readonly latencyRatio: number; readonly mismatchRate: number; readonly samples: number }
  /** For a design-source trigger: which one, and the measurements and test statistic behind it. */
  readonly measurements?: Readonly<Record<string, number | string>>
}

interface Observation {
  readonly at: number
  readonly signal: GuardSignal
}

/** A sliding window of outcomes and the verdict it gives against the thresholds. */
export class HealthGuard {
  readonly #thresholds: GuardThresholds
  readonly #now: () => number
  #window: Observation[] = []
  #recorded = 0
  #lastVerdictAt = 0
  #lastVerdict: GuardVerdict | undefined

  constructor(thresholds: GuardThresholds, now: () => number = Date.now) {
    this.#thresholds = thresholds
    this.#now = now
  }

  record(signal: GuardSignal): void {
    this.#window.push({ at: this.#now(), signal })
    this.#recorded++
    if (this.#window.length > 50_000) this.#prune()
  }

  reset(): void {
    this.#window = []
    this.#lastVerdict = undefined
  }

  verdict(): GuardVerdict {
    // A verdict scans and sorts the window; asked on every read, it would cost O(n log n) per read.
    // Re-evaluated once per window/32 new observations instead (every time while the window is small).
    const added = this.#recorded - this.#lastVerdictAt
    if (this.#lastVerdict && added >= 0 && added < Math.floor(this.#window.length / 32)) return this.#lastVerdict
    this.#lastVerdictAt = this.#recorded
    this.#lastVerdict = this.#evaluate()
    return this.#lastVerdict
  }

  #evaluate(): GuardVerdict {
    this.#prune()
    const reads = this.#window.filter((o) => o.signal.kind === 'read').map((o) => o.signal as Extract<GuardSignal, { kind: 'read' }>)
    const newReads = reads.filter((r) => r.side === 'new')
    const comparisons = this.#window.filter((o) => o.signal.kind === 'comparison').map((o) => o.signal as Extract<GuardSignal, { kind: 'comparison' }>)
    const errorRate = newReads.length === 0 ? 0 : newReads.filter((r) => !r.ok).length / newReads.length
    const mismatchRate = comparisons.length === 0 ? 0 : comparisons.filter((c) => !c.equal).length / comparisons.length
    const p99 = (values: number[]) => {
      if (values.length === 0) return 0
      const sorted = [...values].sort((a, b) => a - b)
      return sorted[Math.min(sorted.length - 1, Math.floor(0.99 * sorted.length))] as number
    }
    const oldP99 = p99(reads.filter((r) => r.side === 'old' && r.ok).map((r) => r.latencyMs))
    const newP99 = p99(newReads.filter((r) => r.ok).map((r) => r.latencyMs))
    const latencyRatio = oldP99 > 0 ? newP99 / oldP99 : 0
    const observed = { errorRate, latencyRatio, mismatchRate, samples: newReads.length + comparisons.length }
    const min = this.#thresholds.minSamples ?? 100
    const t = this.#thresholds
    if (t.maxErrorRate !== undefined && newReads.length >= min && errorRate > t.maxErrorRate) {
      return { trip: true, reason: `new-store error rate ${(errorRate * 100).toFixed(2)}% > ${(t.maxErrorRate * 100).toFixed(2)}%`, observed }
    }
    if (t.maxLatencyRatio !== undefined && newReads.length >= min && oldP99 > 0 && latencyRatio > t.maxLatencyRatio) {
      return { trip: true, reason: `new-store p99 latency ${latencyRatio.toFixed(2)}× the old store's > ${t.maxLatencyRatio}×`, observed }
    }
    if (t.maxMismatchRate !== undefined && comparisons.length >= min && mismatchRate > t.maxMismatchRate) {
      return { trip: true, reason: `read mismatch rate ${(mismatchRate * 100).toFixed(2)}% > ${(t.maxMismatchRate * 100).toFixed(2)}%`, observed }
    }
    const triggered = evaluateTriggers(t, { old: reads.filter((r) => r.side === 'old'), new: newReads, comparisons: comparisons.map((c) => c.equal) })
    if (triggered) return { trip: true, reason: triggered.reason, observed, measurements: { trigger: triggered.trigger, ...triggered.measurements } }
    return { trip: false, observed }
  }

  #prune(): void {
    const cutoff = this.#now() - (this.#thresholds.windowMs ?? 60_000)
    let drop = 0
    while (drop < this.#window.length && (this.#window[drop] as Observation).at < cutoff) drop++
    if (drop > 0) this.#window = this.#window.slice(drop)
  }
}
