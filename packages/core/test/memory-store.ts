import { type KeyValue, keyString, type Row, type Store, type WriteMode, type WriteResult } from '../src/index.js'

/**
 * The reference `Store`: an ordered in-memory map, for the core's unit tests only. Its behaviour is
 * the contract the plugin stores must match (see the shared store contract tests).
 */
export class MemoryStore implements Store {
  readonly name: string
  readonly keyField: string
  readonly rows = new Map<string, Row>()
  /** Set to make every call fail, as an unreachable store would. */
  failing: Error | undefined
  /** Artificial latency per call, in ms. */
  latencyMs = 0
  calls = 0

  constructor(name: string, keyField = 'id', rows: Row[] = []) {
    this.name = name
    this.keyField = keyField
    for (const row of rows) this.rows.set(keyString(row[keyField] as KeyValue), structuredClone(row))
  }

  async get(keys: readonly KeyValue[]): Promise<ReadonlyMap<string, Row>> {
    await this.#enter()
    const result = new Map<string, Row>()
    for (const key of keys) {
      const row = this.rows.get(keyString(key))
      if (row) result.set(keyString(key), structuredClone(row))
    }
    return result
  }

  async scan(options: { after?: KeyValue; limit: number }): Promise<readonly Row[]> {
    await this.#enter()
    const sorted = [...this.rows.values()].sort((a, b) => compareKeys(a[this.keyField] as KeyValue, b[this.keyField] as KeyValue))
    const after = options.after
    return sorted.filter((row) => after === undefined || compareKeys(row[this.keyField] as KeyValue, after) > 0).slice(0, options.limit).map((row) => structuredClone(row))
  }

  async upsert(records: readonly Row[], mode: WriteMode): Promise<WriteResult> {
    await this.#enter()
    let written = 0
    let skipped = 0
    for (const record of records) {
      const id = keyString(record[this.keyField] as KeyValue)
      const existing = this.rows.get(id)
      const skip =
        existing !== undefined &&
        (mode.kind === 'insert-if-absent' || (mode.kind === 'version-guard' && !((existing[mode.field] as number) < (record[mode.field] as number))))
      if (skip) skipped++
      else {
        this.rows.set(id, structuredClone(record))
        written++
      }
    }
    return { written, skipped }
  }

  async delete(keys: readonly KeyValue[]): Promise<number> {
    await this.#enter()
    let deleted = 0
    for (const key of keys) if (this.rows.delete(keyString(key))) deleted++
    return deleted
  }

  async #enter(): Promise<void> {
    this.calls++
    if (this.latencyMs > 0) await new Promise((resolve) => setTimeout(resolve, this.latencyMs))
    else await Promise.resolve()
    if (this.failing) throw this.failing
  }
}

function compareKeys(a: KeyValue, b: KeyValue): number {
  if (typeof a === 'string' || typeof b === 'string') return String(a) < String(b) ? -1 : String(a) > String(b) ? 1 : 0
  return a < b ? -1 : a > b ? 1 : 0
}
