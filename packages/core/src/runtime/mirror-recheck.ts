import { compareRecords, type ComparisonRules } from '../model/compare.js'
import type { Logger } from '../observe/logger.js'
import type { Metrics } from '../observe/metrics.js'
import { type KeyValue, keyString, type Row, type Store } from '../model/store.js'
import { describeError } from './background.js'

/** A key found different from its source after it was applied, with how many re-checks led here. */
export interface Divergence {
  readonly key: KeyValue
  readonly op: 'upsert' | 'delete'
  readonly generation: number
}

export interface MirrorRecheckOptions {
  readonly source: Store
  readonly target: Store
  readonly translate: (record: Row, key: string) => Row
  readonly targetKey: (key: KeyValue) => KeyValue
  readonly compare?: ComparisonRules
  readonly delayMs: number
  /** Keys read per store call. */
  readonly readSize: number
  readonly metrics: Metrics
  readonly logger: Logger
  readonly labels: Readonly<Record<string, string>>
  /** A key to apply again. */
  readonly onDiverged: (divergence: Divergence) => void
  /** Called whenever a run ends (the queue checks whether it is idle). */
  readonly onRun: () => void
}

/** How many re-checks in a row may re-apply one key before it is left to verification. */
export const MAX_RECHECK_GENERATIONS = 3

/**
 * Without a version field two processes may apply one key in a stale order. Each applied key is
 * therefore read again on both sides `delayMs` after its write, and handed back to the queue if the
 * target differs from the mapped source, so concurrent appliers converge.
 */
export class MirrorRecheck {
  readonly #options: MirrorRecheckOptions
  readonly #due = new Map<string, { key: KeyValue; generation: number }>()
  #timer: NodeJS.Timeout | undefined
  #running: Promise<void> | undefined
  #stopped = false

  constructor(options: MirrorRecheckOptions) {
    this.#options = options
  }

  /** Keys waiting for their re-check. */
  get due(): number {
    return this.#due.size
  }

  get running(): boolean {
    return this.#running !== undefined
  }

  /** Keys waiting for their re-check, as text. */
  get dueKeys(): readonly string[] {
    return [...this.#due.keys()]
  }

  /** Marks an applied key for a re-check `delayMs` from now (one timer for all keys due). */
  schedule(key: KeyValue, generation: number): void {
    const id = keyString(key)
    if (generation >= MAX_RECHECK_GENERATIONS) {
      this.#options.metrics.increment('mirror.recheck_gave_up', this.#options.labels)
      this.#options.logger.warn('key still differs after repeated re-checks; leaving it to verification', { ...this.#options.labels, key: id })
      return
    }
    this.#due.set(id, { key, generation })
    if (this.#timer || this.#stopped) return
    this.#timer = setTimeout(() => {
      this.#timer = undefined
      void this.run()
    }, this.#options.delayMs)
    this.#timer.unref?.()
  }

  /** Re-checks every key due now; joins a run under way. Never rejects. */
  run(): Promise<void> {
    if (this.#running) return this.#running
    const due = new Map(this.#due)
    this.#due.clear()
    this.#clearTimer()
    this.#running = this.#checkAll(due).finally(() => {
      this.#running = undefined
      this.#options.onRun()
    })
    return this.#running
  }

  /** No more timers; keys still due are left to verification (and reported by the queue's close). */
  stop(): void {
    this.#stopped = true
    this.#clearTimer()
  }

  #clearTimer(): void {
    if (this.#timer) clearTimeout(this.#timer)
    this.#timer = undefined
  }

  async #checkAll(due: ReadonlyMap<string, { key: KeyValue; generation: number }>): Promise<void> {
    const entries = [...due.values()]
    for (let i = 0; i < entries.length && !this.#stopped; i += this.#options.readSize) {
      const slice = entries.slice(i, i + this.#options.readSize)
      try {
        await this.#checkSlice(slice)
      } catch (error) {
        this.#options.metrics.increment('mirror.recheck_failed', this.#options.labels)
        this.#options.logger.warn('mirror re-check failed; keys left to verification', { ...this.#options.labels, keys: slice.length, error: describeError(error) })
      }
    }
  }

  async #checkSlice(slice: readonly { key: KeyValue; generation: number }[]): Promise<void> {
    const { source, target, targetKey } = this.#options
    const keys = slice.map((entry) => entry.key)
    const sourceRows = await source.get(keys)
    const targetKeys = keys.map(targetKey)
    const targetRows = await target.get(targetKeys)
    slice.forEach((entry, index) => {
      const id = keyString(entry.key)
      const sourceRow = sourceRows.get(id)
      if (this.#converged(sourceRow, targetRows.get(keyString(targetKeys[index] as KeyValue)), id)) return
      this.#options.metrics.increment('mirror.recheck_repaired', this.#options.labels)
      this.#options.onDiverged({ key: entry.key, op: sourceRow ? 'upsert' : 'delete', generation: entry.generation + 1 })
    })
  }

  #converged(sourceRow: Row | undefined, targetRow: Row | undefined, id: string): boolean {
    if (!sourceRow || !targetRow) return !sourceRow && !targetRow
    let expected: Row
    try {
      expected = this.#options.translate(sourceRow, id)
    } catch {
      return true // the mapper rejects it: dead-lettered already, nothing to converge to
    }
    // Only the mapped fields count: the target may hold columns of its own (defaults, timestamps).
    const actual = Object.fromEntries(Object.keys(expected).map((field) => [field, targetRow[field]]))
    return compareRecords(expected, actual, this.#options.compare).equal
  }
}
