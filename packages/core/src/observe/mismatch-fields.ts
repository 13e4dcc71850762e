import type { Difference } from '../model/compare.js'
import type { Metrics } from './metrics.js'

/** Distinct field labels kept per migration; further ones are counted as `(other)`. */
const MAX_FIELDS = 200

const seenFields = new WeakMap<Metrics, Map<string, Set<string>>>()

/**
 * Counts the differences of compared reads by field path (`compare.mismatch_field`), with array
 * positions folded to `*` (`tags.3.name` → `tags.*.name`) and at most 200 distinct fields per
 * migration, so the label stays of bounded cardinality whatever the data holds.
 */
export function countMismatchedFields(
  metrics: Metrics,
  migration: string,
  different: readonly { readonly differences: readonly Difference[] }[],
): void {
  if (different.length === 0) return
  let byMigration = seenFields.get(metrics)
  if (!byMigration) seenFields.set(metrics, (byMigration = new Map()))
  let seen = byMigration.get(migration)
  if (!seen) byMigration.set(migration, (seen = new Set()))
  for (const { differences } of different) {
    for (const difference of differences) {
      const folded = difference.path.replace(/(^|\.)\d+(?=\.|$)/g, '$1*') || '(record)'
      if (!seen.has(folded) && seen.size < MAX_FIELDS) seen.add(folded)
      metrics.increment('compare.mismatch_field', { migration, field: seen.has(folded) ? folded : '(other)' })
    }
  }
}
