import { type Kysely, sql } from 'kysely'
import type { Migration } from '../model/migration.js'
import type { Phase } from '../model/phase.js'
import { AuditLog } from './audit-log.js'
import { CheckpointTable } from './checkpoint.js'
import { DeadLetterTable } from './dead-letters.js'
import { phaseTimeline } from './gate-inputs.js'
import type { PhaseEntry } from './phase-gates.js'
import { phasePlan, type PhasePlan } from './phase-plan.js'
import { QuarantineTable } from './quarantine.js'
import { SignalHistory, type SignalPoint } from './signal-history.js'

/** Points a chart of the migration's whole life shows at most; buckets widen to fit. */
const CHART_POINTS = 240

/** Everything `cutover report` shows of one migration, read from the control tables. */
export interface ReportData {
  readonly migration: string
  readonly generatedAt: Date
  readonly phase: Phase
  readonly plan: PhasePlan
  readonly timeline: readonly PhaseEntry[]
  /** Signals of the whole life, in buckets of `bucketMs`. */
  readonly signals: readonly SignalPoint[]
  readonly bucketMs: number
  readonly quarantineByReason: Readonly<Record<string, number>>
  readonly deadLettersByReason: Readonly<Record<string, number>>
  readonly backfill: {
    readonly ranges: number
    readonly done: number
    readonly read: number
    readonly written: number
    readonly skipped: number
    readonly quarantined: number
    readonly total: number | undefined
  }
  readonly verifications: readonly {
    readonly id: string
    readonly kind: string
    readonly finishedAt: Date
    readonly consistent: boolean
    readonly compared: number
    readonly summary: string
  }[]
  readonly audit: { readonly ok: boolean; readonly entries?: number; readonly problem?: string }
}

export async function readReportData(db: Kysely<any>, migration: Migration<any, any>, phase: Phase, options: { total?: number; now?: Date } = {}): Promise<ReportData> {
  const now = options.now ?? new Date()
  const timeline = await phaseTimeline(db, migration.name)
  const start = timeline[0]?.at ?? new Date(now.getTime() - 3_600_000)
  const bucketMs = Math.max(60_000, Math.ceil((now.getTime() - start.getTime()) / CHART_POINTS / 60_000) * 60_000)
  const [plan, signals, quarantineByReason, deadLettersByReason, checkpoints, verifications, audit] = await Promise.all([
    phasePlan(db, migration, phase, now),
    new SignalHistory(db).series(migration.name, start, bucketMs),
    new QuarantineTable(db).countByReason(migration.name),
    new DeadLetterTable(db).countByReason(migration.name),
    new CheckpointTable(db).list(migration.name),
    recentVerifications(db, migration.name),
    auditStatus(db),
  ])
  const sum = (field: 'read' | 'written' | 'skipped' | 'quarantined') => checkpoints.reduce((n, c) => n + c.counts[field], 0)
  return Object.freeze({
    migration: migration.name,
    generatedAt: now,
    phase,
    plan,
    timeline,
    signals,
    bucketMs,
    quarantineByReason,
    deadLettersByReason,
    backfill: {
      ranges: checkpoints.length,
      done: checkpoints.filter((c) => c.status === 'done').length,
      read: sum('read'),
      written: sum('written'),
      skipped: sum('skipped'),
      quarantined: sum('quarantined'),
      total: options.total,
    },
    verifications,
    audit,
  })
}

async function recentVerifications(db: Kysely<any>, migration: string): Promise<ReportData['verifications']> {
  const rows = await sql<{ id: string; kind: string; finished_at: Date; consistent: boolean; compared: string; summary: string }>`
    select id, kind, finished_at, consistent, compared, summary from cutover.verification_reports
     where migration = ${migration} order by id desc limit 20`.execute(db)
  return rows.rows.map((row) => ({
    id: String(row.id),
    kind: row.kind,
    finishedAt: row.finished_at,
    consistent: row.consistent,
    compared: Number(row.compared),
    summary: row.summary,
  }))
}

async function auditStatus(db: Kysely<any>): Promise<ReportData['audit']> {
  try {
    const result = await new AuditLog(db).verify()
    return result.ok ? { ok: true, entries: result.entries } : { ok: false, problem: `entry ${result.entryId}: ${result.problem}` }
  } catch (error) {
    return { ok: false, problem: (error as Error).message }
  }
}
