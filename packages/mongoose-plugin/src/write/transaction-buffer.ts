/**
 * Mirror events of writes made inside a session transaction wait for the transaction's outcome:
 * they are handed to the mirror after `commitTransaction` succeeds and dropped on abort, so only
 * committed writes are mirrored.
 *
 * The session's own `commitTransaction` / `abortTransaction` are wrapped (once per session, as own
 * properties): the driver's `withTransaction` and `endSession` call them through `this`, and so does
 * Mongoose's `connection.transaction()`. A commit whose outcome is unknown
 * (`UnknownTransactionCommitResult`) is treated as committed: mirroring re-reads the source, so
 * mirroring a key whose write did not commit copies its unchanged state, which is harmless, while
 * dropping a committed one would lose it.
 *
 * FerretDB v1 has no transactions, so this path is exercised by unit tests with a session double
 * and against a real replica set only when `MONGODB_URL` points at one.
 */
export interface TransactionSession {
  inTransaction(): boolean
  commitTransaction(...args: unknown[]): Promise<unknown>
  abortTransaction(...args: unknown[]): Promise<unknown>
}

const pending = new WeakMap<TransactionSession, Array<() => void>>()

/** Runs `fn` after the session's transaction commits and returns true, or returns false at once when no transaction is open. */
export function afterCommit(session: unknown, fn: () => void): boolean {
  if (!isTransactionSession(session) || !session.inTransaction()) return false
  let queued = pending.get(session)
  if (!queued) {
    queued = []
    pending.set(session, queued)
    wrap(session)
  }
  queued.push(fn)
  return true
}

function wrap(session: TransactionSession): void {
  const commit = session.commitTransaction
  const abort = session.abortTransaction
  session.commitTransaction = async function commitTransaction(this: TransactionSession, ...args: unknown[]) {
    let result: unknown
    try {
      result = await commit.apply(this, args)
    } catch (error) {
      if (hasLabel(error, 'UnknownTransactionCommitResult')) flush(session)
      else drop(session)
      throw error
    }
    flush(session)
    return result
  }
  session.abortTransaction = async function abortTransaction(this: TransactionSession, ...args: unknown[]) {
    drop(session)
    return abort.apply(this, args)
  }
}

function flush(session: TransactionSession): void {
  const queued = pending.get(session)
  if (!queued) return
  pending.set(session, [])
  for (const fn of queued) fn()
}

function drop(session: TransactionSession): void {
  if (pending.has(session)) pending.set(session, [])
}

function isTransactionSession(value: unknown): value is TransactionSession {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as TransactionSession).inTransaction === 'function' &&
    typeof (value as TransactionSession).commitTransaction === 'function' &&
    typeof (value as TransactionSession).abortTransaction === 'function'
  )
}

function hasLabel(error: unknown, label: string): boolean {
  const has = (error as { hasErrorLabel?: (l: string) => boolean } | null)?.hasErrorLabel
  return typeof has === 'function' ? has.call(error, label) : false
}
