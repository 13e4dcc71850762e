import type { Store, Row, StoredWrite, WriteMode } from '../../model/store.js'
import { sleep } from '../../runtime/background.js'

const WRITE_ATTEMPTS = 3

export interface IsolatedWrite {
  readonly written: number
  readonly skipped: number
  /** The records written as the store holds them, by key, when it can say (`Store.upsertReturning`). */
  readonly stored: ReadonlyMap<string, Row>
  /** The records the store refused one by one, with its error. */
  readonly refused: readonly { readonly record: Row; readonly error: unknown }[]
}

/**
 * Writes a batch; when the store refuses it, retries (transient failures), then halves it until the
 * records it refuses are alone, so one bad record costs a few extra statements, not the batch. If
 * nothing at all could be written, the store itself is failing: that is thrown, not quarantined.
 */
export async function writeIsolating(store: Store, records: readonly Row[], mode: WriteMode): Promise<IsolatedWrite> {
  if (records.length === 0) return { written: 0, skipped: 0, stored: new Map(), refused: [] }
  let lastError: unknown
  for (let attempt = 1; attempt <= WRITE_ATTEMPTS; attempt++) {
    try {
      const result = await upsertStoring(store, records, mode)
      return { ...result, refused: [] }
    } catch (error) {
      lastError = error
      if (attempt < WRITE_ATTEMPTS) await sleep(50 * 2 ** attempt)
    }
  }
  const outcome = { written: 0, skipped: 0, stored: new Map<string, Row>(), refused: [] as { record: Row; error: unknown }[] }
  let anyWritten = false
  const bisect = async (slice: readonly Row[]): Promise<void> => {
    try {
      const result = await upsertStoring(store, slice, mode)
      outcome.written += result.written
      outcome.skipped += result.skipped
      for (const [key, row] of result.stored) outcome.stored.set(key, row)
      anyWritten = true
    } catch (error) {
      if (slice.length === 1) outcome.refused.push({ record: slice[0] as Row, error })
      else {
        const middle = Math.ceil(slice.length / 2)
        await bisect(slice.slice(0, middle))
        await bisect(slice.slice(middle))
      }
    }
  }
  if (records.length > 1) {
    const middle = Math.ceil(records.length / 2)
    await bisect(records.slice(0, middle))
    await bisect(records.slice(middle))
  } else {
    outcome.refused.push({ record: records[0] as Row, error: lastError })
  }
  // Nothing written and not every refusal is about its record: the store is failing, not the data.
  if (!anyWritten && !outcome.refused.every((r) => isRecordError(r.error))) throw lastError
  return outcome
}

/** `upsertReturning` where the store has it (the read-back then skips what it returned), else `upsert`. */
async function upsertStoring(store: Store, records: readonly Row[], mode: WriteMode): Promise<StoredWrite> {
  if (store.upsertReturning) return store.upsertReturning(records, mode)
  return { ...(await store.upsert(records, mode)), stored: NOTHING_STORED }
}

const NOTHING_STORED: ReadonlyMap<string, Row> = new Map()

/** A failure that is about the record (constraint, type), not the store being unreachable. */
export function isRecordError(error: unknown): boolean {
  const code = (error as { cause?: { code?: string } }).cause?.code
  return typeof code === 'string' && /^(22|23)/.test(code)
}

/** Why the store refused a record, without the values a driver echoes. */
export function storeReason(error: unknown): string {
  const cause = (error as { cause?: { code?: string; constraint?: string; detail?: string } }).cause
  if (cause?.code === '23505') return `unique constraint ${cause.constraint ?? ''} violated`.replace('  ', ' ')
  if (cause?.code) return `PostgreSQL error ${cause.code}${cause.constraint ? ` on ${cause.constraint}` : ''}`
  return error instanceof Error ? error.message.replace(/\(.*?\)=\(.*?\)/g, '(…)') : String(error)
}
