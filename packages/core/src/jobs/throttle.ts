import type { JobControl } from '../control/job-control.js'

/** Composable throttling, after gh-ost: every source can hold the job, and says why. */
export interface ThrottleSettings {
  /** Most rows written per second (each batch is followed by enough sleep to keep under it). */
  readonly maxRowsPerSecond?: number
  /** Sleep this many times the batch's own duration after each batch (0.5 = a third of wall time idle). */
  readonly niceRatio?: number
  /**
   * Asked before each batch (e.g. a replica-lag query): a string holds the job with that reason,
   * `undefined` lets it go. Polled again every `pollMs` while holding.
   */
  readonly query?: () => Promise<string | undefined>
  /** How often a paused or held job looks again. Default 1,000 ms. */
  readonly pollMs?: number
}

/** Why a job slowed down or waited: reported in progress and summaries. */
export interface ThrottleReason {
  readonly source: 'paused' | 'query' | 'rate-limit' | 'nice'
  readonly detail: string
  readonly waitedMs: number
}

/**
 * Decides how long a job waits before and after each batch. Holds no timers of its own; waits are
 * cut short by the abort signal so a paused job still stops promptly.
 */
export class Throttle {
  readonly #settings: ThrottleSettings
  readonly #control: JobControl
  readonly #migration: string
  /** When the rows of the batches so far are paid for under the rate limit (`performance.now()`). */
  #paidUntil: number | undefined

  constructor(settings: ThrottleSettings, control: JobControl, migration: string) {
    this.#settings = settings
    this.#control = control
    this.#migration = migration
  }

  /** Waits while the control table pauses the job or the throttle query holds it. */
  async beforeBatch(signal?: AbortSignal): Promise<ThrottleReason[]> {
    const reasons: ThrottleReason[] = []
    const poll = this.#settings.pollMs ?? 1_000
    for (;;) {
      signal?.throwIfAborted()
      const state = await this.#control.state(this.#migration)
      const held = state.paused
        ? ({ source: 'paused', detail: state.reason ?? 'paused from the control table' } as const)
        : await this.#askQuery()
      if (!held) return reasons
      const last = reasons.at(-1)
      if (last && last.source === held.source && last.detail === held.detail) reasons[reasons.length - 1] = { ...last, waitedMs: last.waitedMs + poll }
      else reasons.push({ ...held, waitedMs: poll })
      await sleep(poll, signal)
    }
  }

  /**
   * Sleeps for the rate limit and the nice ratio after a batch of `rows` that took `batchMs`.
   * `last`: the run's final batch, which only pays for its rows (no nice idle time after it).
   */
  async afterBatch(rows: number, batchMs: number, signal?: AbortSignal, options: { last?: boolean } = {}): Promise<ThrottleReason[]> {
    const reasons: ThrottleReason[] = []
    const nice = options.last ? 0 : (this.#settings.niceRatio ?? 0) * batchMs
    if (nice > 0) reasons.push({ source: 'nice', detail: `nice ratio ${this.#settings.niceRatio}`, waitedMs: Math.round(nice) })
    const state = await this.#control.state(this.#migration)
    const limit = state.maxRowsPerSecond ?? this.#settings.maxRowsPerSecond
    if (limit !== undefined && limit > 0) {
      const due = this.#rateWait(rows, limit, batchMs) - nice
      if (due > 0) reasons.push({ source: 'rate-limit', detail: `${limit} rows/s`, waitedMs: Math.round(due) })
    } else this.#paidUntil = undefined
    const total = reasons.reduce((sum, reason) => sum + reason.waitedMs, 0)
    if (total > 0) await sleep(total, signal)
    return reasons
  }

  /**
   * How long to wait so that every row so far is paid for at `limit` rows/s on the wall clock.
   * Batches overlap (one is written while the one before it is verified), so a batch's own
   * duration says nothing about the run's rate: the schedule does. It never lags the present by
   * more than this batch's duration, so a pause or a slow store earns no burst afterwards.
   */
  #rateWait(rows: number, limit: number, batchMs: number): number {
    const now = performance.now()
    this.#paidUntil = Math.max(this.#paidUntil ?? Number.NEGATIVE_INFINITY, now - batchMs) + (rows / limit) * 1_000
    return this.#paidUntil - now
  }

  async #askQuery(): Promise<{ source: 'query'; detail: string } | undefined> {
    if (!this.#settings.query) return undefined
    const reason = await this.#settings.query()
    return reason === undefined ? undefined : { source: 'query', detail: reason }
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason)
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    const onAbort = () => {
      clearTimeout(timer)
      reject(signal?.reason)
    }
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}
