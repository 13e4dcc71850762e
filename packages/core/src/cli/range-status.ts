import type { Kysely } from 'kysely'
import { BackfillJobs, type RangeHolding } from '../jobs/backfill-jobs.js'
import { formatCount } from './progress-renderer.js'

/** A distributed backfill's ranges as `cutover status` shows them: who holds which, since when, how far. */
export interface RangeStatus {
  readonly rangeId: string
  readonly status: RangeHolding['status']
  readonly holder: { readonly workerId: string; readonly host: string; readonly pid: number; readonly since: string; readonly heldForS: number } | null
  readonly read: number
  readonly lastKey: string | null
  readonly updatedAt: string | null
}

/** Per range of the plan (none for a single-process backfill). */
export async function rangeStatuses(control: Kysely<any>, migration: string, now = new Date()): Promise<RangeStatus[]> {
  const holdings = await new BackfillJobs({ control }).holdings(migration)
  return holdings.map((h) => ({
    rangeId: h.rangeId,
    status: h.status,
    holder: h.holder ? { workerId: h.holder.workerId, host: h.holder.host, pid: h.holder.pid, since: h.holder.since.toISOString(), heldForS: Math.round((now.getTime() - h.holder.since.getTime()) / 100) / 10 } : null,
    read: h.read,
    lastKey: h.lastKey ?? null,
    updatedAt: h.updatedAt?.toISOString() ?? null,
  }))
}

/** The ranges held now, one line each, and a count of the others by status. */
export function rangeLines(ranges: readonly RangeStatus[]): string[] {
  if (ranges.length === 0) return []
  const held = ranges.filter((r) => r.holder !== null)
  const counts = { pending: 0, running: 0, done: 0 }
  for (const r of ranges) counts[r.status]++
  return [
    `  ranges: ${counts.done} done, ${counts.running} started, ${counts.pending} not started; ${held.length} held now${held.length > 0 ? ':' : ''}`,
    ...held.map((r) => {
      const h = r.holder as NonNullable<RangeStatus['holder']>
      return `    ${r.rangeId}: ${h.workerId} (${h.host} pid ${h.pid}) since ${h.since} (${h.heldForS}s), ${formatCount(r.read)} read${r.lastKey ? `, at key ${r.lastKey}` : ''}`
    }),
  ]
}
