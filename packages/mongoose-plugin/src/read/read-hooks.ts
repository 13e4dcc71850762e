/**
 * Reads through a migrated model: `find`, `findOne` (and so `findById`), `countDocuments`.
 *
 * - `compare` (and every phase that compares): a sample of reads (`runtime.sampleComparison()`) is
 *   also run on the other store and compared with `runtime.compareRead`, after the application has
 *   its result (`setImmediate`, never awaited by the query): translated queries through the
 *   `NewStoreReader`, the rest by key (the returned documents' keys fetched with `store.get`,
 *   batched across reads by `KeyLookupBatch`). On the request path only the documents and the
 *   query's parts are copied; the comparison is planned after the caller has resumed.
 * - `ramp`: reads whose routing key falls inside the percentage (`runtime.readSide()`) and that are
 *   translatable (or key lookups) are served from the new store: rows mapped backward, cast through
 *   the schema and hydrated into real documents (`Model.hydrate`; lean reads stay plain objects).
 *   Any new-store failure, including a mapper rejection, falls back to MongoDB. Untranslatable
 *   reads stay on MongoDB and are counted (`read.untranslatable`).
 * - `cutover`: the same routing with every translatable read going to the new store.
 *
 * Reads with `populate` are never served from the new store (population is MongoDB-side).
 */
import type { KeyValue, MigrationRuntime, Row, Store } from '@cutover/core'
import { compareKeys, keyString, storeRecordKey } from '@cutover/core'
import type { Model, Schema } from 'mongoose'
import { isPlainObject, keysPinnedBy } from '../write/affected-keys.js'
import { type BackgroundOwner, guarded } from '../background.js'
import { isStoreKey, KeyLookupBatch } from './key-lookup-batch.js'
import { documentToRow, roundTripStoreKey, storeKey, uncastKey } from '../keys.js'
import type { ModelBinding } from '../model-binding.js'
import { type FieldMapping, translateFilter, translateQuery, type TranslatedQuery } from './query-translation.js'

export type { NewStoreReader } from './query-translation.js'

const READ_OPS = ['find', 'findOne', 'countDocuments'] as const
type ReadOp = (typeof READ_OPS)[number]

/** What the read hooks remember about one query between its pre and post hook. */
interface ReadState {
  readonly binding: ModelBinding
  readonly started: number
  served: 'old' | 'new'
  /** New-store rows the application's result was built from (served from new). */
  newRows?: readonly Row[]
  /** The plan the new store served (its filter cast once, before MongoDB would have cast it). */
  plan?: ReadPlan
}

/** A read as both stores can run it. */
interface ReadPlan {
  readonly op: ReadOp
  /** The cast MongoDB filter. */
  readonly filter: Row
  readonly sort: Row | undefined
  readonly limit: number | undefined
  readonly skip: number | undefined
  readonly projection: Row | undefined
  readonly lean: boolean
  /** Whether the documents get the schema's defaults for missing paths (`setOptions({ defaults: false })` turns them off). */
  readonly defaults: boolean
  /** Keys when the filter is nothing but a key lookup. */
  readonly keys: readonly unknown[] | undefined
  /** Set when the filter, sort and paging translate for the `NewStoreReader`. */
  readonly translated: TranslatedQuery | undefined
  /** Why it cannot be served from the new store, if it cannot. */
  readonly unservable: string | undefined
}

const states = new WeakMap<object, ReadState>()

