import { type Kysely, sql } from 'kysely'
import { redactDriverText } from '../observe/driver-redaction.js'
import type { KeyValue, Store } from '../model/store.js'
import { keyArity, keyFromText, loadKey, storeKey } from '../model/stored-key.js'
import { PayloadSealer } from './sealed-payload.js'

/** A write that could not be applied to the other store, kept so that nothing is lost silently. */
export interface DeadLetter {
  readonly migration: string
  readonly direction: 'old-to-new' | 'new-to-old'
  /** The key in the source (authoritative) store: its `keyString`. */
  readonly key: string
  /**
   * The key itself, when the writer has it: stored with its parts' types (`StoredKey`), so a replay
   * reads back exactly this value, a composite key as its parts.
   */
  readonly keyValue?: KeyValue
  readonly op: 'upsert' | 'delete'
  /** `MAPPER_REJECTED`, `STORE_FAILED`, `QUEUE_FULL`, … */
  readonly reasonCode: string
  readonly reason: string
  /** Fields named by the reason (the mapper's zod issues). */
  readonly fields?: readonly string[]
  /** The source record as JSON, when there was one. */
  readonly payload?: unknown
  /** Path patterns of `payload` whose values are sensitive: sealed at rest (`PayloadSealer`). */
  readonly sensitive?: readonly string[]
  readonly attempts: number
}

export interface StoredDeadLetter extends DeadLetter {
  readonly id: string
  readonly createdAt: Date
}

/** Where the mirror queue puts what it gave up on. */
export interface DeadLetterSink {
  write(entries: readonly DeadLetter[]): Promise<void>
}

/** The durable dead-letter table `cutover.dead_letters` (see `ensureSchema`). */
export class DeadLetterTable implements DeadLetterSink {
  readonly #sealer: PayloadSealer

  /** `sealer` default: AES-256-GCM with `CUTOVER_PAYLOAD_KEY`, or sensitive values left out without it. */
  constructor(
    readonly db: Kysely<any>,
    options: { sealer?: PayloadSealer } = {},
  ) {
    this.#sealer = options.sealer ?? new PayloadSealer()
  }

