/**
 * What the demo prints after each phase, from Cutover's own metrics and control tables: writes
 * mirrored (both ways), consistency of compared reads, read share and latency per side, what is
 * quarantined or dead-lettered by reason, and what the v1 client saw.
 */
import type { Cutover, HistogramSummary } from '@cutover/core'
import type { Kysely } from 'kysely'

type Counters = Readonly<Record<string, number>>

export class PhaseReporter {
  #before: Counters = {}

  constructor(
    private readonly cutover: Cutover,
    private readonly control: Kysely<any>,
    private readonly say: (line: string) => void,
  ) {}

  begin(): void {
    this.#before = this.cutover.metrics.snapshot().counters
  }

  async end(v1: { ok: number; failed: number; rejected: number; deprecation: string | null }, v1Total: number): Promise<void> {
    await this.cutover.drain()
    const after = this.cutover.metrics.snapshot().counters
    const delta = (name: string, labels: Readonly<Record<string, string>>) => sum(after, name, labels) - sum(this.#before, name, labels)
    const users = { migration: 'users' }
    const mirrored = delta('mirror.applied', { direction: 'old-to-new' })
    const back = delta('mirror.applied', { direction: 'new-to-old' })
    const equal = delta('compare.equal', users)
    const mismatch = delta('compare.mismatch', users)
    const readsNew = delta('read.ok', { ...users, side: 'new' }) + delta('read.error', { ...users, side: 'new' })
    const readsOld = delta('read.ok', { ...users, side: 'old' })
    const latency = (side: string) => p50(this.cutover.metrics.histogram('read.latency_ms', { migration: 'users', side }))
    this.say(
      `  mirrored ${mirrored} old → new${back > 0 ? `, ${back} new → old` : ''}; compared reads ${equal + mismatch === 0 ? 'none' : `${((100 * equal) / (equal + mismatch)).toFixed(2)} % equal of ${equal + mismatch}`}; ` +
        `reads served new ${readsNew} / old ${readsOld}${readsNew + readsOld > 0 ? ` (${((100 * readsNew) / (readsNew + readsOld)).toFixed(0)} % new)` : ''}; p50 latency old ${latency('old')} / new ${latency('new')}`,
    )
    this.say(`  quarantined: ${await this.#byReason('cutover.quarantine', true)}; open dead letters: ${await this.#byReason('cutover.dead_letters', false)}`)
    this.say(`  v1 client: ${v1.ok} of ${v1.ok + v1.failed} calls as expected (an invalid body answered 400 with its fields${v1.rejected === 1 ? '' : ' — not seen!'}), Deprecation ${v1.deprecation ?? 'missing'}, ${v1Total} v1 requests so far`)
  }

  async #byReason(table: string, withText: boolean): Promise<string> {
    const rows = await this.control
      .selectFrom(table)
      .select((eb) => ['migration', 'reason_code', ...(withText ? (['reason'] as const) : []), eb.fn.countAll<string>().as('n')])
      .where('resolved_at', 'is', null)
      .groupBy(['migration', 'reason_code', ...(withText ? (['reason'] as const) : [])])
      .execute()
    if (rows.length === 0) return 'none'
    const shown = rows.slice(0, 3).map((r) => `${r.n} × ${r.migration} ${r.reason_code}${withText ? ` (${String(r.reason).slice(0, 60)})` : ''}`)
    return `${shown.join('; ')}${rows.length > 3 ? `; … ${rows.length - 3} more reasons` : ''}`
  }
}

function sum(counters: Counters, name: string, labels: Readonly<Record<string, string>>): number {
  let total = 0
  for (const [id, value] of Object.entries(counters)) {
    if (!id.startsWith(`${name}{`) && id !== name) continue
    if (Object.entries(labels).every(([k, v]) => id.includes(`${k}=${v}`))) total += value
  }
  return total
}

function p50(summary: HistogramSummary | undefined): string {
  return summary && summary.count > 0 ? `${summary.p50.toFixed(1)} ms` : '—'
}