export function installReadHooks(schema: Schema, bindingOf: (model: Model<any>) => ModelBinding | undefined): void {
  // Synchronous unless the read goes to the new store, so that reads served by MongoDB pay no extra tick.
  schema.pre([...READ_OPS], { document: false, query: true }, function routeRead(this: any): Promise<void> | undefined {
    const binding = bindingOf(this.model)
    if (!binding) return undefined
    const behavior = binding.runtime.behaviorFor()
    if (behavior.reads === 'old' && !behavior.compareReads) return undefined
    const state: ReadState = { binding, started: performance.now(), served: 'old' }
    states.set(this, state)
    // Read-your-writes: while this process has a change of these keys (of any key, for reads not
    // by key) that the mirror has not applied, the new store may be behind; MongoDB serves.
    if (behavior.reads === 'old' || binding.runtime.readSideFor(pinnedStoreKeys(this, binding)) !== 'new') return undefined
    return readFromNew(this, binding, state)
  })

  schema.post([...READ_OPS], { document: false, query: true }, function compareReadLater(this: any, result: unknown) {
    const state = states.get(this)
    if (!state) return
    states.delete(this)
    // Runs in the application's call: nothing here may fail its read.
    guarded(backgroundOwner(state.binding), 'compare.failed', 'read comparison failed', () => scheduleComparison(this, state, result))
  })
}

/** Records the read, and for a sampled one snapshots what the comparison needs and runs it after the caller resumes. */
function scheduleComparison(query: any, state: ReadState, result: unknown): void {
  const { runtime } = state.binding
  if (state.served === 'old') runtime.recordRead('old', true, performance.now() - state.started)
  if (!runtime.sampleComparison()) return
  // Snapshot now what the application may change once it has its result (its documents, the
  // query object); planning the comparison waits until after the caller has resumed.
  const shape = shapeOf(query, 'cast')
  const oldRows = state.served === 'old' && shape.op !== 'countDocuments' ? rowsOf(result, state.binding) : undefined
  const name = `${query.model.modelName}.${shape.op}`
  setImmediate(() =>
    guarded(backgroundOwner(state.binding), 'compare.failed', 'read comparison failed', () => compareInBackground(state, state.plan ?? planRead(shape, state.binding), result, oldRows, name), {
      query: name,
    }),
  )
}

function backgroundOwner(binding: ModelBinding): BackgroundOwner {
  return { logger: binding.logger, migration: binding.runtime.name, ...(binding.metrics ? { metrics: binding.metrics } : {}) }
}

/** The keys a query's filter pins (its only condition), in Store form; undefined when it is not a key lookup or a key is unusable. */
function pinnedStoreKeys(query: any, binding: ModelBinding): KeyValue[] | undefined {
  try {
    const filter = query.getFilter() as Row
    if (Object.keys(filter).length !== 1) return undefined
    const keys = keysPinnedBy(filter, binding.keyField)?.map((key) => binding.keys.toStore(uncastKey(key, binding.keyField)))
    return keys?.every(isStoreKey) ? keys : undefined
  } catch {
    return undefined
  }
}

/** Serves a read from the new store (throwing Kareem's skip with the result), or returns to let MongoDB serve it. */
/** A read the new store cannot answer as MongoDB would: left to MongoDB, counted and logged. */
function staysOnMongo(binding: ModelBinding, reason: string): void {
  binding.metrics?.increment('read.untranslatable', { migration: binding.runtime.name })
  binding.logger.debug('read stays on MongoDB: not translatable', { migration: binding.runtime.name, reason })
}

async function readFromNew(query: any, binding: ModelBinding, state: ReadState): Promise<void> {
  let plan: ReadPlan
  try {
    const shape = shapeOf(query, 'uncast')
    // Decided before casting where it can be: casting runs the schema's setters, and a read that
    // stays on MongoDB should run them once, as it does without the plugin.
    const early = unservableUncast(shape, binding)
    plan = early === undefined ? planRead(shape, binding) : ({ unservable: early } as ReadPlan)
  } catch {
    return // e.g. a CastError: MongoDB's path raises it the way the application expects
  }
  if (plan.unservable !== undefined) return staysOnMongo(binding, plan.unservable)
  let served: { rows: readonly Row[]; result: unknown } | undefined
  try {
    served = await serveFromNew(query, binding, plan)
    binding.runtime.recordRead('new', true, performance.now() - state.started)
  } catch (error) {
    if (error instanceof AmbiguousPage) return staysOnMongo(binding, error.message)
    binding.runtime.recordRead('new', false, performance.now() - state.started)
    binding.metrics?.increment('read.fallback', { migration: binding.runtime.name })
    binding.logger.warn('new store read failed; served from MongoDB', { migration: binding.runtime.name, error })
    return
  }
  state.served = 'new'
  state.newRows = served.rows
  state.plan = plan
  // Kareem's skip: Mongoose uses this result instead of running the query on MongoDB.
  throw query.model.base.skipMiddlewareFunction(served.result)
}

