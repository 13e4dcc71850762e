/**
 * The observed collection: what the plugin puts between a migrated model and its driver collection
 * for every write Mongoose issues through middleware-bearing paths.
 *
 * Why here and not in post hooks: every Mongoose write path (save, create, insertOne, insertMany,
 * bulkWrite, bulkSave, the update/replace/delete queries, findOneAnd*, findByIdAnd*, doc.deleteOne,
 * upserts) ends in exactly one call of a write method on the model's collection, with the exact
 * documents and filters sent and the exact driver result (upserted ids, write errors of a partial
 * `insertMany`). Mirroring at that call is exactly-once by construction: `bulkSave` fires both save
 * and bulkWrite hooks but makes one `bulkWrite` call; `create` of many documents makes one
 * `insertOne` per document. Hooks see neither upserted ids nor partial failures reliably.
 *
 * Per call:
 * 1. `runtime.checkWrite('old', model)`: after cutover a strict migration rejects the write with
 *    `WriteRejectedError` naming the model and phase before anything is sent.
 * 2. If the phase mirrors from MongoDB, the affected keys are captured: from the documents
 *    (inserts), from a filter that pins `_id`, from the result (`findOneAnd*` return the document;
 *    upserted ids), or, for other filters, by reading the matching `_id`s first (lean, `_id` only,
 *    no middleware, same session).
 * 3. The write runs unchanged (one exception: `findOneAnd*` ask the driver for result metadata to
 *    learn an upserted id, and hand Mongoose the shape it asked for).
 * 4. After it: each affected key is handed to `runtime.recordWrite('old', …)` (state-based: the
 *    mirror re-reads the document), or, inside a transaction, after the commit. Inserted documents
 *    and whole `findOneAnd*` results after the write go with their exact post-image
 *    (`stored-image.ts`), which spares the mirror that read.
 *
 * The race the pre-read leaves: a document that starts matching a multi-document filter between the
 * `_id` read and the write (inserted or updated concurrently) is changed by the write but not
 * captured; it differs in the new store until the concurrent write's own mirror event, the mirror's
 * re-check, or reconciliation (re-verifying recently changed keys) repairs it.
 *
 * Nothing here may fail or delay the application's write on account of the new store: recording is
 * synchronous and in-memory; a failure of the capture itself is logged and counted as unmirrored.
 */
import { isKeyValue, type KeyValue, keyString, type MigrationRuntime, mirrorsWritesOf, type Row } from '@cutover/core'
import { changedNothing, definiteOutcome, idsOf, isPlainObject, keysPinnedBy, possiblyApplied } from './affected-keys.js'
import type { ModelBinding } from '../model-binding.js'
import { isClosed, untilConnected, wouldBuffer } from '../connection-ready.js'
import { sameMongoKey } from '../keys.js'
import { storedImagesFor } from './stored-image.js'
import { afterCommit } from './transaction-buffer.js'
import { runAs } from './write-origin.js'
import { COLLECTION_WRITE_METHODS } from './write-methods.js'

type Op = 'upsert' | 'delete'

/** What one write touched, decided after it ran. */
interface Capture {
  readonly op: Op
  /** Keys to mirror, given the result (or error) of the write. */
  keysAfter(result: unknown, error: unknown): unknown[]
  /**
   * Exact post-images (rows, key in Store form) of some of those keys, when the write certainly
   * stored them as they are: inserted documents, `findOneAnd*` results asked for whole and after.
   */
  imagesAfter?(result: unknown, error: unknown): readonly Row[]
}

const OBSERVED = Symbol('cutover.observedCollection')

type DriverCollection = Record<string | symbol, any>


export function isObserved(collection: unknown): boolean {
  return typeof collection === 'object' && collection !== null && (collection as DriverCollection)[OBSERVED] === true
}

/**
 * Wraps a Mongoose collection so that its write methods mirror. Idempotent. `binding` is asked at
 * each write (the engine may start after the model is compiled); while it answers undefined, writes
 * pass through unmirrored.
 */
