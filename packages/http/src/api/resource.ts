import { HttpError, COMPAT_ERROR_CODES } from '../versioning/http-error.js'
import type { KeyValue, Row, Store } from '@cutover/core'

/**
 * The application's side of a resource, always in HEAD's shape: the compatibility layer converts
 * everything else. `replace` writes the whole record (PATCH is answered by merging onto `get`).
 */
export interface ResourceHandlers {
  list(page: { readonly limit: number; readonly after?: string }): Promise<readonly Row[]>
  get(key: string): Promise<Row | undefined>
  /** Throws `HttpError(409, …)` when the key exists. */
  create(record: Row): Promise<Row>
  replace(key: string, record: Row): Promise<Row>
  remove(key: string): Promise<boolean>
  /** A key for a POST body without one (e.g. `nextval` of the table's sequence). */
  newKey?(): Promise<KeyValue>
}

export interface StoreResourceOptions {
  /** Path segment → key value, e.g. `Number` for an integer key. Default: digits become numbers. */
  readonly parseKey?: (text: string) => KeyValue
  readonly newKey?: () => Promise<KeyValue>
}

/** Resource handlers over a Cutover `Store` of the new shape (a `KyselyTableStore`, a `MongooseModelStore`). */
export function storeResource(store: Store, options: StoreResourceOptions = {}): ResourceHandlers {
  const parse = options.parseKey ?? ((text: string) => (/^-?\d{1,15}$/.test(text) ? Number(text) : text))
  const one = async (key: string) => [...(await store.get([parse(key)])).values()][0]
  return {
    list: (page) => store.scan({ limit: page.limit, ...(page.after === undefined ? {} : { after: parse(page.after) }) }),
    get: one,
    async create(record) {
      const result = await store.upsert([record], { kind: 'insert-if-absent' })
      const key = String(record[store.keyField])
      if (result.written === 0) throw new HttpError(409, COMPAT_ERROR_CODES.conflict, `a record with ${store.keyField} ${key} exists`, [{ path: store.keyField, message: 'already exists' }], { key })
      return (await one(key)) ?? record
    },
    async replace(key, record) {
      await store.upsert([record], { kind: 'overwrite' })
      return (await one(key)) ?? record
    },
    remove: async (key) => (await store.delete([parse(key)])) > 0,
    ...(options.newKey ? { newKey: options.newKey } : {}),
  }
}