/** A query's parts as they were when it ran (shallow copies: the application may reuse the query). */
interface ReadShape {
  readonly op: ReadOp
  readonly lean: boolean
  /** Lean options beyond `true` (transform, virtuals, getters, defaults, versionKey). */
  readonly leanOptions: boolean
  readonly defaults: boolean
  readonly populate: unknown
  readonly options: { readonly sort?: Row; readonly limit?: number; readonly skip?: number; readonly session?: unknown; readonly collation?: unknown; readonly explain?: unknown }
  readonly fields: Row | undefined
  readonly filter: Row
  /** Casts a filter through the query's model and options. */
  cast(filter: Row): Row
}

/**
 * The shape of a query, before it ran (`uncast`: its filter is cast when planned) or after
 * (`cast`: Mongoose cast the filter in place to run it, so it is not cast twice).
 */
function shapeOf(query: any, filter: 'cast' | 'uncast'): ReadShape {
  const mongooseOptions = (query._mongooseOptions ?? {}) as { lean?: unknown; populate?: unknown; defaults?: unknown }
  const fields = query.projection() as Row | undefined
  return {
    op: query.op as ReadOp,
    lean: Boolean(mongooseOptions.lean),
    leanOptions: typeof mongooseOptions.lean === 'object' && mongooseOptions.lean !== null && Object.keys(mongooseOptions.lean).length > 0,
    defaults: mongooseOptions.defaults !== false,
    populate: mongooseOptions.populate,
    options: { ...query.getOptions() },
    fields: fields ? { ...fields } : undefined,
    filter: { ...query.getFilter() },
    // Casting runs setters and writes into the filter's nested objects, which the query shares: the
    // plugin casts a deep copy, so that MongoDB's path (if the read stays there) casts the original once.
    cast: filter === 'cast' ? (conditions) => conditions : (conditions) => query.cast(query.model, plainCopy(conditions)) as Row,
  }
}

function planRead(shape: ReadShape, binding: ModelBinding): ReadPlan {
  const { op, options, fields } = shape
  // Mongoose keeps `{}` for "no projection": only a non-empty one makes the documents partial.
  const projection = fields && Object.keys(fields).length > 0 ? normalProjection(fields) : undefined
  const filter = shape.cast({ ...shape.filter })
  const mapping = fieldMapping(binding)
  const sort = options.sort && Object.keys(options.sort).length > 0 ? options.sort : undefined
  const limit = op === 'findOne' ? 1 : options.limit
  const skip = options.skip
  const pinned = Object.keys(filter).length === 1 ? keysPinnedBy(filter, binding.keyField) : undefined
  const keyLookup = pinned !== undefined && skip === undefined && (sort === undefined || isKeySort(sort, binding.keyField)) && (op !== 'findOne' || pinned.length === 1)

  let translated: TranslatedQuery | undefined
  let reason: string | undefined
  if (binding.reader) {
    const t = op === 'countDocuments' ? translateFilter(filter, mapping) : translateQuery({ filter, sort, limit, skip }, mapping)
    if (t.ok) translated = op === 'countDocuments' ? { filter: t.value as TranslatedQuery['filter'], sort: [] } : (t.value as TranslatedQuery)
    else reason = t.reason
  } else {
    reason = 'no NewStoreReader for this model'
  }
  // A key with no Store form that reads the same document back (a UUID, a Buffer) is never mirrored
  // (it is reported as unmirrored): the new store cannot have its document.
  const strayKey = pinned?.some((key) => roundTripStoreKey(binding.keys, key) === undefined) ? 'a key has no Store form' : undefined
  const unservable = strayKey ?? unfaithful(shape, projection, binding) ?? (!keyLookup && !translated ? reason : undefined) ?? unorderedPage(op, sort, skip, limit, keyLookup ? pinned : undefined)
  return {
    op,
    filter,
    sort,
    limit,
    skip,
    projection,
    lean: shape.lean,
    defaults: shape.defaults,
    keys: keyLookup ? pinned : undefined,
    translated,
    unservable,
  }
}

