import type { QuarantinedRecord } from '../../control/quarantine.js'
import type { Migration } from '../../model/migration.js'
import { keyString, type Row, storeRecordKey, type WriteMode } from '../../model/store.js'
import { type MappedBatch, quarantineEntry } from './map-batch.js'
import { storeReason, writeIsolating } from './write-isolating.js'

export interface WrittenBatch {
  readonly written: number
  readonly skipped: number
  readonly quarantined: readonly QuarantinedRecord[]
  /** The mapped records that were written (or found present), by key: what verification expects. */
  readonly expected: ReadonlyMap<string, Row>
  /** The source rows of `expected`, as the batch read them. */
  readonly sources: ReadonlyMap<string, Row>
  /** Of `expected`, the ones the write returned as stored: the read-back needs only the others. */
  readonly stored: ReadonlyMap<string, Row>
}

/** Writes a mapped batch; records the new store refuses one by one are quarantined. */
export async function writeBatch(migration: Migration<any, any>, batch: MappedBatch, mode: WriteMode): Promise<WrittenBatch> {
  const { mapped } = batch
  const quarantined = [...batch.quarantined]
  // Stores split writes that are too large for one statement themselves (KyselyTableStore does).
  const write = await writeIsolating(migration.new, [...mapped.values()].map((m) => m.record), mode)
  for (const { record, error } of write.refused) {
    const keyValue = storeRecordKey(migration.new, migration.key.new, record)
    const key = keyString(keyValue)
    const source = mapped.get(key)?.source ?? record
    mapped.delete(key)
    quarantined.push(quarantineEntry(migration, keyValue, source, 'STORE_REJECTED', storeReason(error), []))
  }
  const expected = new Map<string, Row>()
  const sources = new Map<string, Row>()
  for (const [key, m] of mapped) {
    expected.set(key, m.record)
    sources.set(key, m.source)
  }
  return { written: write.written, skipped: write.skipped, quarantined, expected, sources, stored: write.stored }
}
