import type { Migration } from '../../model/migration.js'
import { type KeyValue, keyString, type Row, type WriteMode, storeRecordKey } from '../../model/store.js'
import type { ReadBatch } from './read-batch.js'
import type { WrittenBatch } from './write-batch.js'

/** The old store's rows of a written batch, read again after the write. */
export interface SourceRecheck {
  /** The batch's source rows as they are now, by key; a key not here was deleted meanwhile. */
  readonly current: ReadonlyMap<string, Row>
  /** Copies removed from the new store because their source was gone. */
  readonly removed: number
}

/**
 * Closes the window between a batch's read and its write (issue 10, item 7): a row the
 * application deletes in that window has its mirrored delete find nothing (the copy is not there
 * yet), and the batch's insert-if-absent then writes the copy it read. So, once the write has
 * committed, the batch's keys are read again from the old store, and the copies of those that are
 * gone are deleted from the new store.
 *
 * Why this closes it: a delete committed before the re-read is seen by it; one committed after it
 * committed after the batch's write, so its mirrored delete runs after the write and removes the
 * copy. The one race left is a key deleted before the re-read and inserted again right after it,
 * whose fresh copy the mirror writes before this deletes it: the keys deleted here are read once
 * more and re-copied (insert-if-absent) if they are back, and the inline verification, which
 * compares with these re-read rows, reports whatever still differs.
 */
export async function removeDeleted(migration: Migration<any, any>, batch: ReadBatch, written: WrittenBatch, mode: WriteMode): Promise<SourceRecheck> {
  if (written.sources.size === 0) return { current: new Map(), removed: 0 }
  const current = await rereadSources(migration, batch, written.sources)
  const gone = [...written.sources].filter(([key]) => !current.has(key)).map(([, row]) => storeRecordKey(migration.old, migration.key.old, row))
  if (gone.length === 0) return { current, removed: 0 }
  const removed = await migration.new.delete(gone)
  await reinstateReturned(migration, gone, mode)
  return { current, removed }
}

/**
 * The batch's source rows as they are now. Read as the batch was, by one keyset page over the same
 * range (a page costs one query whatever the store; a lookup of thousands of keys can cost one per
 * key, as on FerretDB), with room for rows inserted meanwhile; the keys that page did not reach are
 * looked up by key, so a row is only taken as deleted when the store says it is absent.
 */
async function rereadSources(migration: Migration<any, any>, batch: ReadBatch, sources: ReadonlyMap<string, Row>): Promise<Map<string, Row>> {
  const keyOf = (row: Row) => storeRecordKey(migration.old, migration.key.old, row)
  const limit = batch.rows.length + Math.ceil(batch.rows.length / 10) + 10
  const page = await migration.old.scan({ ...(batch.after === undefined ? {} : { after: batch.after }), limit })
  const current = new Map<string, Row>()
  for (const row of page) {
    const key = keyString(keyOf(row))
    if (sources.has(key)) current.set(key, row)
  }
  const unseen = [...sources].filter(([key]) => !current.has(key)).map(([, row]) => keyOf(row))
  if (unseen.length > 0) for (const [key, row] of await migration.old.get(unseen)) current.set(key, row)
  return current
}

/** Re-copies the keys deleted as gone that are back in the old store already. */
async function reinstateReturned(migration: Migration<any, any>, keys: readonly KeyValue[], mode: WriteMode): Promise<void> {
  const back = await migration.old.get(keys)
  if (back.size === 0) return
  const records: Row[] = []
  for (const [key, row] of back) {
    try {
      records.push(migration.mapper.forward(row, { key, migration: migration.name }))
    } catch {
      // Rejected now: the inline verification reports the key as different.
    }
  }
  if (records.length > 0) await migration.new.upsert(records, mode)
}
