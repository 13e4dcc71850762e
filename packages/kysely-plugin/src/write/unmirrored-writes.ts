import type { MigrationRuntime } from '@cutover/core'

/**
 * How long after a write it could not mirror (raw SQL, a write inside a CTE, the old keys of a key
 * update) this process keeps the migration's reads on the old store. The new store lacks that write
 * until reconciliation, and which keys it touched is unknown, so no read of the migration can be
 * trusted to the new store meanwhile; a minute covers the application's read-after-write without
 * switching the ramp off for good after one maintenance statement.
 */
export const UNMIRRORED_FALLBACK_MS = 60_000

const lastUnmirrored = new WeakMap<MigrationRuntime, number>()

/** Notes that this process just committed a write on the old side of `runtime` that it did not mirror. */
export function markUnmirrored(runtime: MigrationRuntime): void {
  lastUnmirrored.set(runtime, performance.now())
}

/** Whether this process committed such a write within the last `UNMIRRORED_FALLBACK_MS`. */
export function recentlyUnmirrored(runtime: MigrationRuntime): boolean {
  const at = lastUnmirrored.get(runtime)
  return at !== undefined && performance.now() - at < UNMIRRORED_FALLBACK_MS
}

/**
 * How long after a write the change log captures but whose keys the wrapper did not learn (it
 * leaves the caller's statement as written rather than add RETURNING) this process keeps the
 * migration's reads on the old store. The triggers log the change in the writer's transaction and
 * the workers apply it within their poll interval (100 ms by default) plus a batch; five seconds
 * covers that with a wide margin, and a read that would still be early sees the row as it was —
 * the cost that a table written by statements naming their keys does not pay.
 */
export const UNKEYED_FALLBACK_MS = 5_000

const lastUnkeyed = new WeakMap<MigrationRuntime, number>()

/** Notes that this process just committed a captured write of unknown keys on the old side of `runtime`. */
export function markUnkeyed(runtime: MigrationRuntime): void {
  lastUnkeyed.set(runtime, performance.now())
}

/** Whether this process committed such a write within the last `UNKEYED_FALLBACK_MS`. */
export function recentlyUnkeyed(runtime: MigrationRuntime): boolean {
  const at = lastUnkeyed.get(runtime)
  return at !== undefined && performance.now() - at < UNKEYED_FALLBACK_MS
}
