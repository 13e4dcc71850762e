/**
 * Key lookups of sampled read comparisons, batched per store: whatever arrives within `lingerMs`
 * (or up to `maxKeys` keys) costs one `store.get`, not one per application read. At a comparison
 * sample of 1.0 a lookup per read is a round trip to the new store per read, and its CPU (the
 * driver's, the kernel's, the server's) is taken from the application on a small machine. Each read
 * is still compared on its own, with its own keys' records.
 */
import { isKeyValue, type KeyValue, keyString, type Row, type Store } from '@cutover/core'

interface Waiting {
  readonly keys: readonly KeyValue[]
  resolve(records: ReadonlyMap<string, Row>): void
  reject(error: unknown): void
}

/** Callers resumed per turn of the event loop, so that their comparisons do not hold it in one go. */
const RESUMED_PER_TURN = 8

export class KeyLookupBatch {
  readonly #store: Store
  readonly #lingerMs: number
  readonly #maxKeys: number
  #waiting: Waiting[] = []
  #keys = 0
  #timer: NodeJS.Timeout | undefined

  constructor(store: Store, options: { lingerMs?: number; maxKeys?: number } = {}) {
    this.#store = store
    this.#lingerMs = options.lingerMs ?? 50
    this.#maxKeys = options.maxKeys ?? 500
  }

  /** The records of `keys` found in the store, by key string; read together with other callers' keys. */
  get(keys: readonly KeyValue[]): Promise<ReadonlyMap<string, Row>> {
    if (keys.length === 0) return Promise.resolve(new Map())
    return new Promise((resolve, reject) => {
      this.#waiting.push({ keys, resolve, reject })
      this.#keys += keys.length
      if (this.#keys >= this.#maxKeys) this.#flush()
      else this.#timer ??= setTimeout(() => this.#flush(), this.#lingerMs)
    })
  }

  /**
   * Runs on a timer: nothing here may throw (an exception in a timer callback ends the process).
   * A key that cannot be a Store key fails its own caller only; a failed read fails every caller.
   */
  #flush(): void {
    if (this.#timer) clearTimeout(this.#timer)
    this.#timer = undefined
    const waiting: Waiting[] = []
    for (const caller of this.#waiting) {
      if (caller.keys.every(isStoreKey)) waiting.push(caller)
      else caller.reject(new TypeError('a comparison lookup got a key that is null, undefined or not a key value'))
    }
    this.#waiting = []
    this.#keys = 0
    if (waiting.length === 0) return
    const distinct = new Map<string, KeyValue>()
    for (const { keys } of waiting) for (const key of keys) distinct.set(keyString(key), key)
    let read: Promise<ReadonlyMap<string, Row>>
    try {
      read = this.#store.get([...distinct.values()])
    } catch (error) {
      read = Promise.reject(error)
    }
    read.then(
      (records) => this.#resume(waiting, records),
      (error: unknown) => {
        for (const caller of waiting) caller.reject(error)
      },
    ).then(undefined, (error: unknown) => {
      for (const caller of waiting) caller.reject(error)
    })
  }

  async #resume(waiting: readonly Waiting[], records: ReadonlyMap<string, Row>): Promise<void> {
    for (const [index, caller] of waiting.entries()) {
      if (index > 0 && index % RESUMED_PER_TURN === 0) await new Promise((resume) => setImmediate(resume))
      const own = new Map<string, Row>()
      for (const key of caller.keys) {
        const record = records.get(keyString(key))
        if (record) own.set(keyString(key), record)
      }
      caller.resolve(own)
    }
  }
}

/** What `keyString` accepts: a string, a finite number, a bigint, or a composite key of those. */
export function isStoreKey(key: unknown): key is KeyValue {
  return isKeyValue(key)
}
