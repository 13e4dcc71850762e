/**
 * `NotedWrites`: the keys this process wrote on a captured side whose change-log entries may not be
 * applied yet, for read-your-writes. A key is forgotten when a worker of this process applies it, or
 * when a poll finds no entry of it left in the log (another process's worker applied it).
 */
import { sql } from 'kysely'
import type { CapturableTable, KeyValue } from '../model/store.js'
import { keyString } from '../model/store.js'
import type { Logger } from '../observe/logger.js'
import { logKeyJson } from './log-key.js'

/** Most keys remembered; beyond that the oldest are forgotten (their reads may then be served stale). */
const LIMIT = 100_000
const POLL_MS = 200
const POLL_KEYS = 1_000

export class NotedWrites {
  readonly #keys = new Map<string, KeyValue>()
  readonly #table: CapturableTable
  readonly #capture: string
  readonly #logger: Logger
  #timer: NodeJS.Timeout | undefined
  #closed = false

  constructor(table: CapturableTable, capture: string, logger: Logger) {
    this.#table = table
    this.#capture = capture
    this.#logger = logger
  }

  note(key: KeyValue): void {
    const id = keyString(key)
    this.#keys.delete(id)
    this.#keys.set(id, key)
    if (this.#keys.size > LIMIT) this.#keys.delete(this.#keys.keys().next().value as string)
    this.#schedule()
  }

  has(key?: KeyValue): boolean {
    return key === undefined ? this.#keys.size > 0 : this.#keys.has(keyString(key))
  }

  settle(ids: readonly string[]): void {
    for (const id of ids) this.#keys.delete(id)
  }

  close(): void {
    this.#closed = true
    if (this.#timer) clearTimeout(this.#timer)
  }

  #schedule(): void {
    if (this.#timer || this.#closed) return
    this.#timer = setTimeout(() => {
      this.#timer = undefined
      this.#poll()
        .catch((error: unknown) => this.#logger.warn('could not poll the change log for applied writes', { capture: this.#capture, error: String(error) }))
        .finally(() => {
          if (this.#keys.size > 0) this.#schedule()
        })
    }, POLL_MS)
    this.#timer.unref?.()
  }

  /** Forgets the oldest noted keys that have no entry left in the log. */
  async #poll(): Promise<void> {
    const ids = [...this.#keys.keys()].slice(0, POLL_KEYS)
    if (ids.length === 0) return
    const encoded = ids.map((id) => logKeyJson(this.#keys.get(id) as KeyValue))
    const { rows } = await this.#table.run(() =>
      sql<{ k: string }>`select distinct array_to_json(key)::text as k from cutover.change_log
        where capture = ${this.#capture} and array_to_json(key)::text = any(${encoded}::text[])`.execute(this.#table.db),
    )
    const pending = new Set(rows.map((row) => row.k))
    ids.forEach((id, i) => {
      if (!pending.has(encoded[i] as string)) this.#keys.delete(id)
    })
  }
}
