import type { QuarantinedRecord } from '../../control/quarantine.js'
import { MapperError } from '../../model/errors.js'
import type { Migration } from '../../model/migration.js'
import { keyString, type Row, storeRecordKey } from '../../model/store.js'

/** A batch through the mapper: the records to write, by key, and what the mapper rejected. */
export interface MappedBatch {
  readonly mapped: Map<string, { readonly source: Row; readonly record: Row }>
  readonly quarantined: QuarantinedRecord[]
}

export function mapBatch(migration: Migration<any, any>, rows: readonly Row[]): MappedBatch {
  const quarantined: QuarantinedRecord[] = []
  const mapped = new Map<string, { source: Row; record: Row }>()
  for (const row of rows) {
    const key = keyString(storeRecordKey(migration.old, migration.key.old, row))
    try {
      mapped.set(key, { source: row, record: migration.mapper.forward(row, { key, migration: migration.name }) })
    } catch (error) {
      if (!(error instanceof MapperError)) throw error
      quarantined.push(quarantineEntry(migration, key, row, 'MAPPER_REJECTED', mapperReason(error), error.fields))
    }
  }
  return { mapped, quarantined }
}

export function quarantineEntry(migration: Migration<any, any>, key: string, payload: Row, reasonCode: string, reason: string, fields: readonly string[]): QuarantinedRecord {
  // Sensitive fields are sealed (or left out) when the quarantine table writes the payload.
  const sensitive = migration.compare?.sensitive
  return { migration: migration.name, key, reasonCode, reason, fields, payload, ...(sensitive ? { sensitive } : {}) }
}

/** The mapper's issues without the record key, so equal problems group under one reason. */
function mapperReason(error: MapperError): string {
  return `${error.stage}: ${error.issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message)).join('; ')}`
}
