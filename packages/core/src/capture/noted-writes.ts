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
/** How long keys are remembered after their entry was applied, for `isSettling`: longer than a compared read takes (as the mirror queue's). */
const SETTLE_MS = 1_000

export class NotedWrites {
  readonly #keys = new Map<string, KeyValue>()
  /** Keys forgotten lately, by when (`performance.now()`), oldest first. */
  readonly #applied = new Map<string, number>()
  /**
   * Writes whose keys the plugin did not learn (it ran the statement as written): every key may be
   * behind from the first until the log holds no entry at or below a watermark, the log's highest
   * id as read after the last such write committed (`'unread'` until a poll reads it). Every entry
   * of those writes is at or below it, and entries other processes add later are above it, so a
   * busy log does not keep this pending for good. Then when it was seen applied.
   */
  #unkeyedWatermark: bigint | 'unread' | undefined
  #unkeyedAppliedAt = -Infinity
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

  /** A committed write of this side whose keys are unknown: every key is behind until the log has applied it. */
  noteUnkeyed(): void {
    this.#unkeyedWatermark = 'unread'
    this.#schedule()
  }

  has(key?: KeyValue): boolean {
    return key === undefined ? this.#keys.size > 0 : this.#keys.has(keyString(key))
  }

  /** Whether a write of unknown keys this process committed may not be applied yet. */
  get unkeyedPending(): boolean {
    return this.#unkeyedWatermark !== undefined
  }

  /**
   * Whether a compared read of `key` that began at `since` may have met the new store before the
   * key's entry was applied: it is still noted, or was applied after the read began.
   */
  isSettling(key: KeyValue, since?: number): boolean {
    const id = keyString(key)
    if (this.#keys.has(id) || this.unkeyedPending) return true
    const after = Math.max(since ?? -Infinity, performance.now() - SETTLE_MS)
    const appliedAt = this.#applied.get(id)
    return (appliedAt !== undefined && appliedAt >= after) || this.#unkeyedAppliedAt >= after
  }

  settle(ids: readonly string[]): void {
    for (const id of ids) this.#forget(id)
  }

  #forget(id: string): void {
    if (!this.#keys.delete(id)) return
    const now = performance.now()
    this.#applied.delete(id)
    this.#applied.set(id, now)
    for (const [old, at] of this.#applied) {
      if (at >= now - SETTLE_MS && this.#applied.size <= LIMIT) break
      this.#applied.delete(old)
    }
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
          if (this.#keys.size > 0 || this.unkeyedPending) this.#schedule()
        })
    }, POLL_MS)
    this.#timer.unref?.()
  }

  /** Forgets the oldest noted keys that have no entry left in the log, and unkeyed writes once they are applied. */
  async #poll(): Promise<void> {
    if (this.unkeyedPending) await this.#pollUnkeyed()
    const ids = [...this.#keys.keys()].slice(0, POLL_KEYS)
    if (ids.length === 0) return
    const encoded = ids.map((id) => logKeyJson(this.#keys.get(id) as KeyValue))
    const { rows } = await this.#table.run(() =>
      sql<{ k: string }>`select distinct array_to_json(key)::text as k from cutover.change_log
        where capture = ${this.#capture} and array_to_json(key)::text = any(${encoded}::text[])`.execute(this.#table.db),
    )
    const pending = new Set(rows.map((row) => row.k))
    ids.forEach((id, i) => {
      if (!pending.has(encoded[i] as string)) this.#forget(id)
    })
  }

  async #pollUnkeyed(): Promise<void> {
    const watermark = this.#unkeyedWatermark
    if (watermark === 'unread') {
      // Read after the write committed: its entries are visible, so none is above the highest id.
      const { rows } = await this.#table.run(() => sql<{ top: string | null }>`select max(id)::text as top from cutover.change_log where capture = ${this.#capture}`.execute(this.#table.db))
      const top = rows[0]?.top
      // A write noted while this poll ran moved the watermark on: leave it to read again.
      if (this.#unkeyedWatermark !== 'unread') return
      if (top === null || top === undefined) return this.#unkeyedApplied()
      this.#unkeyedWatermark = BigInt(top)
      return
    }
    if (watermark === undefined) return
    // Entries of other processes at or below it keep it pending too: conservative, never stale.
    const { rows } = await this.#table.run(() =>
      sql<{ pending: boolean }>`select exists(select 1 from cutover.change_log where capture = ${this.#capture} and id <= ${String(watermark)}::bigint) as pending`.execute(this.#table.db),
    )
    if (rows[0]?.pending || this.#unkeyedWatermark !== watermark) return
    this.#unkeyedApplied()
  }

  #unkeyedApplied(): void {
    this.#unkeyedWatermark = undefined
    this.#unkeyedAppliedAt = performance.now()
  }
}