export function observeCollection<C extends object>(collection: C, binding: () => ModelBinding | undefined): C {
  if (isObserved(collection)) return collection
  const wrappers = new Map<string, (...args: unknown[]) => Promise<unknown>>()
  return new Proxy(collection, {
    get(target, property) {
      if (property === OBSERVED) return true
      const value = Reflect.get(target, property, target)
      if (typeof property !== 'string' || !COLLECTION_WRITE_METHODS.has(property) || typeof value !== 'function') return value
      let wrapper = wrappers.get(property)
      if (!wrapper) {
        wrapper = (...args: unknown[]) => {
          const bound = binding()
          const driver = target as DriverCollection
          // In `off` nothing is mirrored, guarded or reported: the call goes straight through, without
          // even a write origin (AsyncLocalStorage costs every promise of the process a little).
          if (!bound || isOff(bound.runtime)) return driver[property](...args)
          return runAs('middleware', () => observedWrite(driver, property, args, bound))
        }
        wrappers.set(property, wrapper)
      }
      return wrapper
    },
  })
}

function isOff(runtime: MigrationRuntime): boolean {
  const behavior = runtime.behaviorFor()
  return behavior.mirror === 'none' && behavior.authoritative === 'old'
}

/** Whether writes on the old store are mirrored in the phase in force. */
export function mirrorsOld(runtime: MigrationRuntime): boolean {
  return mirrorsWritesOf(runtime.behaviorFor(), 'old', runtime.migration.staleSideWrites)
}

/**
 * Mirrors one write. Synchronous up to the driver call whenever the keys are known without a read
 * (inserts, filters pinning the key, `findOneAnd*`): the call then reaches the driver in the tick
 * the application made it, as without the plugin. An `await` there would let later writes of the
 * same tick overtake it on the connection pool (`Model.create([a, b])` saves in parallel), and
 * MongoDB would store them in another order: a different natural order of `find()`.
 */
function observedWrite(collection: DriverCollection, method: string, args: unknown[], binding: ModelBinding): Promise<unknown> {
  const { runtime, model } = binding
  try {
    runtime.checkWrite('old', model.modelName, keyHint(method, args, binding))
  } catch (error) {
    return Promise.reject(error)
  }
  if (!mirrorsOld(runtime)) return collection[method](...args)

  // Wait for the connection here instead of letting Mongoose buffer the call (a buffered call runs
  // later outside this write origin, and the unmirrored-write detector would report it), with
  // Mongoose's own timeout and error, so an unreachable server fails the write as it would without
  // the plugin. A closed connection is Mongoose's to answer.
  if (wouldBuffer(collection)) {
    if (isClosed(collection)) return collection[method](...args)
    return untilConnected(collection, method).then(() => capturedWrite(collection, method, args, binding))
  }
  return capturedWrite(collection, method, args, binding)
}

/** Captures the keys (reading them first only where the filter does not name them), runs the write, records the keys. */
function capturedWrite(collection: DriverCollection, method: string, args: unknown[], binding: ModelBinding): Promise<unknown> {
  const { runtime, model } = binding
  const captureFailed = (error: unknown): undefined => {
    binding.logger.error('could not capture the keys of a write; it is not mirrored', { migration: runtime.name, model: model.modelName, method, error })
    runtime.recordUnmirrored(collection.collectionName ?? model.modelName, `${model.modelName}.${method}: key capture failed`)
    return undefined
  }
  let capture: Capture | Promise<Capture> | undefined
  try {
    capture = captureFor(collection, method, args, binding)
  } catch (error) {
    capture = captureFailed(error)
  }
  if (isPromiseLike(capture)) return Promise.resolve(capture).then(undefined, captureFailed).then((known) => writeAndRecord(collection, method, args, binding, known))
  return writeAndRecord(collection, method, args, binding, capture)
}

