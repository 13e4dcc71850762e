import { CutoverError, StoreError } from '../model/errors.js'
import type { Logger } from '../observe/logger.js'

/** A failure as one line of text for logs and dead letters; driver errors keep their name. */
export function describeError(error: unknown): string {
  if (error instanceof StoreError || error instanceof CutoverError) return error.message
  if (error instanceof Error) return `${error.name}: ${error.message}`
  return String(error)
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/** Whether `work` settles within `ms`; the timer is cleared either way, so it keeps nothing alive. */
export async function finishesWithin(work: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined
  const deadline = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms)
  })
  try {
    return await Promise.race([work.then(() => true, () => true), deadline])
  } finally {
    clearTimeout(timer)
  }
}

/**
 * The logger as background work uses it: a logger that throws (a closed transport, a bug in a
 * formatter) must not turn a caught failure into an uncaught one, so its errors are dropped.
 */
export function neverThrowing(logger: Logger): Logger {
  const guard =
    (log: Logger['info']): Logger['info'] =>
    (message, fields) => {
      try {
        log.call(logger, message, fields)
      } catch {
        // Nowhere left to report it; the metrics still count what happened.
      }
    }
  return { debug: guard(logger.debug), info: guard(logger.info), warn: guard(logger.warn), error: guard(logger.error) }
}
