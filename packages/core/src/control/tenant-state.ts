import { type Kysely, sql } from 'kysely'
import { isPhase, type Phase } from '../model/phase.js'
import { readGateInputs } from './gate-inputs.js'
import { type GateInputs, lastEntry, type TenantPhaseChange, tenantTimeline } from './phase-gates.js'
import { SignalHistory } from './signal-history.js'
import { type MigrationSettings, settingsFromRow } from '../model/settings.js'

/** One tenant's own settings: its phase, read percent and compare sample override the migration's. */
export interface TenantOverride extends MigrationSettings {
  readonly migration: string
  readonly tenant: string
  /** Counts changes of the row (set and clear alike), as `migration_state.version` does. */
  readonly version: number
  readonly updatedBy: string
  readonly updatedAt: Date
}

/** A row read back: an override, a cleared one (the tenant follows the migration), or one that fails validation. */
export type TenantRow =
  | { readonly kind: 'override'; readonly override: TenantOverride }
  | { readonly kind: 'cleared'; readonly migration: string; readonly tenant: string; readonly version: number }
  | { readonly kind: 'invalid'; readonly migration: string; readonly tenant: string; readonly version: number; readonly problems: readonly string[] }

/**
 * `cutover.tenant_state`: per migration and tenant, the settings that override the migration's
 * control row for the requests of that tenant. A cleared override keeps its row with a null phase,
 * so the version never goes back (fences wait on it). Every value read back goes through the same
 * validation as env flags and `setPhase` (`model/settings.ts`).
 */
export class TenantStateTable {
  constructor(readonly db: Kysely<any>) {}

  /** Every row, cleared ones included (the fleet member follows their versions). */
  async rows(migration?: string): Promise<TenantRow[]> {
    let query = this.db.selectFrom('cutover.tenant_state').selectAll().orderBy('migration').orderBy('tenant')
    if (migration !== undefined) query = query.where('migration', '=', migration)
    return (await query.execute()).map(readRow)
  }

  /** The overrides in force (cleared and invalid rows left out). */
  async overrides(migration?: string): Promise<TenantOverride[]> {
    return (await this.rows(migration)).flatMap((row) => (row.kind === 'override' ? [row.override] : []))
  }

  async override(migration: string, tenant: string): Promise<TenantOverride | undefined> {
    const row = await this.db.selectFrom('cutover.tenant_state').selectAll().where('migration', '=', migration).where('tenant', '=', tenant).executeTakeFirst()
    const read = row ? readRow(row) : undefined
    return read?.kind === 'override' ? read.override : undefined
  }

  /** Writes the tenant's settings (`phase: null` clears the override); returns the row's new version. */
  async write(migration: string, tenant: string, settings: { phase: Phase; readPercent: number; compareSample: number } | { phase: null }, actor: string): Promise<number> {
    const values = settings.phase === null ? { phase: null, read_percent: null, compare_sample: null } : { phase: settings.phase, read_percent: settings.readPercent, compare_sample: settings.compareSample }
    const row = await this.db
      .insertInto('cutover.tenant_state')
      .values({ migration, tenant, ...values, updated_by: actor })
      .onConflict((oc) => oc.columns(['migration', 'tenant']).doUpdateSet({ ...values, updated_by: actor, updated_at: new Date(), version: sql`cutover.tenant_state.version + 1` }))
      .returning('version')
      .executeTakeFirstOrThrow()
    return Number(row.version)
  }
}

/** A row through the settings' validation (`settingsFromRow`); an override's unset numbers are 0. */
function readRow(row: Record<string, any>): TenantRow {
  const base = { migration: String(row.migration), tenant: String(row.tenant), version: Number(row.version) }
  if (row.phase === null || row.phase === undefined) return { kind: 'cleared', ...base }
  const read = settingsFromRow(row)
  if (!read.ok || read.settings.phase === undefined) return { kind: 'invalid', ...base, problems: read.ok ? ['no phase'] : read.problems }
  const { phase, readPercent = 0, compareSample = 0 } = read.settings
  const override: TenantOverride = Object.freeze({ ...base, phase, readPercent, compareSample, updatedBy: String(row.updated_by), updatedAt: row.updated_at as Date })
  return { kind: 'override', override }
}

/** `migration\u0000tenant`, or the migration alone: how holds, fences and versions name their scope. */
export function scopeKey(migration: string, tenant?: string): string {
  return tenant === undefined || tenant === '' ? migration : `${migration}\u0000${tenant}`
}

/** The tenant a `scopeKey` of `migration` names, or undefined for the whole migration or another migration. */
export function tenantOfScope(scope: string, migration: string): string | undefined {
  const prefix = `${migration}\u0000`
  return scope.startsWith(prefix) ? scope.slice(prefix.length) : undefined
}

/** Every audited change of one tenant's own phase, oldest first. */
export async function tenantPhaseChanges(db: Kysely<any>, migration: string, tenant: string): Promise<TenantPhaseChange[]> {
  const rows = await db
    .selectFrom('cutover.audit')
    .select(['at', 'actor', 'details'])
    .where('migration', '=', migration)
    .where('action', '=', 'tenant_phase_change')
    .where(sql<string>`details->>'tenant'`, '=', tenant)
    .orderBy('seq')
    .execute()
  return rows.map((row) => {
    const details = row.details as { cleared?: unknown; after?: { phase?: unknown; readPercent?: unknown } }
    const after = details.after
    const override = details.cleared !== true && after && isPhase(after.phase) ? { phase: after.phase, readPercent: Number(after.readPercent ?? 0) } : undefined
    return Object.freeze({ at: row.at as Date, override, actor: String(row.actor) })
  })
}

/**
 * What the gates of a tenant's move look at: the tenant's own timeline (`tenantTimeline`), and the
 * migration's backfill, dead letters, verification and signals. The signals carry no tenant (a
 * tenant id is never a metric label), so compared reads and mirror outcomes are the migration's,
 * counted since the tenant entered the move's window phase.
 */
export async function readTenantGateInputs(db: Kysely<any>, migration: string, tenant: string, windowPhase: Phase, from: Phase, now = new Date()): Promise<GateInputs> {
  const [base, changes] = await Promise.all([readGateInputs(db, migration, windowPhase, from, now), tenantPhaseChanges(db, migration, tenant)])
  const timeline = tenantTimeline(base.timeline, changes)
  const entered = (lastEntry(timeline, windowPhase) ?? lastEntry(timeline, from))?.at ?? new Date(0)
  const signals = new SignalHistory(db)
  const [sinceEntry, hourly] = await Promise.all([signals.totals(migration, entered), signals.series(migration, entered, 3_600_000)])
  return Object.freeze({ ...base, timeline, sinceEntry, hourly })
}