function writeAndRecord(collection: DriverCollection, method: string, args: unknown[], binding: ModelBinding, capture: Capture | undefined): Promise<unknown> {
  const { runtime, model } = binding
  const session = optionsOf(method, args)?.session
  const call = resultMetadataCall(method, args)
  let sent: unknown
  try {
    sent = collection[method](...call.args)
  } catch (error) {
    sent = Promise.reject(error)
  }
  const finish = (result: unknown, failure: unknown, failed: boolean): unknown => {
    if (capture) {
      try {
        const error = failed ? failure : undefined
        const keys = capture.keysAfter(result, error)
        const images = capture.imagesAfter?.(result, error) ?? []
        // Also runs inside `commitTransaction` (after the commit): it must never throw there.
        const record = () => recordKeys(binding, capture.op, keys, images, collection.collectionName ?? model.modelName, method)
        if (keys.length > 0 && !afterCommit(session, record)) record()
      } catch (error) {
        binding.logger.error('could not record the keys of a write; it is not mirrored', { migration: runtime.name, model: model.modelName, method, error })
        runtime.recordUnmirrored(collection.collectionName ?? model.modelName, `${model.modelName}.${method}: recording failed`)
      }
    }
    if (failed) throw failure
    return call.unwrap(result)
  }
  return Promise.resolve(sent).then(
    (result) => finish(result, undefined, false),
    (error: unknown) => finish(undefined, error, true),
  )
}

/**
 * Hands each affected key to the mirror, one by one: a key that has no Store form that reads the
 * same document back (null, a Date, an embedded document, a Buffer) is reported as unmirrored and
 * counted, with the key's type, and the write's other keys are still mirrored. Never throws.
 */
function recordKeys(binding: ModelBinding, op: Op, keys: readonly unknown[], images: readonly Row[], target: string, method: string): void {
  const { runtime, model } = binding
  const imageOf = new Map<string, Row>()
  for (const image of images) {
    const key = image[binding.keyField]
    if (isKeyValue(key)) imageOf.set(keyString(key), image)
  }
  const distinct = new Map<string, KeyValue>()
  for (const value of keys) {
    const key = mirrorableKey(binding, value)
    if (key === undefined) {
      runtime.recordUnmirrored(target, `${model.modelName}.${method}: a key of type ${keyType(value)} has no Store form; reconcile that document by hand`)
      continue
    }
    distinct.set(keyString(key), key)
  }
  for (const [id, key] of distinct) {
    try {
      const image = imageOf.get(id)
      runtime.recordWrite('old', image ? { key, op, postImage: image, postImageExact: true } : { key, op })
    } catch (error) {
      binding.logger.error('could not record the key of a write; it is not mirrored', { migration: runtime.name, model: model.modelName, method, key: id, error })
      runtime.recordUnmirrored(target, `${model.modelName}.${method}: recording failed`)
    }
  }
}

/** The Store form of a MongoDB key, if it has one that the codec turns back into the same key. */
function mirrorableKey(binding: ModelBinding, value: unknown): KeyValue | undefined {
  if (value === null || value === undefined) return undefined
  try {
    const key = binding.keys.toStore(value)
    const back = binding.keys.toMongo(key)
    const same = sameMongoKey(value, back)
    return same ? key : undefined
  } catch {
    return undefined
  }
}

function keyType(value: unknown): string {
  if (value === null) return 'null'
  if (value instanceof Date) return 'Date'
  return (value as { _bsontype?: string } | undefined)?._bsontype ?? (Array.isArray(value) ? 'array' : typeof value)
}

/** The options argument of a collection write method. */
function optionsOf(method: string, args: unknown[]): { session?: unknown; ordered?: boolean } | undefined {
  const index = method === 'insertOne' || method === 'insertMany' || method === 'bulkWrite' || method === 'deleteOne' || method === 'deleteMany' || method === 'findOneAndDelete' ? 1 : 2
  const options = args[index]
  return isPlainObject(options) ? (options as { session?: unknown; ordered?: boolean }) : undefined
}

