import { AsyncLocalStorage } from 'node:async_hooks'

/**
 * Queries Cutover makes itself (a `KyselyTableStore` reading or writing for the mirror, backfill or
 * comparison) run inside this context. The interceptor passes them straight through: they are the
 * migration's own plumbing, and mirroring or routing them would loop (a mirrored write mirrored
 * again) or be rejected (the new→old mirror writing the old table after cutover).
 *
 * A context rather than a tag on the query because it survives whatever plugins the application's
 * Kysely runs, and because it needs no separate Kysely instance.
 */
const storage = new AsyncLocalStorage<true>()

/** Runs `fn` with every query it makes marked as Cutover's own. */
export function asStoreQuery<T>(fn: () => Promise<T>): Promise<T> {
  return storage.run(true, fn)
}

/** Whether the running query was made by a Cutover store. */
export function isStoreQuery(): boolean {
  return storage.getStore() === true
}
