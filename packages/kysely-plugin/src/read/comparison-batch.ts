import { type KeyValue, keyString, type MigrationRuntime, type Row, type Side, type Store } from '@cutover/core'

/** One sampled key-lookup read waiting to be compared. */
export interface PendingComparison {
  readonly runtime: MigrationRuntime
  /** The side the application read. */
  readonly side: Side
  readonly keys: readonly KeyValue[]
  /** The read's rows when they are whole records of `side`; otherwise that side is read by key too. */
  readonly wholeRows: readonly Row[] | undefined
  readonly query: string
  /** `performance.now()` when the application's read began (see `ReadComparisonDetail.since`). */
  readonly since: number
}

/**
 * Compares sampled key-lookup reads in batches: whatever arrives within `lingerMs` (or up to
 * `maxKeys` keys) costs one keyed read per store, not one per application read, which is what
 * keeps a comparison sample of 1.0 affordable. Each read is still compared on its own, by its own
 * keys, so reports and guard signals are per read.
 */
export class ComparisonBatch {
  readonly #lingerMs: number
  readonly #maxKeys: number
  readonly #onError: (runtime: MigrationRuntime, error: unknown) => void
  #pending: PendingComparison[] = []
  #keys = 0
  #timer: NodeJS.Timeout | undefined

  constructor(options: { lingerMs?: number; maxKeys?: number; onError: (runtime: MigrationRuntime, error: unknown) => void }) {
    this.#lingerMs = options.lingerMs ?? 50
    this.#maxKeys = options.maxKeys ?? 500
    this.#onError = options.onError
  }

  add(comparison: PendingComparison): void {
    this.#pending.push(comparison)
    this.#keys += comparison.keys.length
    if (this.#keys >= this.#maxKeys) this.#flushSoon(0)
    else this.#flushSoon(this.#lingerMs)
  }

  #flushSoon(delay: number): void {
    if (this.#timer && delay > 0) return
    if (this.#timer) clearTimeout(this.#timer)
    this.#timer = setTimeout(() => this.#flush(), delay)
    this.#timer.unref?.()
  }

  #flush(): void {
    this.#timer = undefined
    const batch = this.#pending
    this.#pending = []
    this.#keys = 0
    const byRuntime = new Map<MigrationRuntime, PendingComparison[]>()
    for (const item of batch) {
      const list = byRuntime.get(item.runtime)
      if (list) list.push(item)
      else byRuntime.set(item.runtime, [item])
    }
    for (const [runtime, items] of byRuntime) void compareAll(runtime, items).catch((error: unknown) => this.#onError(runtime, error))
  }
}

async function compareAll(runtime: MigrationRuntime, items: readonly PendingComparison[]): Promise<void> {
  const { old: oldStore, new: newStore, key } = runtime.migration
  const needed = (side: Side) => items.filter((item) => item.side !== side || item.wholeRows === undefined).flatMap((item) => item.keys)
  const [oldRecords, newRecords] = await Promise.all([read(runtime, 'old', oldStore, needed('old')), read(runtime, 'new', newStore, needed('new'))])
  for (const [index, item] of items.entries()) {
    // Yield now and then: a large batch compared in one go would hold the event loop, and with
    // it the application's next query, for hundreds of microseconds.
    if (index > 0 && index % 8 === 0) await new Promise((resolve) => setImmediate(resolve))
    const wanted = new Set(item.keys.map(keyString))
    const pick = (side: Side, records: ReadonlyMap<string, Row>) => {
      if (item.side === side && item.wholeRows) return item.wholeRows.filter((row) => wanted.has(keyString(row[key[side]] as KeyValue)))
      return [...wanted].map((id) => records.get(id)).filter((row) => row !== undefined)
    }
    runtime.compareRead(pick('old', oldRecords), pick('new', newRecords), { query: item.query, since: item.since })
  }
}

/** Records of `keys` from one store (deduplicated), timed and reported to the guards. */
async function read(runtime: MigrationRuntime, side: Side, store: Store, keys: readonly KeyValue[]): Promise<ReadonlyMap<string, Row>> {
  if (keys.length === 0) return new Map()
  const unique = [...new Map(keys.map((key) => [keyString(key), key])).values()]
  const started = performance.now()
  try {
    const found = await store.get(unique)
    runtime.recordRead(side, true, performance.now() - started)
    return found
  } catch (error) {
    runtime.recordRead(side, false, performance.now() - started)
    throw error
  }
}
