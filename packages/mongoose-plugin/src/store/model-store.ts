/**
 * `MongooseModelStore`: the core `Store` for one Mongoose model, usable as either side of a migration
 * (the old side of MongoDB → PostgreSQL, or either side of a MongoDB → MongoDB move).
 *
 *     const store = new MongooseModelStore(Appointment)
 *
 * - Reads and writes go straight to the driver collection (`Model.collection`): no middleware, no
 *   validation, no defaults, so the mirror never re-enters the plugin and a store write is never
 *   counted as an unmirrored write (every call runs under the `store` write origin).
 * - Keys cross the boundary in Store form (ObjectId → 24-hex string, numbers stay numbers); rows are
 *   the raw documents with the key in that form.
 * - Writes are cast through the schema (`Model.castObject`), so a mapper may produce ISO strings for
 *   Date paths or hex strings for ObjectId paths.
 * - One driver call per operation (two for `version-guard` upserts): `find({ _id: { $in } })`,
 *   keyset `_id > after` scans, an ordered `bulkWrite` per upsert, one `deleteMany` per delete
 *   (against FerretDB, per-key lookups instead of `$in`: see `#lookup`). Driver errors surface as the
 *   core's `StoreError` naming the store, the operation and (when one record is to blame) its key.
 */
import { type KeyValue, keyString, type Row, type Store, StoreError, type StoreShape, type WriteMode, type WriteResult } from '@cutover/core'
import type { Collection, Model } from 'mongoose'
import { isClosed, untilConnected, wouldBuffer } from '../connection-ready.js'
import { documentToRow, type KeyCodec, keyCodecFor } from '../keys.js'
import type { FilterNode, NewStoreReader, TranslatedQuery } from '../read/query-translation.js'
import { runAs } from '../write/write-origin.js'

/**
 * From this many keys on, one `$in` is cheaper on FerretDB v1 (SQLite) than as many equality
 * lookups: an equality lookup costs about 0.7 ms of server time plus a SQL-level scan, an `$in`
 * decodes every document once (about 25 µs each), so past roughly 90 keys it wins at any
 * collection size (measured: 100 keys in a collection of 5,000 cost the same either way; 500 keys,
 * a third as much as 500 lookups).
 */
const SCAN_LOOKUP_KEYS = 100

export interface MongooseModelStoreOptions {
  /** The key path. Default `_id`. */
  readonly keyField?: string
  /** For logs, metrics and errors. Default `mongodb:<db>.<collection>`. */
  readonly name?: string
}

/**
 * Also a `NewStoreReader`, so a model on another connection can serve translated reads when it is
 * the new side of a MongoDB → MongoDB migration. Its queries go through the model's casting (hex
 * strings become ObjectIds again) but not its middleware-bearing write paths.
 */
export class MongooseModelStore implements Store, NewStoreReader {
  readonly name: string
  readonly keyField: string
  readonly model: Model<any>
  readonly #keys: KeyCodec
  #lookupStrategy: Promise<'in' | 'equality'> | undefined

  constructor(model: Model<any>, options: MongooseModelStoreOptions = {}) {
    this.model = model
    this.keyField = options.keyField ?? '_id'
    this.name = options.name ?? `mongodb:${model.db.name}.${model.collection.collectionName}`
    this.#keys = keyCodecFor(model, this.keyField)
  }

  /** The codec between MongoDB key values and Store keys for this model. */
  get keys(): KeyCodec {
    return this.#keys
  }

  /** A raw document of this model as a Store row. */
  toRow(document: Row): Row {
    return documentToRow(document, this.keyField)
  }