/**
 * Without a sort, which documents a `skip` or a `limit` leaves is MongoDB's natural order, which the
 * new store does not know: such a page stays on MongoDB. A limit that keeps every looked-up key
 * leaves nothing out; a translated read with a limit is checked when it runs (`AmbiguousPage`).
 */
function unorderedPage(op: ReadOp, sort: Row | undefined, skip: number | undefined, limit: number | undefined, keys: readonly unknown[] | undefined): string | undefined {
  if (sort !== undefined || op === 'countDocuments') return undefined
  if (skip) return 'skip without a sort (MongoDB\'s natural order decides which documents)'
  if (keys && limit && distinctKeys(keys).length > limit) return 'limit below the number of keys without a sort (MongoDB\'s natural order decides which documents)'
  return undefined
}

/**
 * A translated read with a limit and no sort matched more documents than the limit keeps: MongoDB's
 * natural order would decide which, so MongoDB serves it (counted as untranslatable).
 */
class AmbiguousPage extends Error {}

/** Keys without repeats, by their Store form, first occurrence first (`$in: [a, a]` finds `a` once). */
function distinctKeys(keys: readonly unknown[]): unknown[] {
  const seen = new Set<string>()
  return keys.filter((key) => {
    const id = keyString(storeKey(key))
    if (seen.has(id)) return false
    seen.add(id)
    return true
  })
}

const mappings = new WeakMap<ModelBinding, FieldMapping>()

function fieldMapping(binding: ModelBinding): FieldMapping {
  let mapping = mappings.get(binding)
  if (mapping) return mapping
  const { migration } = binding.runtime
  const arrayPaths = new Set<string>()
  binding.model.schema.eachPath((path: string, type: { instance?: string }) => {
    if (type.instance === 'Array') arrayPaths.add(path)
  })
  mapping = Object.freeze({ oldKey: migration.key.old, newKey: migration.key.new, fieldMap: migration.mapper.fieldMap, arrayPaths })
  mappings.set(binding, mapping)
  return mapping
}

/** New-store rows for a plan, in the order the query asks for. */
async function newRowsFor(binding: ModelBinding, plan: ReadPlan): Promise<readonly Row[]> {
  const store = binding.runtime.migration.new
  if (plan.keys) {
    const keys = distinctKeys(plan.keys).map((key) => binding.keys.toStore(key))
    const found = await store.get(keys)
    const rows = keys.map((key) => found.get(keyString(key))).filter((row): row is Row => row !== undefined)
    const direction = plan.sort ? Number(Object.values(plan.sort)[0]) : 0
    if (direction !== 0) rows.sort((a, b) => compareKeys(storeRecordKey(store, store.keyField, a), storeRecordKey(store, store.keyField, b)) * direction)
    return plan.limit ? rows.slice(0, plan.limit) : rows
  }
  if (!plan.translated || !binding.reader) throw new Error('read is not translatable')
  const { limit } = plan.translated
  if (limit === undefined || plan.sort !== undefined) return binding.reader.find(plan.translated)
  // One more than the limit tells whether the limit left documents out.
  const rows = await binding.reader.find({ ...plan.translated, limit: limit + 1 })
  if (rows.length > limit) throw new AmbiguousPage('more documents match than the limit keeps, and there is no sort')
  return rows
}

