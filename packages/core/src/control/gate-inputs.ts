import { type Kysely, sql } from 'kysely'
import { isPhase, type Phase } from '../model/phase.js'
import { type GateInputs, lastEntry, type PhaseEntry } from './phase-gates.js'
import { SignalHistory } from './signal-history.js'

/** Instances whose last report is older than this are taken to be gone. */
export const INSTANCE_FRESHNESS_MS = 60_000

/**
 * Reads what the phase gates look at from the control tables: the phase timeline (from the audit),
 * backfill checkpoints, open dead letters, the latest exhaustive verification, and the signals the
 * instances recorded since the migration last entered `windowPhase` (or, if it never did, `from`).
 */
export async function readGateInputs(db: Kysely<any>, migration: string, windowPhase: Phase, from: Phase, now = new Date()): Promise<GateInputs> {
  const timeline = await phaseTimeline(db, migration)
  const entered = (lastEntry(timeline, windowPhase) ?? lastEntry(timeline, from))?.at ?? new Date(0)
  const signals = new SignalHistory(db)
  const [backfill, openDeadLetters, verification, sinceEntry, hourly, instances] = await Promise.all([
    backfillState(db, migration),
    countOpenDeadLetters(db, migration),
    latestExhaustiveVerification(db, migration),
    signals.totals(migration, entered),
    signals.series(migration, entered, 3_600_000),
    signals.latestLevels(migration, now, INSTANCE_FRESHNESS_MS),
  ])
  return Object.freeze({ now, timeline, backfill, openDeadLetters, verification, sinceEntry, hourly, instances })
}

/** Every audited phase change (and guard rollback) of a migration, oldest first. */
export async function phaseTimeline(db: Kysely<any>, migration: string): Promise<PhaseEntry[]> {
  const rows = await db
    .selectFrom('cutover.audit')
    .select(['at', 'actor', 'details'])
    .where('migration', '=', migration)
    .where('action', 'in', ['phase_change', 'guard_rollback'])
    .orderBy('id')
    .execute()
  return rows.flatMap((row) => {
    const after = (row.details as { after?: { phase?: unknown; readPercent?: unknown } }).after
    if (!after || !isPhase(after.phase)) return []
    return [Object.freeze({ at: row.at as Date, phase: after.phase, readPercent: Number(after.readPercent ?? 0), actor: String(row.actor) })]
  })
}

async function backfillState(db: Kysely<any>, migration: string): Promise<GateInputs['backfill']> {
  const row = await sql<{ ranges: string; done: string; finished_at: Date | null }>`
    select count(*) as ranges, count(*) filter (where status = 'done') as done, max(finished_at) as finished_at
      from cutover.backfill_checkpoints where migration = ${migration}`.execute(db)
  const first = row.rows[0]
  return { ranges: Number(first?.ranges ?? 0), done: Number(first?.done ?? 0), finishedAt: first?.finished_at ?? undefined }
}

async function countOpenDeadLetters(db: Kysely<any>, migration: string): Promise<number> {
  const row = await db
    .selectFrom('cutover.dead_letters')
    .select((eb) => eb.fn.countAll<string>().as('n'))
    .where('migration', '=', migration)
    .where('resolved_at', 'is', null)
    .executeTakeFirst()
  return Number(row?.n ?? 0)
}

async function latestExhaustiveVerification(db: Kysely<any>, migration: string): Promise<GateInputs['verification']> {
  const row = await db
    .selectFrom('cutover.verification_reports')
    .select(['id', 'finished_at', 'consistent'])
    .where('migration', '=', migration)
    .where('kind', '=', 'exhaustive')
    .orderBy('id', 'desc')
    .limit(1)
    .executeTakeFirst()
  return row ? { id: String(row.id), finishedAt: row.finished_at as Date, consistent: Boolean(row.consistent) } : undefined
}