/** A key to name in a `WriteRejectedError`, when the write is about one document. */
function keyHint(method: string, args: unknown[], binding: ModelBinding): string | undefined {
  try {
    const value =
      method === 'insertOne'
        ? (args[0] as Row | undefined)?.[binding.keyField]
        : method === 'insertMany' || method === 'bulkWrite'
          ? undefined
          : keysPinnedBy(args[0], binding.keyField)?.[0]
    return value === undefined ? undefined : String(binding.keys.toStore(value))
  } catch {
    return undefined
  }
}

/** `findOneAnd*` are asked for result metadata (to learn an upserted id); Mongoose gets what it asked for. */
function resultMetadataCall(method: string, args: unknown[]): { args: unknown[]; unwrap: (result: unknown) => unknown } {
  if (!method.startsWith('findOneAnd')) return { args, unwrap: (result) => result }
  const at = method === 'findOneAndDelete' ? 1 : 2
  const options = (isPlainObject(args[at]) ? args[at] : {}) as Row
  if (options.includeResultMetadata === true) return { args, unwrap: (result) => result }
  const patched = [...args]
  while (patched.length <= at) patched.push(undefined)
  patched[at] = { ...options, includeResultMetadata: true }
  return { args: patched, unwrap: (result) => (isPlainObject(result) ? (result.value ?? null) : result) }
}

