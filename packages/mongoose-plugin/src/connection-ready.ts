/**
 * Waiting for a Mongoose collection's connection the way Mongoose itself would, without handing it
 * the call to buffer.
 *
 * Mongoose buffers a collection call made before the connection is open and runs it from its queue
 * once it opens, or fails it with `MongooseError: Operation \`<collection>.<method>()\` buffering
 * timed out after <bufferTimeoutMS>ms`. The plugin cannot let it buffer the call itself: a buffered
 * call runs outside the write origin (the unmirrored-write detector would report it) and, for
 * cursor methods such as `find`, returns a promise instead of a cursor. So the plugin queues a
 * resumption of its own in the same queue, with the same timeout and the same error, and then makes
 * the call on an open connection. With the plugin the application sees what it sees without it.
 */

/** The parts of Mongoose's `Collection` this relies on (lib/collection.js). */
interface BufferingCollection {
  readonly name?: string
  readonly buffer?: boolean
  readonly conn?: { readonly base?: { readonly Error?: new (message: string) => Error }; readonly $wasForceClosed?: boolean; readonly _closeCalled?: boolean }
  _shouldBufferCommands?(): boolean
  _getBufferTimeoutMS?(): number
  addQueue?(name: (...args: unknown[]) => void, args: unknown[]): unknown
  removeQueue?(name: (...args: unknown[]) => void, args: unknown[]): boolean
}

/** Whether a call on `collection` now would be buffered by Mongoose. */
export function wouldBuffer(collection: object): boolean {
  const c = collection as BufferingCollection
  return c.buffer === true && c._shouldBufferCommands?.() !== false && typeof c.addQueue === 'function'
}

/** Whether the application closed the connection (a buffered call would then only time out). */
export function isClosed(collection: object): boolean {
  const conn = (collection as BufferingCollection).conn
  return conn?.$wasForceClosed === true || conn?._closeCalled === true
}

/**
 * Resolves once the collection's connection is open; rejects with Mongoose's own buffering-timeout
 * error after the collection's `bufferTimeoutMS`, as the buffered `method` call would have.
 */
export function untilConnected(collection: object, method: string): Promise<void> {
  const c = collection as BufferingCollection
  if (!wouldBuffer(c)) return Promise.resolve()
  const timeoutMs = c._getBufferTimeoutMS?.() ?? 10_000
  return new Promise<void>((resolve, reject) => {
    const args: unknown[] = []
    const resume = () => {
      clearTimeout(timer)
      resolve()
    }
    const timer = setTimeout(() => {
      if (c.removeQueue?.(resume, args) === false) return
      const MongooseError = c.conn?.base?.Error ?? Error
      reject(new MongooseError(`Operation \`${c.name ?? '?'}.${method}()\` buffering timed out after ${timeoutMs}ms`))
    }, timeoutMs)
    c.addQueue?.(resume, args)
  })
}
