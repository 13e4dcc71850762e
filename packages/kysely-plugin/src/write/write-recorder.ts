import { compositeKey, type KeyPart, type KeyValue, mirrorsWritesOf } from '@cutover/core'
import type { MigratedTable } from '../dialect/migrated-tables.js'
import type { PendingWrite } from './transaction-buffer.js'
import { markUnmirrored } from './unmirrored-writes.js'

/**
 * Hands committed writes to the core: the mirror for captured keys, the unmirrored count otherwise.
 * Runs after the application's write (or COMMIT) has happened, so it never throws: a failure here
 * is reported as an unmirrored write, not turned into a failure of a write that succeeded.
 */
export function recordCommitted(write: PendingWrite): void {
  const { runtime, side, name } = write.table
  try {
    if (write.kind === 'write') runtime.recordWrite(side, write.event)
    else if (write.kind === 'unkeyed') runtime.recordUnkeyedWrite(side)
    else {
      if (side === 'old') markUnmirrored(runtime)
      runtime.recordUnmirrored(name, write.detail)
    }
  } catch (error) {
    try {
      runtime.recordUnmirrored(name, `recording the write failed: ${error instanceof Error ? error.message : String(error)}`)
    } catch {
      // Nothing left to report through: the key is left to reconciliation.
    }
  }
}

/**
 * Whether capturing the keys of a write on `table` can matter now: the phase mirrors, or the write
 * reaches the side that is no longer authoritative (mirrored forward under `permissive`). In `off`
 * and on the non-mirrored side nothing is rewritten, so those writes cost nothing.
 */
export function capturing(table: MigratedTable): boolean {
  const behavior = table.runtime.behaviorFor()
  // With the side captured by the change log, its keys only serve read-your-writes (reads served by
  // the other side while the log is still carrying this side's writes there: `ramp`, and `cutover`
  // for old-side writes let through by `permissive`) and compared reads, where a key whose log
  // entry is not applied yet is settling, not a mismatch. Either way the statement runs as
  // written: keys it names are noted, the others are not looked for.
  if (table.runtime.changeLog?.captures(table.side)) return mirrorsWritesOf(behavior, table.side, table.runtime.migration.staleSideWrites) && (behavior.reads !== table.side || behavior.compareReads)
  if (behavior.mirror === 'old-to-new') return table.side === 'old'
  if (behavior.mirror === 'new-to-old') return table.side === 'new' || behavior.authoritative !== table.side
  return behavior.authoritative !== table.side
}

/**
 * Key values as the rows returned them, from one field or, for a composite key, from one field per
 * key column (`compositeKey` in that order); rows without one (a null key column) are skipped.
 */
export function keysOf(rows: readonly Record<string, unknown>[], fields: string | readonly string[]): KeyValue[] {
  const keys: KeyValue[] = []
  if (typeof fields === 'string' || fields.length === 1) {
    const field = typeof fields === 'string' ? fields : (fields[0] as string)
    for (const row of rows) {
      const key = row[field]
      if (key !== null && key !== undefined) keys.push(key as KeyValue)
    }
    return keys
  }
  for (const row of rows) {
    const parts = fields.map((field) => row[field])
    if (parts.every((part) => part !== null && part !== undefined)) keys.push(compositeKey(...(parts as KeyPart[])))
  }
  return keys
}
