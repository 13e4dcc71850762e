import { canonicalRecordText } from '../../model/canonical.js'
import { compareRecords, type ComparisonRules } from '../../model/compare.js'
import { MapperError } from '../../model/errors.js'
import type { Migration } from '../../model/migration.js'
import { type KeyValue, type Row, storeRecordKey, type Store } from '../../model/store.js'
import { projectOnto } from '../row-digest.js'
import type { BatchMismatch } from './options.js'
import type { SourceRecheck } from './remove-deleted.js'
import type { WrittenBatch } from './write-batch.js'
import { sleep } from '../../runtime/background.js'

/** How the inline verification retries keys that differ (the mirror may be mid-write). */
export interface VerifySettings {
  readonly retries?: number
  readonly delayMs?: number
}

/**
 * Compares the batch read back from the new store with the source as re-read after the write
 * (`recheck.current`): by identical values, else canonical text, then by fields for keys that differ, after re-reading both
 * sides (the mirror may have moved either). A key whose source changed or went away since the scan
 * goes straight to the re-read, so a copy of a deleted row is reported (`MISSING_IN_OLD`), never
 * found equal to the stale row it was copied from.
 */
export async function verifyBatch(
  migration: Migration<any, any>,
  written: WrittenBatch,
  recheck: SourceRecheck,
  settings: VerifySettings,
): Promise<{ mismatches: BatchMismatch[] }> {
  const rules: ComparisonRules = migration.compare ?? {}
  const { expected } = written
  const keys = [...expected.keys()]
  if (keys.length === 0) return { mismatches: [] }
  const actual = await readBack(migration, written, keys)
  const differing: string[] = []
  const moved: string[] = []
  for (const key of keys) {
    const now = recheck.current.get(key)
    if (now === undefined || !sameSource(written.sources.get(key), now)) {
      if (now !== undefined || actual.has(key)) moved.push(key)
      continue
    }
    const record = expected.get(key) as Row
    const copy = actual.get(key)
    // Identical values need no canonical text; the texts decide the rest (a numeric string, bytes).
    if (copy !== undefined && sameValues(record, copy)) continue
    if (copy === undefined || canonicalRecordText(projectOnto(copy, Object.keys(record)), rules) !== canonicalRecordText(record, rules)) differing.push(key)
  }
  if (differing.length === 0 && moved.length === 0) return { mismatches: [] }
  let pending = differing.filter((key) => {
    const copied = actual.get(key)
    const record = expected.get(key) as Row
    // Tolerances are not in the text: the field comparison has the last word.
    return !(copied && compareRecords(record, projectOnto(copied, Object.keys(record)), rules).equal)
  })
  pending.push(...moved)
  if (pending.length === 0) return { mismatches: [] }

  const retries = settings.retries ?? 3
  const delayMs = settings.delayMs ?? 200
  let mismatches: BatchMismatch[] = []
  for (let attempt = 0; attempt <= retries && pending.length > 0; attempt++) {
    if (attempt > 0) await sleep(delayMs * attempt)
    const lookup = pending.map((k) => expectedKey(expected, k, migration.new, migration.key.new))
    const [oldRows, newRows] = await Promise.all([migration.old.get(lookup), migration.new.get(lookup)])
    mismatches = []
    for (const key of pending) {
      const oldRow = oldRows.get(key)
      const newRow = newRows.get(key)
      if (!oldRow && !newRow) continue
      if (!oldRow) {
        mismatches.push({ key, kind: 'MISSING_IN_OLD', fields: [] })
        continue
      }
      let mappedNow: Row
      try {
        mappedNow = migration.mapper.forward(oldRow, { key, migration: migration.name })
      } catch (error) {
        // Changed since the scan into something the mapper rejects: verification will report it.
        mismatches.push({ key, kind: 'DIFFERENT', fields: error instanceof MapperError ? error.fields : [] })
        continue
      }
      if (!newRow) {
        mismatches.push({ key, kind: 'MISSING_IN_NEW', fields: [] })
        continue
      }
      const comparison = compareRecords(mappedNow, projectOnto(newRow, Object.keys(mappedNow)), rules)
      if (!comparison.equal) mismatches.push({ key, kind: 'DIFFERENT', fields: comparison.differences.map((d) => d.path) })
    }
    pending = mismatches.map((m) => m.key)
  }
  return { mismatches }
}

/**
 * The batch's copies as the new store holds them: those the write returned as stored, and the
 * others (skipped: present already) read by key.
 */
async function readBack(migration: Migration<any, any>, written: WrittenBatch, keys: readonly string[]): Promise<ReadonlyMap<string, Row>> {
  const { expected, stored } = written
  const unreturned = stored.size === 0 ? keys : keys.filter((key) => !stored.has(key))
  const read = unreturned.length === 0 ? new Map<string, Row>() : await migration.new.get(unreturned.map((k) => expectedKey(expected, k, migration.new, migration.key.new)))
  if (stored.size === 0) return read
  const actual = new Map(read)
  for (const key of keys) {
    const row = stored.get(key)
    if (row !== undefined) actual.set(key, row)
  }
  return actual
}

/**
 * Whether every field of `expected` holds the identical value in `actual` (Dates: the same
 * instant): then their canonical texts are equal under any rules, and building the copy's text
 * can be skipped. Anything else (a number read back as a numeric string, bytes) is left to the text.
 */
function sameValues(expected: Row, actual: Row): boolean {
  for (const field in expected) {
    const a = expected[field]
    const b = actual[field]
    if (a === b) continue
    if (a instanceof Date && b instanceof Date && a.getTime() === b.getTime()) continue
    return false
  }
  return true
}

/**
 * Whether the source row read again equals the one the batch read: deep over plain objects and
 * arrays (documents nest), Dates by instant, bytes by content. Either row read from one store
 * with one driver, so equal data has equal types here.
 */
export function sameSource(a: unknown, b: unknown): boolean {
  if (a === b) return true
  if (a instanceof Date) return b instanceof Date && a.getTime() === b.getTime()
  if (a instanceof Uint8Array) return b instanceof Uint8Array && Buffer.compare(a, b) === 0
  if (Array.isArray(a)) return Array.isArray(b) && a.length === b.length && a.every((item, i) => sameSource(item, b[i]))
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null || Array.isArray(b)) return false
  const aKeys = Object.keys(a)
  if (aKeys.length !== Object.keys(b).length) return false
  for (const key of aKeys) if (!sameSource((a as Row)[key], (b as Row)[key])) return false
  return true
}

/** The key value to look a record up by (the mapped record's own key, keeping its type). */
function expectedKey(expected: ReadonlyMap<string, Row>, key: string, store: Store, keyField: string): KeyValue {
  const record = expected.get(key)
  return (record ? storeRecordKey(store, keyField, record) : undefined) ?? key
}
