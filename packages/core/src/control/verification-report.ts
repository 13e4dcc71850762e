import type { Kysely } from 'kysely'
import type { Difference } from '../model/compare.js'

export type InconsistencyKind = 'MISSING_IN_NEW' | 'MISSING_IN_OLD' | 'DIFFERENT'

/** One key whose two copies disagree. Values of sensitive fields are already redacted. */
export interface Inconsistency {
  readonly key: string
  readonly kind: InconsistencyKind
  /** For `DIFFERENT`: the differing fields (paths), with canonical values unless sensitive. */
  readonly differences: readonly Difference[]
  /** Set when the old record is one the mapper rejects (see the quarantine table). */
  readonly detail?: string
}

export interface VerificationCounts {
  /** Records in the old store (mapped) that were covered. */
  readonly oldRecords: number
  readonly newRecords: number
  /** Segments compared at the first level, and those that differed there. */
  readonly segments: number
  readonly differingSegments: number
  /** Keys compared field by field. */
  readonly keysCompared: number
  /** Keys that differed at first but were equal, or still changing, when re-checked. */
  readonly settledOnRecheck: number
  readonly missingInNew: number
  readonly missingInOld: number
  readonly different: number
}

export interface VerificationReport {
  readonly id?: string
  readonly migration: string
  readonly kind: 'exhaustive' | 'sampled'
  readonly startedAt: Date
  readonly finishedAt: Date
  readonly consistent: boolean
  readonly counts: VerificationCounts
  /** Sum of the old and new sides' segment checksums (hex), for the audit trail. */
  readonly checksums: { readonly old: string; readonly new: string }
  readonly inconsistencies: readonly Inconsistency[]
  /** More inconsistencies were found than kept (`counts` has them all). */
  readonly truncated: boolean
}

/** A readable summary: one line of counts, then one line per inconsistency (up to `limit`). */
export function formatReport(report: VerificationReport, limit = 50): string {
  const c = report.counts
  const lines = [
    `${report.kind} verification of ${report.migration}: ${report.consistent ? 'CONSISTENT' : 'INCONSISTENT'}`,
    `  old records ${c.oldRecords}, new records ${c.newRecords}, segments ${c.segments} (${c.differingSegments} differing), keys compared ${c.keysCompared}, settled on re-check ${c.settledOnRecheck}`,
    `  missing in new ${c.missingInNew}, missing in old ${c.missingInOld}, different ${c.different}`,
  ]
  for (const entry of report.inconsistencies.slice(0, limit)) {
    const fields = entry.differences
      .map((d) => (d.redacted ? `${d.path} (redacted)` : `${d.path}: ${JSON.stringify(d.expected ?? null)} → ${JSON.stringify(d.actual ?? null)}`))
      .join('; ')
    lines.push(`  ${entry.kind.padEnd(14)} ${entry.key}${fields ? `  ${fields}` : ''}${entry.detail ? `  (${entry.detail})` : ''}`)
  }
  if (report.inconsistencies.length > limit || report.truncated) lines.push(`  … ${c.missingInNew + c.missingInOld + c.different - Math.min(limit, report.inconsistencies.length)} more`)
  return lines.join('\n')
}

/** `cutover.verification_reports`: every verification's report, JSON and summary. */
export class VerificationReports {
  constructor(readonly db: Kysely<any>) {}

  async save(report: VerificationReport): Promise<string> {
    const row = await this.db
      .insertInto('cutover.verification_reports')
      .values({
        migration: report.migration,
        kind: report.kind,
        started_at: report.startedAt,
        finished_at: report.finishedAt,
        compared: report.counts.oldRecords,
        consistent: report.consistent,
        counts: JSON.stringify({ ...report.counts, checksums: report.checksums }),
        entries: JSON.stringify(report.inconsistencies),
        truncated: report.truncated,
        summary: formatReport(report),
      })
      .returning('id')
      .executeTakeFirstOrThrow()
    return String(row.id)
  }

  /** The latest report of a migration (or the one with `id`). */
  async load(migration: string, id?: string): Promise<VerificationReport | undefined> {
    let query = this.db.selectFrom('cutover.verification_reports').selectAll().where('migration', '=', migration)
    query = id ? query.where('id', '=', id) : query.orderBy('id', 'desc').limit(1)
    const row = await query.executeTakeFirst()
    if (!row) return undefined
    const { checksums, ...counts } = row.counts as VerificationCounts & { checksums: VerificationReport['checksums'] }
    return {
      id: String(row.id),
      migration: row.migration,
      kind: row.kind,
      startedAt: row.started_at,
      finishedAt: row.finished_at,
      consistent: row.consistent,
      counts,
      checksums,
      inconsistencies: row.entries,
      truncated: row.truncated,
    }
  }
}
