import type { QuarantinedRecord } from '../../control/quarantine.js'
import { MapperError } from '../../model/errors.js'
import type { Migration } from '../../model/migration.js'
import { type KeyValue, keyString, type Row, storeRecordKey } from '../../model/store.js'

/** A batch through the mapper: the records to write, by key, and what the mapper rejected. */
export interface MappedBatch {
  readonly mapped: Map<string, { readonly source: Row; readonly record: Row }>
  readonly quarantined: QuarantinedRecord[]
}

export function mapBatch(migration: Migration<any, any>, rows: readonly Row[]): MappedBatch {
  const quarantined: QuarantinedRecord[] = []
  const mapped = new Map<string, { source: Row; record: Row }>()
  for (const row of rows) {
    const keyValue = storeRecordKey(migration.old, migration.key.old, row)
    const key = keyString(keyValue)
    try {
      mapped.set(key, { source: row, record: migration.mapper.forward(row, { key, migration: migration.name }) })
    } catch (error) {
      if (!(error instanceof MapperError)) throw error
      quarantined.push(quarantineEntry(migration, keyValue, row, 'MAPPER_REJECTED', mapperReason(error), error.fields))
    }
  }
  return { mapped, quarantined }
}

/** A quarantine entry keeping the key with its parts' types, so a composite key comes back as parts. */
export function quarantineEntry(migration: Migration<any, any>, keyValue: KeyValue, payload: Row, reasonCode: string, reason: string, fields: readonly string[]): QuarantinedRecord {
  // Sensitive fields are sealed (or left out) when the quarantine table writes the payload.
  const sensitive = migration.compare?.sensitive
  return { migration: migration.name, key: keyString(keyValue), keyValue, reasonCode, reason, fields, payload, ...(sensitive ? { sensitive } : {}) }
}

/** The mapper's issues without the record key, so equal problems group under one reason. */
function mapperReason(error: MapperError): string {
  return `${error.stage}: ${error.issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message)).join('; ')}`
}