async function serveFromNew(query: any, binding: ModelBinding, plan: ReadPlan): Promise<{ rows: readonly Row[]; result: unknown }> {
  if (plan.op === 'countDocuments') {
    if (plan.keys) return { rows: [], result: (await binding.runtime.migration.new.get(plan.keys.map((k) => binding.keys.toStore(k)))).size }
    if (!plan.translated || !binding.reader) throw new Error('count is not translatable')
    return { rows: [], result: await binding.reader.count(plan.translated.filter) }
  }
  const rows = await newRowsFor(binding, plan)
  const model = query.model as Model<any>
  const documents = rows.map((row) => {
    const oldRow = toOldShape(binding.runtime, row)
    // The key in MongoDB form before casting: a composite key is cast as the sub-document it stands for.
    const key = binding.keys.toMongo(oldRow[binding.keyField] as KeyValue)
    // `hydrate` builds the document as a query builds it from what MongoDB returned: it casts each
    // path's stored value on init (a hex string to an ObjectId), keeps stored nulls and the fields
    // the schema does not name, and with the projection, the discriminator class of its key and
    // unselected paths not selected and without defaults. (`castObject` would drop nulls, empty
    // values and unnamed fields: documents unlike MongoDB's.)
    const stored = project({ ...oldRow, [binding.keyField]: key }, plan.projection, binding.keyField)
    const options = plan.lean || !plan.defaults ? { defaults: false } : undefined
    const document = (model as unknown as { hydrate(o: Row, p?: Row, options?: object): { toObject(o: object): Row } }).hydrate(stored, withId(plan.projection), options)
    // A lean document is what MongoDB stored, without defaults, getters, virtuals or minimizing;
    // the hydrated document's own values are that, cast from the Store form the old shape may hold.
    return plan.lean ? onlyStored(document.toObject(STORED_VALUES), stored) : document
  })
  return { rows, result: plan.op === 'findOne' ? (documents[0] ?? null) : documents }
}

/** `toObject` options that give a document's values as stored: what a lean read returns. */
const STORED_VALUES = Object.freeze({ getters: false, virtuals: false, transform: false, depopulate: true, flattenMaps: true, minimize: false, versionKey: true })

/**
 * A hydrated document's values limited to the paths the stored document has: hydrating creates
 * nested paths (`nested: {}`) that MongoDB's lean document does not have.
 */
function onlyStored(value: unknown, stored: unknown): any {
  if (isPlainObject(value) && isPlainObject(stored)) {
    return Object.fromEntries(Object.entries(value).filter(([field]) => field in stored).map(([field, v]) => [field, onlyStored(v, stored[field])]))
  }
  if (Array.isArray(value) && Array.isArray(stored) && value.length === stored.length) return value.map((v, i) => onlyStored(v, stored[i]))
  return value
}

function toOldShape(runtime: MigrationRuntime, row: Row): Row {
  const { new: store, key: keys } = runtime.migration
  const key = keyString(storeRecordKey(store, keys.new, row))
  return runtime.migration.mapper.backward(row, { key, migration: runtime.name })
}

async function compareInBackground(state: ReadState, plan: ReadPlan, result: unknown, snapshot: Row[] | undefined, query: string): Promise<void> {
  const { binding } = state
  const { runtime } = binding
  const collection = binding.model.collection
  const labels = { migration: runtime.name }

  if (plan.op === 'countDocuments') {
    let other: number
    if (state.served === 'new') other = await collection.countDocuments(plan.filter)
    else if (plan.keys) other = (await runtime.migration.new.get(plan.keys.map((k) => binding.keys.toStore(k)))).size
    else if (plan.translated && binding.reader) other = await binding.reader.count(plan.translated.filter)
    else {
      binding.metrics?.increment('compare.skipped', labels)
      return
    }
    const served = result as number
    runtime.compareCount(state.served === 'old' ? served : other, state.served === 'old' ? other : served, { query })
    return
  }

  let oldRows: Row[]
  let newRows: readonly Row[]
  if (state.served === 'new') {
    newRows = state.newRows ?? []
    const documents = await collection
      .find(plan.filter, { ...(plan.sort ? { sort: plan.sort as any } : {}), ...(plan.limit ? { limit: plan.limit } : {}), ...(plan.skip ? { skip: plan.skip } : {}) })
      .toArray()
    oldRows = documents.map((document) => documentToRow(document as Row, binding.keyField))
  } else {
    oldRows = snapshot ?? []
    const keys = oldRows.map((row) => row[binding.keyField])
    if (!keys.every(isStoreKey)) {
      // A document without a usable key (a `{ _id: false }` schema, a transform or projection that
      // removed it, a cached result) cannot be matched with a new-store row.
      binding.metrics?.increment('compare.skipped', labels)
      binding.logger.debug('read comparison skipped: a document has no usable key', { migration: runtime.name, query })
      return
    }
    if (plan.projection) {
      // The application's documents are partial: compare the whole documents of those keys.
      oldRows = [...(await runtime.migration.old.get(keys)).values()]
    }
    if (plan.translated && binding.reader) newRows = await binding.reader.find(plan.translated)
    else newRows = [...(await keyLookups(runtime.migration.new).get(keys)).values()]
  }
  runtime.compareRead(oldRows, newRows, { query, since: state.started })
}

