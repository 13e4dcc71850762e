import { compositeKey, type KeyPart, type KeyValue, type Row } from '@cutover/core'
import type { Model } from 'mongoose'

/**
 * Keys cross the Store boundary as strings (an ObjectId as its 24 lowercase hex digits) or numbers,
 * so that a MongoDB `_id` and a PostgreSQL `text`/`integer` key compare as one key. A compound key
 * (`_id: { tenant: String, n: Number }`, nested paths or a sub-schema) crosses as a composite key of
 * its parts in the sub-document's path order (`['acme', 7]`), which meets a PostgreSQL composite
 * primary key of those columns in that order. Inside MongoDB they are whatever the schema says the
 * key path is.
 */
export interface KeyCodec {
  /** A MongoDB key value (ObjectId, number, string, compound sub-document) → its Store form. */
  toStore(value: unknown): KeyValue
  /** A Store key → the value to query MongoDB with. */
  toMongo(key: KeyValue): unknown
  /** A compound key's paths inside the key field, in schema (and composite key) order; undefined for a plain key. */
  readonly parts: readonly string[] | undefined
}

export function keyCodecFor(model: Model<any>, keyField: string): KeyCodec {
  const instance = model.schema.path(keyField)?.instance
  const ObjectId = model.base.Types.ObjectId
  const part = (type: string | undefined, key: KeyPart): unknown => {
    if (type === 'ObjectId') return typeof key === 'string' && /^[0-9a-fA-F]{24}$/.test(key) ? new ObjectId(key) : key
    if (type === 'Number') return typeof key === 'bigint' ? Number(key) : typeof key === 'string' && /^-?\d+(\.\d+)?$/.test(key) ? Number(key) : key
    if (type === 'String') return String(key)
    return key
  }
  const parts = compoundParts(model, keyField)
  return Object.freeze({
    parts: parts ? Object.freeze(parts.map(([path]) => path)) : undefined,
    toStore: storeKey,
    toMongo(key: KeyValue): unknown {
      if (!Array.isArray(key)) return part(instance, key as KeyPart)
      // Built in the schema's path order: MongoDB matches sub-documents field order and all.
      if (!parts || parts.length !== key.length) return key
      return Object.fromEntries(parts.map(([path, type], i) => [path, part(type, key[i] as KeyPart)]))
    },
  })
}

/**
 * The parts of a compound key path, in schema order, with their types: the nested paths
 * (`_id: { tenant: String, n: Number }`) or the paths of a single-nested sub-schema. Undefined for a
 * plain key path.
 */
function compoundParts(model: Model<any>, keyField: string): [string, string | undefined][] | undefined {
  const schema = model.schema
  const path = schema.path(keyField) as { instance?: string; schema?: { paths: Record<string, { instance?: string }> } } | undefined
  const prefix = `${keyField}.`
  const entries: [string, { instance?: string }][] =
    path?.schema && path.instance === 'Embedded'
      ? Object.entries(path.schema.paths).filter(([name]) => name !== '_id')
      : path
        ? []
        : Object.entries(schema.paths as Record<string, { instance?: string }>)
            .filter(([name]) => name.startsWith(prefix))
            .map(([name, type]) => [name.slice(prefix.length), type])
  const direct = entries.filter(([name]) => !name.includes('.'))
  return direct.length > 1 && direct.length === entries.length ? direct.map(([name, type]) => [name, type.instance]) : undefined
}

/**
 * The Store form of a MongoDB key value. An embedded document becomes the composite key of its
 * values in stored order: two documents that MongoDB tells apart (`{ a, b }`, `{ b, a }`) are not
 * made one key, and the codec's round trip tells whether it is the schema's form.
 */
export function storeKey(value: unknown): KeyValue {
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'bigint') return value
  if (isObjectId(value)) return value.toHexString().toLowerCase()
  const embedded = embeddedDocument(value)
  if (embedded) {
    const parts = Object.values(embedded)
    if (parts.length > 0 && parts.every(isPartValue)) return compositeKey(...parts.map((part) => storeKey(part) as KeyPart))
  }
  if (value !== null && typeof value === 'object' && typeof (value as { toString?: unknown }).toString === 'function') return String(value)
  throw new TypeError(`not a key value: ${String(value)}`)
}

/**
 * A key value as it appears in a filter before Mongoose casts it: Mongoose accepts a document, or
 * any object with an `_id`, where a key goes (`findById(doc)`, `findById({ _id: id })`) and casts
 * it to that `_id`. (A compound key's sub-document has no `_id` of its own.)
 */
export function uncastKey(value: unknown, keyField: string): unknown {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || isObjectId(value)) return value
  const isDocument = (value as { $__?: unknown }).$__ !== undefined
  const key = isDocument ? (value as Row)[keyField] : (value as Row)._id
  return key === undefined || key === null ? value : key
}

/** A value that can be one part of a composite key. */
function isPartValue(value: unknown): boolean {
  return typeof value === 'string' || typeof value === 'bigint' || (typeof value === 'number' && Number.isFinite(value)) || isObjectId(value)
}

/**
 * The Store form of a MongoDB key value when the codec turns it back into the same key; undefined
 * otherwise (a UUID, a Buffer, a compound key in another field order): such a key is never
 * mirrored, so the new store cannot hold its document.
 */
export function roundTripStoreKey(codec: KeyCodec, value: unknown): KeyValue | undefined {
  try {
    const key = codec.toStore(value)
    return sameMongoKey(value, codec.toMongo(key)) ? key : undefined
  } catch {
    return undefined
  }
}

/** Whether two MongoDB key values are the same key: ObjectIds by value, embedded documents field by field, in order. */
export function sameMongoKey(a: unknown, b: unknown): boolean {
  if (isObjectId(a) || isObjectId(b)) return isObjectId(a) && isObjectId(b) && a.toHexString() === b.toHexString()
  const left = embeddedDocument(a)
  const right = embeddedDocument(b)
  if (left || right) {
    if (!left || !right) return false
    const leftKeys = Object.keys(left)
    const rightKeys = Object.keys(right)
    return leftKeys.length === rightKeys.length && leftKeys.every((key, i) => key === rightKeys[i] && sameMongoKey(left[key], right[key]))
  }
  return a === b
}

/** A plain embedded document (or a Mongoose sub-document's plain form), else undefined. */
function embeddedDocument(value: unknown): Row | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof Date) return undefined
  const proto = Object.getPrototypeOf(value)
  if (proto === Object.prototype || proto === null) return value as Row
  const toObject = (value as { toObject?: unknown; $__?: unknown }).toObject
  return typeof toObject === 'function' && (value as { $__?: unknown }).$__ !== undefined ? (toObject.call(value, { virtuals: false, getters: false }) as Row) : undefined
}

export function isObjectId(value: unknown): value is { toHexString(): string } {
  const type = (value as { _bsontype?: unknown } | null)?._bsontype
  return (type === 'ObjectId' || type === 'ObjectID') && typeof (value as { toHexString?: unknown }).toHexString === 'function'
}

/**
 * A raw document (driver result or `toObject()`) as the Store row the migration's mapper sees: the
 * same fields, the key in Store form. Other values (Dates, nested ObjectIds, Decimal128) stay as
 * the driver returns them; the canonical comparison understands them.
 */
export function documentToRow(document: Row, keyField: string): Row {
  const key = document[keyField]
  return key === undefined || key === null ? { ...document } : { ...document, [keyField]: storeKey(key) }
}
