import type { DeadLetter, DeadLetterSink } from '../control/dead-letters.js'
import type { Logger } from '../observe/logger.js'
import type { Metrics } from '../observe/metrics.js'
import { describeError, sleep } from './background.js'

export interface DeadLetterBufferOptions {
  readonly sink: DeadLetterSink
  /** Most entries held while the sink is unreachable. */
  readonly limit: number
  /** Backoff between failed writes to the sink. */
  readonly baseDelayMs: number
  readonly maxDelayMs: number
  readonly metrics: Metrics
  readonly logger: Logger
  readonly labels: Readonly<Record<string, string>>
  /** Called whenever a flush ends (the queue checks whether it is idle). */
  readonly onFlushed: () => void
}

/**
 * Dead letters on their way to their table. Entries are written in chunks of 500; while the table
 * is unreachable they are held in memory, up to `limit`, and the write is retried with backoff.
 */
export class DeadLetterBuffer {
  readonly #options: DeadLetterBufferOptions
  #entries: DeadLetter[] = []
  #flush: Promise<void> | undefined
  #stopped = false

  constructor(options: DeadLetterBufferOptions) {
    this.#options = options
  }

  /** Entries not yet in the table. */
  get held(): number {
    return this.#entries.length
  }

  get flushing(): boolean {
    return this.#flush !== undefined
  }

  /** The entries not yet in the table (what a bounded shutdown leaves behind). */
  get unflushed(): readonly DeadLetter[] {
    return [...this.#entries]
  }

  /** Holds an entry and starts a flush. False when the buffer is full and the entry is lost. */
  add(entry: DeadLetter): boolean {
    if (this.#entries.length >= this.#options.limit) {
      // The dead-letter table is unreachable and the buffer is full: this is the one place a change
      // can be lost, so it is counted and logged with its key for reconciliation to pick up.
      this.#options.metrics.increment('mirror.lost', this.#options.labels)
      this.#options.logger.error('dead-letter buffer full; change lost until reconciliation', { ...this.#options.labels, key: entry.key, reasonCode: entry.reasonCode })
      return false
    }
    this.#entries.push(entry)
    void this.flush()
    return true
  }

  /** Writes what is held; resolves when the buffer is empty (or `stop` was called). Never rejects. */
  flush(): Promise<void> {
    if (this.#flush) return this.#flush
    if (this.#entries.length === 0 || this.#stopped) return Promise.resolve()
    this.#flush = this.#writeAll().finally(() => {
      this.#flush = undefined
      this.#options.onFlushed()
    })
    return this.#flush
  }

  /** Ends the retry loop after its current attempt; held entries stay held (and are reported). */
  stop(): void {
    this.#stopped = true
  }

  async #writeAll(): Promise<void> {
    let delay = this.#options.baseDelayMs
    while (this.#entries.length > 0 && !this.#stopped) {
      const chunk = this.#entries.slice(0, 500)
      try {
        await this.#options.sink.write(chunk)
        this.#entries.splice(0, chunk.length)
        delay = this.#options.baseDelayMs
      } catch (error) {
        this.#options.metrics.increment('mirror.dead_letter_write_failed', this.#options.labels)
        this.#options.logger.warn('dead-letter table unreachable; holding entries in memory', { ...this.#options.labels, held: this.#entries.length, error: describeError(error) })
        await sleep(delay)
        delay = Math.min(this.#options.maxDelayMs, delay * 2)
      }
    }
  }
}
