import { createHash } from 'node:crypto'
import { canonicalText, canonicalize } from '../../model/canonical.js'
import { type KeyValue, keyString } from '../../model/store.js'
import type { BackfillOptions } from './options.js'

/**
 * What makes two runs the same backfill: the stores, keys, write mode, range, declarative field map
 * and comparison rules, and the user's `configVersion`. Batch sizes and throttles may change
 * between runs; a mapper's code cannot be hashed, hence `configVersion`.
 */
export function backfillFingerprint(options: Pick<BackfillOptions, 'migration' | 'range' | 'configVersion'>): string {
  const { migration } = options
  const fieldMap = migration.mapper.fieldMap?.forwardSql((field: string) => `"${field}"`)
  const description = {
    migration: migration.name,
    old: migration.old.name,
    new: migration.new.name,
    key: migration.key,
    version: migration.version?.new ?? null,
    range: options.range
      ? { id: options.range.id, after: keyOrNull(options.range.after), until: keyOrNull(options.range.until) }
      : null,
    fieldMap: fieldMap ?? null,
    compare: migration.compare ?? null,
    configVersion: options.configVersion ?? null,
  }
  return createHash('sha256').update(canonicalText(canonicalize(description)), 'utf8').digest('hex')
}

function keyOrNull(key: KeyValue | undefined): string | null {
  return key === undefined ? null : `${typeof key}:${keyString(key)}`
}
