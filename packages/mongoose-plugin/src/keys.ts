import { type KeyValue, type Row } from '@cutover/core'
import type { Model } from 'mongoose'

/**
 * Keys cross the Store boundary as strings (an ObjectId as its 24 lowercase hex digits) or numbers,
 * so that a MongoDB `_id` and a PostgreSQL `text`/`integer` key compare as one key. Inside MongoDB
 * they are whatever the schema says the key path is.
 */
export interface KeyCodec {
  /** A MongoDB key value (ObjectId, number, string) → its Store form. */
  toStore(value: unknown): KeyValue
  /** A Store key → the value to query MongoDB with. */
  toMongo(key: KeyValue): unknown
}

export function keyCodecFor(model: Model<any>, keyField: string): KeyCodec {
  const instance = model.schema.path(keyField)?.instance
  const ObjectId = model.base.Types.ObjectId
  return Object.freeze({
    toStore: storeKey,
    toMongo(key: KeyValue): unknown {
      if (instance === 'ObjectId') return typeof key === 'string' && /^[0-9a-fA-F]{24}$/.test(key) ? new ObjectId(key) : key
      if (instance === 'Number') return typeof key === 'bigint' ? Number(key) : typeof key === 'string' && /^-?\d+(\.\d+)?$/.test(key) ? Number(key) : key
      if (instance === 'String') return String(key)
      return key
    },
  })
}

/** The Store form of a MongoDB key value. */
export function storeKey(value: unknown): KeyValue {
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'bigint') return value
  if (isObjectId(value)) return value.toHexString().toLowerCase()
  if (value !== null && typeof value === 'object' && typeof (value as { toString?: unknown }).toString === 'function') return String(value)
  throw new TypeError(`not a key value: ${String(value)}`)
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
