import type { Migration } from '../../model/migration.js'
import { type KeyValue, keyString, type Row, storeRecordKey } from '../../model/store.js'
import type { KeyRange } from './options.js'

/** One batch of the old store, cut at the range's end. */
export interface ReadBatch {
  /** The key the batch was read after (absent: from the first key). */
  readonly after: KeyValue | undefined
  readonly rows: readonly Row[]
  /** The batch's last key: the checkpoint after it. */
  readonly lastKey: KeyValue
  /** Nothing follows it in the range. */
  readonly finished: boolean
}

/**
 * Reads the old store in key order, one batch ahead: the next batch is scanned while this one is
 * mapped, written and verified, so the old store's read time hides behind the new store's write
 * time.
 */
export class BatchReader {
  readonly #migration: Migration<any, any>
  readonly #range: KeyRange | undefined
  #ahead: { after: KeyValue | undefined; limit: number; rows: Promise<readonly Row[]> } | undefined

  constructor(migration: Migration<any, any>, range: KeyRange | undefined) {
    this.#migration = migration
    this.#range = range
  }

  /** The batch after `after`; `undefined` when the range has no more rows. */
  async read(after: KeyValue | undefined, limit: number, options: { stale: boolean }): Promise<ReadBatch | undefined> {
    // A batch read before a pause or a hold is stale by now: read it again.
    if (options.stale || this.#ahead?.after !== after) this.#ahead = undefined
    const current = this.#ahead ?? this.#scan(after, limit)
    this.#ahead = undefined
    const scanned = await current.rows
    const { rows, reachedEnd } = clipToRange(scanned, (row) => storeRecordKey(this.#migration.old, this.#migration.key.old, row), this.#range)
    if (rows.length === 0) return undefined
    const finished = reachedEnd || scanned.length < current.limit
    if (!finished) this.#ahead = this.#scan(storeRecordKey(this.#migration.old, this.#migration.key.old, scanned.at(-1)), limit)
    return { after, rows, lastKey: storeRecordKey(this.#migration.old, this.#migration.key.old, rows.at(-1)), finished }
  }

  #scan(after: KeyValue | undefined, limit: number) {
    const rows = this.#migration.old.scan({ ...(after === undefined ? {} : { after }), limit })
    rows.catch(() => undefined) // awaited later; a failure surfaces there
    return { after, limit, rows }
  }
}

/** Cuts a scanned batch at the range's end. */
export function clipToRange(rows: readonly Row[], keyOf: (row: Row | undefined) => KeyValue, range: KeyRange | undefined): { rows: readonly Row[]; reachedEnd: boolean } {
  if (!range || (range.until === undefined && !range.beyond?.length)) return { rows, reachedEnd: false }
  const until = range.until === undefined ? undefined : keyString(range.until)
  const beyond = new Set((range.beyond ?? []).map(keyString))
  for (let i = 0; i < rows.length; i++) {
    const key = keyString(keyOf(rows[i]))
    if (key === until) return { rows: rows.slice(0, i + 1), reachedEnd: true }
    if (beyond.has(key)) return { rows: rows.slice(0, i), reachedEnd: true }
  }
  return { rows, reachedEnd: false }
}
