/**
 * A read in new-store terms: what a plugin that translates its ORM's queries (the Mongoose plugin's
 * MongoDB filters) hands to whatever runs them on the new store (a `NewStoreReader`, e.g. the
 * Kysely plugin's `KyselyQueryReader` for a PostgreSQL table). Store-neutral, so that neither side
 * imports the other; the semantics are MongoDB's where SQL differs, and a reader must render them so.
 */

/**
 * A filter on new-store columns:
 * - `=` with `null` matches NULL (`is null`); `<>` and `not-in` also match NULL (MongoDB's `$ne` and
 *   `$nin` match documents where the field is missing or null);
 * - `exists` is `is not null` / `is null` (a store without "missing" cannot tell the two apart);
 * - `and` of no nodes matches every row; `in` of no values matches none.
 */
export type FilterNode =
  | { readonly kind: 'and' | 'or'; readonly nodes: readonly FilterNode[] }
  | { readonly kind: 'compare'; readonly column: string; readonly op: '=' | '<>' | '<' | '<=' | '>' | '>='; readonly value: unknown }
  | { readonly kind: 'in' | 'not-in'; readonly column: string; readonly values: readonly unknown[] }
  | { readonly kind: 'exists'; readonly column: string; readonly exists: boolean }

export interface SortKey {
  readonly column: string
  readonly direction: 'asc' | 'desc'
}

/** A read in new-store terms. Readers return whole rows; ascending sorts put NULLs first, as MongoDB does. */
export interface TranslatedQuery {
  /** Undefined: every row. */
  readonly filter: FilterNode | undefined
  readonly sort: readonly SortKey[]
  readonly limit?: number
  readonly skip?: number
}

/** Runs translated reads on the new store. The application provides it for its new store (e.g. a Kysely table). */
export interface NewStoreReader {
  find(query: TranslatedQuery): Promise<readonly Record<string, unknown>[]>
  count(filter: FilterNode | undefined): Promise<number>
}
