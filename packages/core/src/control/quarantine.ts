import { type Kysely, sql, type Transaction } from 'kysely'
import type { KeyValue } from '../model/store.js'
import { loadedKey, storedKeyColumns, toJson } from './dead-letters.js'
import { PayloadSealer } from './sealed-payload.js'

/**
 * A source record a job could not carry over: the mapper rejected it, or the new store refused it
 * (a constraint the old data breaks). Kept whole, so nothing is lost and it can be fixed and
 * replayed; the job goes on without it.
 */
export interface QuarantinedRecord {
  readonly migration: string
  /** The source key's `keyString`. */
  readonly key: string
  /** The key itself, when the writer has it: stored with its parts' types (see `DeadLetter.keyValue`). */
  readonly keyValue?: KeyValue
  /** `MAPPER_REJECTED`, `STORE_REJECTED`, … */
  readonly reasonCode: string
  /** Readable reason; names fields, never values. */
  readonly reason: string
  readonly fields: readonly string[]
  /** The raw source record. */
  readonly payload: unknown
  /** Path patterns of `payload` whose values are sensitive: sealed at rest (`PayloadSealer`). */
  readonly sensitive?: readonly string[]
}

export interface StoredQuarantinedRecord extends QuarantinedRecord {
  readonly id: string
  readonly createdAt: Date
}

/**
 * `cutover.quarantine`, one open entry per key: the dead-letter table is for mirrored changes, this
 * one for history the backfill could not copy. Unique per key so a backfill batch re-run after a
 * crash quarantines its records once, not twice.
 */
export class QuarantineTable {
  readonly #sealer: PayloadSealer

  /** `sealer` default: AES-256-GCM with `CUTOVER_PAYLOAD_KEY`, or sensitive values left out without it. */
  constructor(
    readonly db: Kysely<any>,
    options: { sealer?: PayloadSealer } = {},
  ) {
    this.#sealer = options.sealer ?? new PayloadSealer()
  }

  async write(trx: Transaction<any> | Kysely<any>, records: readonly QuarantinedRecord[]): Promise<void> {
    if (records.length === 0) return
    await trx
      .insertInto('cutover.quarantine')
      .values(
        records.map((r) => ({
          migration: r.migration,
          key: r.key,
          ...storedKeyColumns(r.keyValue),
          reason_code: r.reasonCode,
          reason: r.reason,
          fields: [...r.fields],
          payload: toJson(this.#sealer.seal(r.payload, r.sensitive, r)),
        })),
      )
      .onConflict((oc) =>
        oc.columns(['migration', 'key']).doUpdateSet({
          key_type: sql.ref('excluded.key_type'),
          key_value: sql.ref('excluded.key_value'),
          reason_code: sql.ref('excluded.reason_code'),
          reason: sql.ref('excluded.reason'),
          fields: sql.ref('excluded.fields'),
          payload: sql.ref('excluded.payload'),
          resolved_at: null,
          resolution: null,
        }),
      )
      .execute()
  }

  async open(migration: string, options: { limit?: number; afterId?: string } = {}): Promise<StoredQuarantinedRecord[]> {
    let query = this.db
      .selectFrom('cutover.quarantine')
      .selectAll()
      .where('migration', '=', migration)
      .where('resolved_at', 'is', null)
      .orderBy('id')
      .limit(options.limit ?? 1_000)
    if (options.afterId) query = query.where('id', '>', options.afterId)
    const rows = await query.execute()
    return rows.map((row) => ({
      id: String(row.id),
      migration: row.migration,
      key: row.key,
      ...loadedKey(row),
      reasonCode: row.reason_code,
      reason: row.reason,
      fields: row.fields,
      payload: row.payload === null ? undefined : this.#sealer.open(JSON.parse(row.payload), { migration: row.migration, key: row.key }),
      createdAt: row.created_at,
    }))
  }

  /** Open entries by reason (`reason_code: reason`), for summaries. */
  async countByReason(migration: string): Promise<Record<string, number>> {
    const rows = await this.db
      .selectFrom('cutover.quarantine')
      .select(['reason_code', 'reason', sql<string>`count(*)`.as('n')])
      .where('migration', '=', migration)
      .where('resolved_at', 'is', null)
      .groupBy(['reason_code', 'reason'])
      .execute()
    return Object.fromEntries(rows.map((row) => [`${row.reason_code}: ${row.reason}`, Number(row.n)]))
  }

  async resolve(migration: string, keys: readonly string[], resolution: string): Promise<void> {
    if (keys.length === 0) return
    await this.db
      .updateTable('cutover.quarantine')
      .set({ resolved_at: sql`now()`, resolution })
      .where('migration', '=', migration)
      .where('key', 'in', [...keys])
      .where('resolved_at', 'is', null)
      .execute()
  }
}
