/** A record as a store reads and writes it: plain fields. */
export type Row = Record<string, unknown>

/** A record key: a PostgreSQL integer/text/uuid, a MongoDB ObjectId as hex, … */
export type KeyValue = string | number | bigint

/** Whether a value can be a key: a plugin may hand over `null` or `undefined` from unusual documents. */
export function isKeyValue(value: unknown): value is KeyValue {
  return typeof value === 'string' || typeof value === 'bigint' || (typeof value === 'number' && Number.isFinite(value))
}

/** The text form of a key, used to match records across stores (`5`, `"5"` and `5n` are one key). */
export function keyString(key: KeyValue): string {
  return typeof key === 'string' ? key : key.toString()
}

/**
 * How `upsert` treats a record whose key already exists:
 * - `overwrite`: replace it;
 * - `insert-if-absent`: leave it (backfill: never overwrite what the mirror wrote);
 * - `version-guard`: replace it only if the stored `field` is older (less) than the incoming one.
 */
export type WriteMode =
  | { readonly kind: 'overwrite' }
  | { readonly kind: 'insert-if-absent' }
  | { readonly kind: 'version-guard'; readonly field: string }

export interface WriteResult {
  /** Records inserted or replaced. */
  readonly written: number
  /** Records left as they were (present already, or stored version newer). */
  readonly skipped: number
}

/**
 * What a store is, as read from its database at start-up (a table's catalog, a model's schema), so
 * that a wrong table or key name fails there and not at the first mirrored write.
 */
export interface StoreShape {
  /** Whether the table or collection exists. */
  readonly exists: boolean
  /** Whether `keyField` is a column (a schema path). */
  readonly keyExists: boolean
  /** Whether the key is enforced unique (primary key, unique index; `_id`); undefined when unknown. */
  readonly keyUnique: boolean | undefined
  /** The fields the store holds (columns, top-level schema paths), when it knows them. */
  readonly fields: readonly string[] | undefined
}

/**
 * One side of a migration, as the core sees it. The plugins implement it for a Kysely table and a
 * Mongoose model; every job (mirror, backfill, verify, reconcile) talks to stores only through it.
 */
export interface Store<R extends Row = Row> {
  /** For logs, metrics and errors: `postgres:public.users`, `mongodb:appointments`. */
  readonly name: string
  /** The field holding the record key. */
  readonly keyField: string
  /** The records with these keys that exist, by `keyString(key)`. */
  get(keys: readonly KeyValue[]): Promise<ReadonlyMap<string, R>>
  /** Up to `limit` records with key greater than `after`, in the store's key order. */
  scan(options: { readonly after?: KeyValue; readonly limit: number }): Promise<readonly R[]>
  upsert(records: readonly R[], mode: WriteMode): Promise<WriteResult>
  /** Deletes the records with these keys; returns how many existed. */
  delete(keys: readonly KeyValue[]): Promise<number>
  /**
   * The safety net after `complete`: refuse every write from `from` on (`undefined` lifts it).
   * Optional: a store that cannot enforce it leaves it out, and the plugins refuse the writes they
   * see instead.
   */
  setReadOnly?(migration: string, from: Date | undefined): Promise<void>
  /** Optional: what the store is, for the start-up checks (`createCutover`, phase changes). */
  describe?(): Promise<StoreShape>
  /**
   * Roughly how many records there are, cheaply (catalog statistics, not a count): for progress
   * and ETAs only. `undefined` when the store has no estimate.
   */
  estimateCount?(): Promise<number | undefined>
}
