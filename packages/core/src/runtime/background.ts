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
