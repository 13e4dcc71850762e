import { AsyncLocalStorage } from 'node:async_hooks'

/**
 * Who issued a driver call: the plugin's own observed path (`middleware`: a Mongoose write whose
 * keys the plugin captures and mirrors) or a `MongooseModelStore` (mirror, backfill, verification).
 *
 * The unmirrored-write detector sees every write command the driver sends; the ones issued inside
 * `runAs` carry their origin through the driver's async chain (AsyncLocalStorage follows awaits and
 * promise continuations down to the synchronous `commandStarted` emit), so anything without an
 * origin bypassed the plugin: `Model.collection.*`, `connection.db.*`.
 */
export type WriteOrigin = 'middleware' | 'store'

const storage = new AsyncLocalStorage<WriteOrigin>()

export function runAs<T>(origin: WriteOrigin, fn: () => T): T {
  return storage.run(origin, fn)
}

export function currentWriteOrigin(): WriteOrigin | undefined {
  return storage.getStore()
}
