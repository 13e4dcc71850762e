import { type Kysely, sql } from 'kysely'
import type { GateSettings } from './phase-gates.js'

/**
 * The safety net after `complete`: for `revertWindowMs` the reverse mirror keeps the old store
 * current, so moving back to `cutover` loses nothing; from `readOnlyUntil` back to that moment the
 * old store refuses writes, so that it stays the archive it was at the move (the design source's
 * regulator asking for records on day 14). `cutover release` ends both early.
 */
export interface SafetyNetState {
  readonly migration: string
  readonly completedAt: Date
  /** Until then the reverse mirror runs and `complete → cutover` is allowed. */
  readonly revertUntil: Date
  /** Until then the old store is read-only (from `revertUntil` on; the mirror writes before it). */
  readonly readOnlyUntil: Date
  readonly releasedAt: Date | undefined
  readonly releasedBy: string | undefined
}

/** `cutover.safety_nets`: one row per completed migration. */
export class SafetyNets {
  constructor(readonly db: Kysely<any>) {}

  /** Records that `migration` completed now (replacing an earlier record, e.g. after a revert). */
  async begin(migration: string, settings: GateSettings['complete'], now = new Date()): Promise<SafetyNetState> {
    const revertUntil = new Date(now.getTime() + settings.revertWindowMs)
    const readOnlyUntil = new Date(now.getTime() + settings.readOnlyMs)
    const values = { migration, completed_at: now, revert_until: revertUntil, read_only_until: readOnlyUntil, released_at: null, released_by: null }
    await this.db
      .insertInto('cutover.safety_nets')
      .values(values)
      .onConflict((oc) => oc.column('migration').doUpdateSet(values))
      .execute()
    return { migration, completedAt: now, revertUntil, readOnlyUntil, releasedAt: undefined, releasedBy: undefined }
  }

  async state(migration: string): Promise<SafetyNetState | undefined> {
    const rows = await this.all([migration])
    return rows[0]
  }

  async all(migrations?: readonly string[]): Promise<SafetyNetState[]> {
    let query = this.db.selectFrom('cutover.safety_nets').selectAll()
    if (migrations) query = query.where('migration', 'in', migrations.length > 0 ? migrations : [''])
    const rows = await query.execute()
    return rows.map((row) => ({
      migration: row.migration,
      completedAt: row.completed_at,
      revertUntil: row.revert_until,
      readOnlyUntil: row.read_only_until,
      releasedAt: row.released_at ?? undefined,
      releasedBy: row.released_by ?? undefined,
    }))
  }

  async release(migration: string, actor: string, now = new Date()): Promise<SafetyNetState | undefined> {
    await this.db.updateTable('cutover.safety_nets').set({ released_at: now, released_by: actor }).where('migration', '=', migration).where('released_at', 'is', null).execute()
    return this.state(migration)
  }

  /** Forgets the record: the migration went back to `cutover` inside its revert window. */
  async clear(migration: string): Promise<void> {
    await this.db.deleteFrom('cutover.safety_nets').where('migration', '=', migration).execute()
  }
}

/** Whether the reverse mirror still runs and `complete → cutover` is still allowed. */
export function revertWindowOpen(state: SafetyNetState | undefined, now = new Date()): boolean {
  return state !== undefined && state.releasedAt === undefined && now < state.revertUntil
}

/** Whether the old store refuses writes now. */
export function oldStoreReadOnly(state: SafetyNetState | undefined, now = new Date()): boolean {
  return state !== undefined && state.releasedAt === undefined && now >= state.revertUntil && now < state.readOnlyUntil
}

/** The `cutover.safety_nets` table; part of `ensureSchema`. */
export async function createSafetyNetsTable(db: Kysely<any>): Promise<void> {
  await sql`
    create table if not exists cutover.safety_nets (
      migration text primary key,
      completed_at timestamptz not null,
      revert_until timestamptz not null,
      read_only_until timestamptz not null,
      released_at timestamptz,
      released_by text
    )`.execute(db)
}
