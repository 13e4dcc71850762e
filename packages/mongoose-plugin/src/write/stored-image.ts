/**
 * The exact post-image of a write, when the write itself tells it: an inserted document is exactly
 * what the server stores, and a `findOneAnd*` asked for the whole document after the write returns
 * exactly what it stores. Handing that image to the mirror (`postImageExact`) spares it reading the
 * key back from MongoDB, which on a server that answers `_id` lookups by scanning (FerretDB v1 on
 * SQLite) costs more than the insert itself.
 *
 * The image must be what `MongooseModelStore.get` would return for the key, not what Mongoose
 * handed the driver: the document is encoded and decoded with the driver collection's own BSON
 * options (a Buffer comes back as a Binary, `undefined` as null or nothing, a Map as an object,
 * wrappers such as Int32 as numbers). Encoding happens at once, while the write's caller waits for
 * nothing else, because the objects Mongoose passed may be reused after the call returns.
 */
import type { Row } from '@cutover/core'
import { documentToRow } from '../keys.js'

interface BsonCodec {
  serialize(document: Row, options?: object): Uint8Array
  deserialize(buffer: Uint8Array, options?: object): Row
}

interface BsonOptions {
  readonly raw?: boolean
  readonly fieldsAsRaw?: Readonly<Record<string, unknown>>
  readonly ignoreUndefined?: boolean
  readonly serializeFunctions?: boolean
  readonly [option: string]: unknown
}

/** How to turn documents into the rows the store would read, for one driver collection. */
export interface StoredImages {
  /** `document` as the store would read it back, key in Store form. */
  of(document: Row, writeOptions: object | undefined, keyField: string): Row
}

const codecs = new WeakMap<object, StoredImages | null>()

/**
 * The codec for a Mongoose collection (`collection.collection` is the driver's), or undefined when
 * the collection decodes in a way the store does not (raw buffers), so that no image is claimed exact.
 */
export function storedImagesFor(collection: Record<string, any>, bson: BsonCodec | undefined): StoredImages | undefined {
  const driver = collection.collection as object | undefined
  if (!driver) return undefined
  let codec = codecs.get(driver)
  if (codec === undefined) codecs.set(driver, (codec = codecFor(driver, bson) ?? null))
  return codec ?? undefined
}

function codecFor(driver: object, bson: BsonCodec | undefined): StoredImages | undefined {
  const options = (driver as { bsonOptions?: BsonOptions }).bsonOptions
  if (!bson || !options || options.raw === true || Object.keys(options.fieldsAsRaw ?? {}).length > 0) return undefined
  return {
    of(document, writeOptions, keyField) {
      const perWrite = (writeOptions ?? {}) as BsonOptions
      const encoding = {
        ignoreUndefined: perWrite.ignoreUndefined ?? options.ignoreUndefined ?? false,
        serializeFunctions: perWrite.serializeFunctions ?? options.serializeFunctions ?? false,
      }
      return documentToRow(bson.deserialize(bson.serialize(document, encoding), options), keyField)
    },
  }
}
