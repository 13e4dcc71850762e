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