/** What a write will touch: known at once for inserts and filters naming their keys, after a read (a promise) otherwise. */
function captureFor(collection: DriverCollection, method: string, args: unknown[], binding: ModelBinding): Capture | Promise<Capture> {
  const { keyField } = binding
  const options = optionsOf(method, args)
  const session = options?.session
  const stored = storedImagesFor(collection, binding.model.base?.mongo?.BSON)
  /** The exact images of documents, or none when they cannot be made exact; never throws into the write. */
  const exactImages = (documents: readonly Row[]): Row[] => {
    if (!stored) return []
    try {
      return documents.filter((document) => document?.[keyField] !== undefined).map((document) => stored.of(document, options, keyField))
    } catch (error) {
      binding.logger.debug('no exact post-image; the mirror reads the keys back', { migration: binding.runtime.name, error })
      return []
    }
  }
  const matching = (filter: unknown): unknown[] | Promise<unknown[]> => {
    const pinned = keysPinnedBy(filter, keyField)
    if (pinned) return pinned
    return collection
      .find(filter ?? {}, { projection: { [keyField]: 1 }, ...(session ? { session } : {}) })
      .toArray()
      .then((documents: Row[]) => documents.map((document) => document[keyField]))
  }

  switch (method) {
    case 'insertOne': {
      const document = args[0] as Row
      return {
        op: 'upsert',
        keysAfter: (result, error) => {
          if (error !== undefined && changedNothing(error)) return []
          const id = document?.[keyField] ?? (result as { insertedId?: unknown } | undefined)?.insertedId
          return id === undefined ? [] : [id]
        },
        // Only a certain success stored the document: after an unknown outcome the key is read back.
        imagesAfter: (_, error) => (error === undefined ? exactImages([document]) : []),
      }
    }
    case 'insertMany': {
      const documents = (args[0] ?? []) as Row[]
      const ordered = options?.ordered !== false
      return {
        op: 'upsert',
        keysAfter: (result, error) => {
          if (error === undefined) {
            const ids = documents.map((document) => document[keyField])
            return ids.every((id) => id !== undefined) ? ids : idsOf((result as { insertedIds?: unknown }).insertedIds)
          }
          return possiblyApplied(documents.length, error, ordered)
            .map((i) => documents[i]?.[keyField])
            .filter((id) => id !== undefined)
        },
        imagesAfter: (_, error) => {
          if (error === undefined) return exactImages(documents)
          // Write errors name the documents that failed; the others are stored. Without them the
          // outcome is unknown, and every key is read back.
          if (!definiteOutcome(error)) return []
          return exactImages(possiblyApplied(documents.length, error, ordered).map((i) => documents[i] as Row))
        },
      }
    }
    case 'updateOne':
    case 'updateMany':
    case 'replaceOne':
      return whenKnown(matching(args[0]), (candidates) => ({
        op: 'upsert',
        keysAfter: (result, error) => {
          if (error !== undefined) return changedNothing(error) ? [] : candidates
          const r = result as { matchedCount?: number; upsertedCount?: number; upsertedId?: unknown } | undefined
          // An upsert of `{ _id: null }` stores a document whose key is null: reported, not dropped.
          const upserted = (r?.upsertedCount ?? 0) > 0 || (r?.upsertedId !== undefined && r.upsertedId !== null) ? [r?.upsertedId ?? null] : []
          return r?.matchedCount === 0 ? upserted : [...candidates, ...upserted]
        },
      }))
    case 'deleteOne':
    case 'deleteMany':
      return whenKnown(matching(args[0]), (candidates) => ({
        op: 'delete',
        keysAfter: (result, error) => {
          if (error !== undefined) return changedNothing(error) ? [] : candidates
          return (result as { deletedCount?: number } | undefined)?.deletedCount === 0 ? [] : candidates
        },
      }))
    case 'findOneAndUpdate':
    case 'findOneAndReplace':
    case 'findOneAndDelete': {
      const pinned = keysPinnedBy(args[0], keyField) ?? []
      const whole = method !== 'findOneAndDelete' && returnsWholeDocumentAfter(args[2])
      return {
        op: method === 'findOneAndDelete' ? 'delete' : 'upsert',
        keysAfter: (result, error) => {
          if (error !== undefined) return changedNothing(error) ? [] : pinned
          const r = result as { value?: Row | null; lastErrorObject?: { upserted?: unknown } } | undefined
          const id = r?.value?.[keyField] ?? r?.lastErrorObject?.upserted
          return id === undefined || id === null ? [] : [id]
        },
        imagesAfter: (result, error) => {
          const value = (result as { value?: Row | null } | undefined)?.value
          return whole && error === undefined && isPlainObject(value) ? exactImages([value]) : []
        },
      }
    }
    case 'bulkWrite': {
      const operations = (args[0] ?? []) as Row[]
      const ordered = options?.ordered !== false
      const keysOf = operations.map((operation) => bulkOperationKeys(operation, keyField, matching))
      return whenKnown(keysOf.some(isPromiseLike) ? Promise.all(keysOf) : (keysOf as unknown[][]), (perOperation) => ({
        op: 'upsert',
        keysAfter: (result, error) => {
          const applied = error === undefined ? operations.map((_, i) => i) : possiblyApplied(operations.length, error, ordered)
          const source = (error === undefined ? result : (error as { result?: unknown }).result) as
            | { insertedIds?: unknown; upsertedIds?: unknown }
            | undefined
          return [...applied.flatMap((i) => perOperation[i] ?? []), ...idsOf(source?.upsertedIds)]
        },
      }))
    }
    default:
      throw new TypeError(`not a write method: ${method}`)
  }
}

/** Whether `findOneAndUpdate`/`Replace` options ask for the whole document as it is after the write. */
function returnsWholeDocumentAfter(options: unknown): boolean {
  if (!isPlainObject(options)) return false
  const projection = options.projection ?? options.fields
  const whole = projection === undefined || projection === null || (isPlainObject(projection) && Object.keys(projection).length === 0)
  return whole && options.returnDocument === 'after'
}

/** Applies `then` to a value now, or to a promised value once it is there. */
function whenKnown<T, R>(value: T | Promise<T>, then: (known: T) => R): R | Promise<R> {
  return isPromiseLike(value) ? Promise.resolve(value).then(then) : then(value as T)
}

function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as { then?: unknown } | null | undefined)?.then === 'function'
}

function bulkOperationKeys(operation: Row, keyField: string, matching: (filter: unknown) => unknown[] | Promise<unknown[]>): unknown[] | Promise<unknown[]> {
  const [kind] = Object.keys(operation)
  const body = (kind === undefined ? undefined : operation[kind]) as Row | undefined
  if (!body) return []
  if (kind === 'insertOne') {
    const document = (body.document ?? body) as Row
    return document[keyField] === undefined ? [] : [document[keyField]]
  }
  return matching(body.filter ?? body.q)
}
