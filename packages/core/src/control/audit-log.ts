import { createHash } from 'node:crypto'
import { type Kysely, sql } from 'kysely'
import { canonicalText, canonicalize } from '../model/canonical.js'

export type AuditAction =
  | 'phase_change'
  | 'dead_letter_replay'
  | 'backfill'
  | 'verification'
  | 'reconciliation'
  | 'quarantine'
  | 'guard_rollback'
  | 'job_control'
  | 'safety_net_release'

export interface AuditEntry {
  readonly actor: string
  readonly migration: string
  readonly action: AuditAction
  /** Counts, checksums, before/after values of the change. */
  readonly details: Readonly<Record<string, unknown>>
}

export interface StoredAuditEntry extends AuditEntry {
  readonly id: string
  readonly at: Date
  readonly prevHash: string
  readonly hash: string
}

/** The hash of the chain before its first entry. */
export const AUDIT_GENESIS = '0'.repeat(64)

/**
 * The append-only audit table. Each entry carries the hash of the previous one, so that a changed or
 * deleted entry breaks the chain and `verify()` finds it.
 *
 *     hash = sha256_hex(prev_hash || "\n" || canonical_text({ actor, migration, action, details, at }))
 */
export class AuditLog {
  constructor(readonly db: Kysely<any>) {}

  async append(entry: AuditEntry): Promise<StoredAuditEntry> {
    return this.db.transaction().execute(async (trx) => {
      // Serializes appends so that each sees the previous hash; audit volume is low.
      await sql`select pg_advisory_xact_lock(hashtext('cutover.audit'))`.execute(trx)
      const last = await trx.selectFrom('cutover.audit').select('hash').orderBy('id', 'desc').limit(1).executeTakeFirst()
      const prevHash: string = last?.hash ?? AUDIT_GENESIS
      const at = new Date()
      const hash = auditHash(prevHash, { ...entry, at })
      const row = await trx
        .insertInto('cutover.audit')
        .values({ actor: entry.actor, migration: entry.migration, action: entry.action, details: JSON.stringify(entry.details), at, prev_hash: prevHash, hash })
        .returning(['id'])
        .executeTakeFirstOrThrow()
      return { ...entry, id: String(row.id), at, prevHash, hash }
    })
  }

  async entries(migration?: string): Promise<StoredAuditEntry[]> {
    let query = this.db.selectFrom('cutover.audit').selectAll().orderBy('id')
    if (migration) query = query.where('migration', '=', migration)
    const rows = await query.execute()
    return rows.map((row) => ({
      id: String(row.id),
      at: row.at,
      actor: row.actor,
      migration: row.migration,
      action: row.action,
      details: row.details,
      prevHash: row.prev_hash,
      hash: row.hash,
    }))
  }

  /** Walks the whole chain; returns the first entry that does not match, or `ok`. */
  async verify(): Promise<{ ok: true; entries: number } | { ok: false; entryId: string; problem: string }> {
    const entries = await this.entries()
    let prevHash = AUDIT_GENESIS
    for (const entry of entries) {
      if (entry.prevHash !== prevHash) return { ok: false, entryId: entry.id, problem: 'previous entry was changed or deleted' }
      if (auditHash(prevHash, entry) !== entry.hash) return { ok: false, entryId: entry.id, problem: 'entry was changed' }
      prevHash = entry.hash
    }
    return { ok: true, entries: entries.length }
  }
}

function auditHash(prevHash: string, entry: AuditEntry & { at: Date }): string {
  const body = canonicalText(
    canonicalize({ actor: entry.actor, migration: entry.migration, action: entry.action, details: entry.details, at: entry.at }),
  )
  return createHash('sha256').update(`${prevHash}\n${body}`, 'utf8').digest('hex')
}
