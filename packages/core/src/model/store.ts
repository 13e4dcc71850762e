import type { Kysely } from 'kysely'

/** A record as a store reads and writes it: plain fields. */
export type Row = Record<string, unknown>

/** One column of a key: a PostgreSQL integer/text/uuid, a MongoDB ObjectId as hex, … */
export type KeyPart = string | number | bigint

/** Whether a value can be a key: a plugin may hand over `null` or `undefined` from unusual documents. */
export function isKeyValue(value: unknown): value is KeyValue {
  return isKeyPart(value) || (Array.isArray(value) && value.length > 0 && value.every(isKeyPart))
}

function isKeyPart(value: unknown): value is KeyPart {
  return typeof value === 'string' || typeof value === 'bigint' || (typeof value === 'number' && Number.isFinite(value))
}

/**
 * A key of several columns (a composite primary key), in the key columns' order. Frozen: build it
 * with `compositeKey`. A key of one column is never a tuple: single keys stay plain values.
 */
export type CompositeKey = readonly KeyPart[]

/** A record key: one column's value, or a composite key. */
export type KeyValue = KeyPart | CompositeKey

export function compositeKey(...parts: KeyPart[]): CompositeKey {
  return Object.freeze([...parts])
}

export function isCompositeKey(key: KeyValue): key is CompositeKey {
  return Array.isArray(key)
}

/**
 * The text form of a key, used to match records across stores (`5`, `"5"` and `5n` are one key).
 * A composite key's is the JSON array of its parts' text (`["1","a"]`), so `[1, "a"]` and
 * `["1", "a"]` are one key too; a migration's keys all have the same arity, so it never meets a
 * single key's text.
 */
export function keyString(key: KeyValue): string {
  if (typeof key === 'string') return key
  if (Array.isArray(key)) return JSON.stringify(key.map((part) => (typeof part === 'string' ? part : part.toString())))
  return key.toString()
}

/**
 * The order of two keys as the stores sort them: numbers (and bigints) by value, text by UTF-16
 * code units when either side is text, composite keys part by part.
 */
export function compareKeys(a: KeyValue, b: KeyValue): number {
  if (Array.isArray(a) && Array.isArray(b)) {
    for (let i = 0; i < Math.min(a.length, b.length); i++) {
      const order = compareKeys(a[i] as KeyPart, b[i] as KeyPart)
      if (order !== 0) return order
    }
    return a.length - b.length
  }
  if (typeof a === 'string' || typeof b === 'string') return String(a) < String(b) ? -1 : String(a) > String(b) ? 1 : 0
  return a < b ? -1 : a > b ? 1 : 0
}

/** The key of a record: the value of `fields[0]`, or a composite key of all `fields`. */
export function recordKey(record: Row, fields: readonly string[]): KeyValue {
  if (fields.length === 1) return record[fields[0] as string] as KeyPart
  return compositeKey(...fields.map((field) => record[field] as KeyPart))
}

/**
 * The key of a record of `store`: its composite key when the store has several key fields, else the
 * value of `field` (the migration's key field for that side).
 */
export function storeRecordKey(store: Pick<Store, 'keyFields'>, field: string, record: Row | undefined): KeyValue {
  const fields = store.keyFields
  if (fields && fields.length > 1) return recordKey(record ?? {}, fields)
  return record?.[field] as KeyValue
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

/** `upsertReturning`'s answer: the counts, and what the write stored. */
export interface StoredWrite<R extends Row = Row> extends WriteResult {
  /**
   * The records this write inserted or replaced, as the store now holds them (what `get` would
   * return), by `keyString(key)`. Records it skipped are not here.
   */
  readonly stored: ReadonlyMap<string, R>
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
  /** The field holding the record key (the first key column of a composite key). */
  readonly keyField: string
  /** The key columns of a composite key, in order; absent (or one field) for a single key. */
  readonly keyFields?: readonly string[]
  /** The records with these keys that exist, by `keyString(key)`. */
  get(keys: readonly KeyValue[]): Promise<ReadonlyMap<string, R>>
  /** Up to `limit` records with key greater than `after`, in the store's key order. */
  scan(options: { readonly after?: KeyValue; readonly limit: number }): Promise<readonly R[]>
  upsert(records: readonly R[], mode: WriteMode): Promise<WriteResult>
  /**
   * Optional: `upsert` that also returns the records as stored (PostgreSQL's `returning`), so the
   * backfill's read-back of a batch needs to look up only the records the write skipped.
   */
  upsertReturning?(records: readonly R[], mode: WriteMode): Promise<StoredWrite<R>>
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
  /**
   * Present when the store is a PostgreSQL table whose changes a trigger-written change log can
   * capture (`capture: 'change-log'`, see `capture/`).
   */
  readonly capture?: CapturableTable
}

/** What trigger-based capture needs to know of a PostgreSQL table. */
export interface CapturableTable {
  /** A Kysely on the database holding the table (and the change log). */
  readonly db: Kysely<any>
  /** `schema.name` or `name` (then `public`). */
  readonly table: string
  /** The primary key columns, in key order. */
  readonly keyColumns: readonly string[]
  /** Runs queries as Cutover's own (the plugin's interceptor passes them through untouched). */
  run<T>(fn: () => Promise<T>): Promise<T>
}