const lookups = new WeakMap<Store, KeyLookupBatch>()

/** One batch of comparison lookups per store, shared by every model reading it. */
function keyLookups(store: Store): KeyLookupBatch {
  let batch = lookups.get(store)
  if (!batch) lookups.set(store, (batch = new KeyLookupBatch(store)))
  return batch
}

/** The application's result as Store rows. */
function rowsOf(result: unknown, binding: ModelBinding): Row[] {
  const list = Array.isArray(result) ? result : result === null || result === undefined ? [] : [result]
  return list.map((item) => {
    const plain =
      typeof (item as { toObject?: unknown }).toObject === 'function'
        ? (item as { toObject(o: object): Row }).toObject({ depopulate: true, getters: false, virtuals: false, transform: false, versionKey: true })
        : (item as Row)
    return documentToRow(plain, binding.keyField)
  })
}

/** Why a read cannot be served from the new store, when that is known without casting its filter. */
function unservableUncast(shape: ReadShape, binding: ModelBinding): string | undefined {
  const fields = shape.fields && Object.keys(shape.fields).length > 0 ? normalProjection(shape.fields) : undefined
  const byKey = Object.keys(shape.filter).length === 1 && keysPinnedBy(shape.filter, binding.keyField) !== undefined
  return unfaithful(shape, fields, binding) ?? (!binding.reader && !byKey ? 'no NewStoreReader for this model' : undefined)
}

/**
 * Why documents built from new-store rows would differ from MongoDB's for this read, if they would:
 * things Mongoose does while it runs the query on MongoDB (population, lean transforms, the
 * schema's `select: false` paths, a session's own writes, a collation's comparisons).
 */
function unfaithful(shape: ReadShape, projection: Row | undefined, binding: ModelBinding): string | undefined {
  const { options } = shape
  if (shape.populate && Object.keys(shape.populate as object).length > 0) return 'populate'
  if (shape.leanOptions) return 'lean options'
  if (options.session) return 'a session (its transaction may hold writes the new store has not seen)'
  if (options.collation) return 'collation'
  if (options.explain) return 'explain'
  if (shape.op === 'countDocuments' && (options.limit || options.skip)) return 'countDocuments with limit or skip'
  if (deselectsPaths(binding.model)) return 'the schema deselects paths (select: false)'
  if (projection && !simpleProjection(projection)) return 'projection'
  if (projection && hasDiscriminators(binding.model) && !selectsDiscriminatorKey(projection, binding.model)) return 'projection without the discriminator key'
  return undefined
}

const deselecting = new WeakMap<Model<any>, boolean>()

function deselectsPaths(model: Model<any>): boolean {
  let known = deselecting.get(model)
  if (known === undefined) {
    const discriminators = Object.values((model as unknown as { discriminators?: Record<string, Model<any>> }).discriminators ?? {})
    known = [model.schema, ...discriminators.map((d) => d.schema)].some((schema) => schemaDeselects(schema, new Set()))
    deselecting.set(model, known)
  }
  return known
}