  async get(keys: readonly KeyValue[]): Promise<ReadonlyMap<string, Row>> {
    const result = new Map<string, Row>()
    if (keys.length === 0) return result
    const values = keys.map((key) => this.#keys.toMongo(key))
    const documents = await this.#run('get', async (collection) => {
      if ((await this.#lookup()) === 'in' || values.length >= SCAN_LOOKUP_KEYS) return collection.find({ [this.keyField]: { $in: values } }).toArray()
      const found = await Promise.all(values.map((value) => collection.findOne({ [this.keyField]: value })))
      return found.filter((document) => document !== null)
    })
    for (const document of documents) {
      const row = this.toRow(document as Row)
      result.set(keyString(row[this.keyField] as KeyValue), row)
    }
    return result
  }

  async scan(options: { readonly after?: KeyValue; readonly limit: number }): Promise<readonly Row[]> {
    const { filter, sort } = this.#keyset(options.after)
    const documents = await this.#run('scan', (collection) => collection.find(filter).sort(sort).limit(options.limit).toArray())
    return documents.map((document) => this.toRow(document as Row))
  }

  /**
   * The keyset page after `after`, in key order. A compound key is ordered part by part (`_id.tenant`,
   * then `_id.n`), the order of a composite primary key of those columns, rather than by comparing
   * whole sub-documents (which MongoDB orders field name by field name and FerretDB v1 does not sort).
   */
  #keyset(after: KeyValue | undefined): { filter: Row; sort: Record<string, 1> } {
    const parts = this.#keys.parts
    if (!parts) return { filter: after === undefined ? {} : { [this.keyField]: { $gt: this.#keys.toMongo(after) } }, sort: { [this.keyField]: 1 } }
    const paths = parts.map((part) => `${this.keyField}.${part}`)
    const sort = Object.fromEntries(paths.map((path) => [path, 1 as const]))
    if (after === undefined) return { filter: {}, sort }
    const values = Object.values(this.#keys.toMongo(after) as Row)
    // (a > x) or (a = x and b > y) or …
    const branches = paths.map((path, i) => ({ ...Object.fromEntries(paths.slice(0, i).map((p, j) => [p, values[j]])), [path]: { $gt: values[i] } }))
    return { filter: { $or: branches }, sort }
  }

  async upsert(records: readonly Row[], mode: WriteMode): Promise<WriteResult> {
    if (records.length === 0) return { written: 0, skipped: 0 }
    const documents = records.map((record) => this.#toDocument(record))
    const keyOf = (document: Row) => ({ [this.keyField]: document[this.keyField] })
    switch (mode.kind) {
      case 'overwrite': {
        const operations = documents.map((document) => ({ replaceOne: { filter: keyOf(document), replacement: document, upsert: true } }))
        const result = await this.#write(records, (collection) => collection.bulkWrite(operations as any, { ordered: true }))
        return { written: result.upsertedCount + result.matchedCount, skipped: records.length - result.upsertedCount - result.matchedCount }
      }
      case 'insert-if-absent': {
        const result = await this.#write(records, (collection) => collection.bulkWrite(this.#insertIfAbsent(documents) as any, { ordered: true }))
        return { written: result.upsertedCount, skipped: records.length - result.upsertedCount }
      }
      case 'version-guard': {
        // Two error-free steps rather than a guarded upsert that collides on the key: MongoDB-wire
        // servers differ on whether an unordered batch goes on after a duplicate-key error (FerretDB
        // v1 stops). 1) replace where the stored version is older; 2) insert where the key is absent.
        const field = mode.field
        const replaced = await this.#write(records, (collection) =>
          collection.bulkWrite(
            documents.map((document) => ({
              replaceOne: {
                filter: { ...keyOf(document), $or: [{ [field]: { $lt: document[field] } }, { [field]: { $exists: false } }, { [field]: null }] },
                replacement: document,
              },
            })) as any,
            { ordered: true },
          ),
        )
        const inserted = await this.#write(records, (collection) => collection.bulkWrite(this.#insertIfAbsent(documents) as any, { ordered: true }))
        const written = replaced.matchedCount + inserted.upsertedCount
        return { written, skipped: records.length - written }
      }
    }
  }

  /**
   * The model as Cutover's start-up checks see it: the collection exists (or Mongoose creates it on
   * demand, `autoCreate`), the key is `_id` or a path with a unique index, and the fields are the
   * schema's top-level paths (without the version key, which Mongoose maintains itself).
   */
  async describe(): Promise<StoreShape> {
    const name = this.model.collection.collectionName
    const listed = await this.#run('describe', async () => (await this.model.db.db!.listCollections({ name }, { nameOnly: true }).toArray()).length > 0)
    const schema = this.model.schema
    const versionKey = schema.get('versionKey')
    // Every MongoDB document has an `_id` (the server adds one), even under a `{ _id: false }` schema.
    const fields = [...new Set([...Object.keys(schema.paths).map((path) => path.split('.')[0] as string), '_id'])].filter((field) => field !== versionKey)
    const uniqueIndex = schema.indexes().some(([index, options]) => options?.unique === true && Object.keys(index).length === 1 && this.keyField in index)
    const autoCreate = schema.get('autoCreate') ?? this.model.db.get('autoCreate') ?? true
    return {
      exists: listed || autoCreate !== false,
      keyExists: this.keyField === '_id' || fields.includes(this.keyField),
      keyUnique: this.keyField === '_id' || uniqueIndex || (schema.path(this.keyField) as { options?: { unique?: unknown } } | undefined)?.options?.unique === true,
      fields,
    }
  }

  /** The collection's metadata count (`estimatedDocumentCount`), not a scan. */
  async estimateCount(): Promise<number | undefined> {
    return this.#run('estimateCount', () => this.model.collection.estimatedDocumentCount())
  }

  async delete(keys: readonly KeyValue[]): Promise<number> {
    if (keys.length === 0) return 0
    const values = keys.map((key) => this.#keys.toMongo(key))
    return this.#run('delete', async (collection) => {
      if ((await this.#lookup()) === 'in') return (await collection.deleteMany({ [this.keyField]: { $in: values } })).deletedCount
      const result = await collection.bulkWrite(values.map((value) => ({ deleteOne: { filter: { [this.keyField]: value } } })), { ordered: true })
      return result.deletedCount
    })
  }

  /**
   * How to look keys up: one `$in` query, or one equality query per key. FerretDB v1 does not push
   * `$in` down to its SQL backend (every `$in` decodes the whole collection) but does push `_id`
   * equality down, so against FerretDB the store looks a few keys up one by one, concurrently, and
   * many keys (`SCAN_LOOKUP_KEYS` or more) with one `$in`.
   */
  #lookup(): Promise<'in' | 'equality'> {
    const db = this.model.db.db
    if (!db) return Promise.resolve('in') // not connected yet: ask again next time
    this.#lookupStrategy ??= db
      .admin()
      .command({ buildInfo: 1 })
      .then((info) => ('ferretdbVersion' in info || 'ferretdb' in info ? ('equality' as const) : ('in' as const)))
      .catch(() => 'in' as const)
    return this.#lookupStrategy
  }

  async find(query: TranslatedQuery): Promise<readonly Row[]> {
    const documents = await this.#run('find', async () => {
      let q = this.model.find(this.#filter(query.filter)).lean()
      if (query.sort.length > 0) q = q.sort(Object.fromEntries(query.sort.map((s) => [s.column, s.direction === 'asc' ? 1 : -1])))
      if (query.skip) q = q.skip(query.skip)
      if (query.limit) q = q.limit(query.limit)
      return (await q.exec()) as unknown as Row[]
    })
    return documents.map((document) => this.toRow(document))
  }

  async count(filter: FilterNode | undefined): Promise<number> {
    return this.#run('count', () => this.model.countDocuments(this.#filter(filter)).exec())
  }

  /** A translated filter as a MongoDB filter on this model (the inverse of the plugin's translation). */
  #filter(node: FilterNode | undefined): Row {
    if (!node) return {}
    const value = (column: string, v: unknown) => (column === this.keyField && v !== null ? this.#keys.toMongo(v as KeyValue) : v)
    switch (node.kind) {
      case 'and':
        return node.nodes.length === 0 ? {} : { $and: node.nodes.map((n) => this.#filter(n)) }
      case 'or':
        return { $or: node.nodes.map((n) => this.#filter(n)) }
      case 'in':
        return { [node.column]: { $in: node.values.map((v) => value(node.column, v)) } }
      case 'not-in':
        return { [node.column]: { $nin: node.values.map((v) => value(node.column, v)) } }
      case 'exists':
        return { [node.column]: node.exists ? { $ne: null } : null }
      case 'compare': {
        const operator = { '=': '$eq', '<>': '$ne', '<': '$lt', '<=': '$lte', '>': '$gt', '>=': '$gte' }[node.op]
        return { [node.column]: { [operator]: value(node.column, node.value) } }
      }
    }
  }

  #toDocument(record: Row): Row {
    const key = record[this.keyField] as KeyValue | undefined
    if (key === undefined || key === null) throw new StoreError(this.name, 'upsert', `record has no key field "${this.keyField}"`)
    try {
      // The key in MongoDB form first: a composite key is cast as the sub-document it stands for.
      const mongoKey = this.#keys.toMongo(key)
      const cast = (this.model as unknown as { castObject(o: Row): Row }).castObject({ ...record, [this.keyField]: mongoKey })
      return { ...cast, [this.keyField]: mongoKey }
    } catch (error) {
      throw new StoreError(this.name, 'upsert', describe(error), { key: keyString(key), cause: error })
    }
  }

  #insertIfAbsent(documents: readonly Row[]): Row[] {
    return documents.map((document) => {
      const { [this.keyField]: key, ...rest } = document
      return { updateOne: { filter: { [this.keyField]: key }, update: { $setOnInsert: rest }, upsert: true } }
    })
  }

  /**
   * The model's collection once its connection is open. Called on a connection still opening, a
   * driver call would be buffered by Mongoose (and `find` would return a promise, not a cursor, and
   * be abandoned to reject later): the store waits as a buffered call would, up to the
   * connection's `bufferTimeoutMS`, and otherwise fails with a `StoreError` the mirror retries. On
   * a connection the application closed it fails at once.
   */
  async #open(operation: string): Promise<Collection> {
    const collection = this.model.collection
    if (!wouldBuffer(collection)) return collection
    if (isClosed(collection)) throw new StoreError(this.name, operation, 'the Mongoose connection of this model is closed')
    try {
      await untilConnected(collection, operation)
    } catch (error) {
      throw new StoreError(this.name, operation, describe(error), { cause: error })
    }
    return collection
  }

  async #write<T>(records: readonly Row[], fn: (collection: Collection) => Promise<T>): Promise<T> {
    const collection = await this.#open('upsert')
    try {
      return await runAs('store', () => fn(collection))
    } catch (error) {
      const index = (error as { writeErrors?: { index: number }[] }).writeErrors?.[0]?.index
      const key = index === undefined ? undefined : records[index]?.[this.keyField]
      throw new StoreError(this.name, 'upsert', describe(error), { ...(key === undefined ? {} : { key: keyString(key as KeyValue) }), cause: error })
    }
  }

  async #run<T>(operation: string, fn: (collection: Collection) => Promise<T>): Promise<T> {
    const collection = await this.#open(operation)
    try {
      return await runAs('store', () => fn(collection))
    } catch (error) {
      throw new StoreError(this.name, operation, describe(error), { cause: error })
    }
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error)
}
