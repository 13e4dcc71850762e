import { CutoverError, StoreError } from '../model/errors.js'

/** A failure as one line of text for logs and dead letters; driver errors keep their name. */
export function describeError(error: unknown): string {
  if (error instanceof StoreError || error instanceof CutoverError) return error.message
  if (error instanceof Error) return `${error.name}: ${error.message}`
  return String(error)
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}