/** Whether a schema or any schema under it (sub-documents, document arrays, their discriminators) has a `select: false` path. */
function schemaDeselects(schema: Schema, seen: Set<Schema>): boolean {
  if (seen.has(schema)) return false
  seen.add(schema)
  let found = false
  schema.eachPath((_path: string, type: { options?: { select?: unknown }; schema?: Schema }) => {
    if (found) return
    if (type.options?.select === false) found = true
    else if (type.schema && schemaDeselects(type.schema, seen)) found = true
  })
  const discriminators = Object.values((schema as unknown as { discriminators?: Record<string, unknown> }).discriminators ?? {})
  return found || discriminators.some((d) => isSchema(d) && schemaDeselects(d, seen))
}

function isSchema(value: unknown): value is Schema {
  return typeof (value as { eachPath?: unknown } | null)?.eachPath === 'function'
}

function hasDiscriminators(model: Model<any>): boolean {
  const m = model as unknown as { discriminators?: object; baseModelName?: string }
  return (m.discriminators !== undefined && Object.keys(m.discriminators).length > 0) || m.baseModelName !== undefined
}

/** MongoDB returns `_id` unless a projection excludes it; `hydrate`'s projection follows the letter. */
function withId(projection: Row | undefined): Row | undefined {
  if (!projection || '_id' in projection) return projection
  const inclusive = Object.values(projection).some((v) => v === 1 || v === true)
  return inclusive ? { ...projection, _id: 1 } : projection
}

/** Mongoose keeps `select('-name')` as `{ '-name': 0 }` until it runs the query: `{ name: 0 }`. (`+path` stays, and is not simple.) */
function normalProjection(fields: Row): Row {
  return Object.fromEntries(Object.entries(fields).map(([field, v]) => (field.startsWith('-') ? [field.slice(1), 0] : [field, v])))
}

/** Whether a projection keeps the discriminator key, so the document's class is known as MongoDB's path would know it. */
function selectsDiscriminatorKey(projection: Row, model: Model<any>): boolean {
  const key = (model.schema.options as { discriminatorKey?: string }).discriminatorKey ?? '__t'
  const inclusive = Object.entries(projection).some(([field, v]) => field !== '_id' && (v === 1 || v === true))
  return inclusive ? projection[key] === 1 || projection[key] === true : projection[key] === undefined
}

/** A deep copy of plain objects and arrays; other values (ObjectIds, Dates, RegExps) are shared, as casting replaces rather than changes them. */
function plainCopy<T>(value: T): T {
  if (Array.isArray(value)) return value.map(plainCopy) as T
  if (isPlainObject(value)) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plainCopy(v)])) as T
  return value
}

function simpleProjection(projection: Row): boolean {
  return Object.entries(projection).every(([field, v]) => !field.startsWith('$') && !field.startsWith('+') && !field.includes('.') && (v === 0 || v === 1 || v === true || v === false))
}

/** Applies an inclusive or exclusive top-level projection to a document, as MongoDB would. */
function project(document: Row, projection: Row | undefined, keyField: string): Row {
  if (!projection || Object.keys(projection).length === 0) return document
  const entries = Object.entries(projection)
  const inclusive = entries.some(([field, v]) => field !== keyField && (v === 1 || v === true))
  if (inclusive) {
    const keep = new Set(entries.filter(([, v]) => v === 1 || v === true).map(([field]) => field))
    if (projection[keyField] !== 0 && projection[keyField] !== false) keep.add(keyField)
    return Object.fromEntries(Object.entries(document).filter(([field]) => keep.has(field)))
  }
  const drop = new Set(entries.filter(([, v]) => v === 0 || v === false).map(([field]) => field))
  return Object.fromEntries(Object.entries(document).filter(([field]) => !drop.has(field)))
}

function isKeySort(sort: Row, keyField: string): boolean {
  const fields = Object.keys(sort)
  return fields.length === 1 && fields[0] === keyField
}
