import type { Kysely } from 'kysely'

/** A record as a store reads and writes it: plain fields. */
export type Row = Record<string, unknown>

/** A record key: a PostgreSQL integer/text/uuid, a MongoDB ObjectId as hex, … */
export type KeyValue = string | number | bigint

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