  async write(entries: readonly DeadLetter[]): Promise<void> {
    if (entries.length === 0) return
    await this.db
      .insertInto('cutover.dead_letters')
      .values(
        entries.map((entry) => ({
          migration: entry.migration,
          direction: entry.direction,
          key: entry.key,
          ...storedKeyColumns(entry.keyValue),
          op: entry.op,
          reason_code: entry.reasonCode,
          reason: redactDriverText(entry.reason),
          fields: [...(entry.fields ?? [])],
          payload: entry.payload === undefined ? null : toJson(this.#sealer.seal(entry.payload, entry.sensitive, entry)),
          attempts: entry.attempts,
        })),
      )
      .execute()
  }

  /**
   * Writes the entries that have no open dead letter yet for the same key, direction and reason,
   * so a job run again over the same keys (reconcile) records a failure once, not once per run.
   */
  async writeUnlessOpen(entries: readonly DeadLetter[]): Promise<void> {
    if (entries.length === 0) return
    const identity = (e: { migration: string; direction: string; key: string; reasonCode: string; reason: string }) =>
      JSON.stringify([e.migration, e.direction, e.key, e.reasonCode, e.reason])
    const open = await this.db
      .selectFrom('cutover.dead_letters')
      .select(['migration', 'direction', 'key', 'reason_code', 'reason'])
      .where('migration', 'in', [...new Set(entries.map((e) => e.migration))])
      .where('key', 'in', [...new Set(entries.map((e) => e.key))])
      .where('resolved_at', 'is', null)
      .execute()
    const seen = new Set(open.map((row) => identity({ ...row, reasonCode: row.reason_code })))
    const fresh = entries.filter((entry) => !seen.has(identity(entry)) && seen.add(identity(entry)))
    await this.write(fresh)
  }

  /** Unresolved entries, oldest first. */
  async open(
    migration: string,
    options: { direction?: DeadLetter['direction']; limit?: number; afterId?: string; newestFirst?: boolean } = {},
  ): Promise<StoredDeadLetter[]> {
    let query = this.db
      .selectFrom('cutover.dead_letters')
      .selectAll()
      .where('migration', '=', migration)
      .where('resolved_at', 'is', null)
      .orderBy('id', options.newestFirst ? 'desc' : 'asc')
      .limit(options.limit ?? 1_000)
    if (options.direction) query = query.where('direction', '=', options.direction)
    if (options.afterId) query = query.where('id', '>', options.afterId)
    const rows = await query.execute()
    return rows.map((row) => ({
      id: String(row.id),
      migration: row.migration,
      direction: row.direction,
      key: row.key,
      ...loadedKey(row),
      op: row.op,
      reasonCode: row.reason_code,
      reason: row.reason,
      fields: row.fields,
      payload: row.payload === null ? undefined : this.#sealer.open(JSON.parse(row.payload), { migration: row.migration, key: row.key }),
      attempts: row.attempts,
      createdAt: row.created_at,
    }))
  }

  async countOpen(migration: string): Promise<number> {
    const row = await this.db
      .selectFrom('cutover.dead_letters')
      .select(sql<string>`count(*)`.as('n'))
      .where('migration', '=', migration)
      .where('resolved_at', 'is', null)
      .executeTakeFirstOrThrow()
    return Number(row.n)
  }

  /** Counts of open entries by reason code, for summaries. */
  async countByReason(migration: string): Promise<Record<string, number>> {
    const rows = await this.db
      .selectFrom('cutover.dead_letters')
      .select(['reason_code', sql<string>`count(*)`.as('n')])
      .where('migration', '=', migration)
      .where('resolved_at', 'is', null)
      .groupBy('reason_code')
      .execute()
    return Object.fromEntries(rows.map((row) => [row.reason_code, Number(row.n)]))
  }

  async resolve(ids: readonly string[], resolution: string): Promise<void> {
    if (ids.length === 0) return
    await this.db
      .updateTable('cutover.dead_letters')
      .set({ resolved_at: sql`now()`, resolution })
      .where('id', 'in', [...ids])
      .execute()
  }

  async recordAttempt(ids: readonly string[], reason: string): Promise<void> {
    if (ids.length === 0) return
    await this.db
      .updateTable('cutover.dead_letters')
      .set({ attempts: sql`attempts + 1`, reason: redactDriverText(reason) })
      .where('id', 'in', [...ids])
      .execute()
  }
}

/** The `key_type`/`key_value` columns of a typed key (dead letters and quarantine). */
export function storedKeyColumns(key: KeyValue | undefined): { key_type: string | null; key_value: string | null } {
  if (key === undefined) return { key_type: null, key_value: null }
  const stored = storeKey(key)
  return { key_type: stored.type, key_value: stored.text }
}

/** `keyValue` from a row with typed-key columns, when it has them. */
export function loadedKey(row: { key_type?: string | null; key_value?: string | null }): { keyValue?: KeyValue } {
  if (!row.key_type || row.key_value === null || row.key_value === undefined) return {}
  return { keyValue: loadKey({ text: row.key_value, type: row.key_type as 'string' }) }
}

/**
 * The key of an entry as `store` (the side it was read from) takes it: the typed key when it was
 * stored, else the key rebuilt from its text and the store's number of key columns (entries of
 * writers that kept only the text), else the text.
 */
export function entryKey(entry: { readonly key: string; readonly keyValue?: KeyValue }, store: Pick<Store, 'keyFields'>): KeyValue {
  return entry.keyValue ?? keyFromText(entry.key, keyArity(store)) ?? entry.key
}

/** JSON for payloads: bigint as string, ObjectId/Date through their own toJSON. */
export function toJson(value: unknown): string {
  return JSON.stringify(value, (_key, v) => (typeof v === 'bigint' ? v.toString() : v))
}
