import type { Logger } from './logger.js'

/**
 * A warning that can repeat once per write (a stale-side write, an unattributable raw statement):
 * logged at once the first time, then at most once per interval with the number of occurrences it
 * stood for, so a hot path cannot flood the logs. Metrics still count every occurrence.
 */
export class RepeatedWarning {
  readonly #logger: Logger
  readonly #message: string
  readonly #intervalMs: number
  #nextAt = 0
  #suppressed = 0

  constructor(logger: Logger, message: string, intervalMs = 10_000) {
    this.#logger = logger
    this.#message = message
    this.#intervalMs = intervalMs
  }

  warn(fields: Readonly<Record<string, unknown>>): void {
    const now = Date.now()
    if (now < this.#nextAt) {
      this.#suppressed++
      return
    }
    this.#logger.warn(this.#message, this.#suppressed > 0 ? { ...fields, alsoSinceLastLine: this.#suppressed } : fields)
    this.#suppressed = 0
    this.#nextAt = now + this.#intervalMs
  }
}
