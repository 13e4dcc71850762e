import type { MigrationRuntime } from '@cutover/core'

/**
 * How long after a write it could not mirror (raw SQL, a write inside a CTE, the old keys of a key
 * update) this process keeps the migration's reads on the old store. The new store lacks that write
 * until reconciliation, and which keys it touched is unknown, so no read of the migration can be
 * trusted to the new store meanwhile; a minute covers the application's read-after-write without
 * switching the ramp off for good after one maintenance statement.
 */
export const UNMIRRORED_FALLBACK_MS = 60_000

const unmirrored = recentWrites(UNMIRRORED_FALLBACK_MS)

/** Notes that this process just committed a write on the old side of `runtime` that it did not mirror. */
export const markUnmirrored = unmirrored.mark

/** Whether this process committed such a write within the last `UNMIRRORED_FALLBACK_MS`. */
export const recentlyUnmirrored = unmirrored.recent

/** When this process last committed a kind of write per migration, and whether that was within `windowMs`. */
function recentWrites(windowMs: number) {
  const last = new WeakMap<MigrationRuntime, number>()
  return {
    mark(runtime: MigrationRuntime): void {
      last.set(runtime, performance.now())
    },
    recent(runtime: MigrationRuntime): boolean {
      const at = last.get(runtime)
      return at !== undefined && performance.now() - at < windowMs
    },
  }
}
