import type { Kysely } from 'kysely'
import { BarrierTable } from '../control/barriers.js'
import { CheckpointTable } from '../control/checkpoint.js'
import { DeadLetterTable } from '../control/dead-letters.js'
import { type InstanceRecord, InstanceTable } from '../control/instances.js'
import { JobControl } from '../control/job-control.js'
import { QuarantineTable } from '../control/quarantine.js'
import { phasePlan } from '../control/phase-plan.js'
import { isPhase } from '../model/phase.js'
import { VerificationReports } from '../control/verification-report.js'
import { readEnvFlags } from '../runtime/env-flags.js'
import { TenantStateTable } from '../control/tenant-state.js'
import { type CommandContext, EXIT, writeResult } from './command.js'
import { formatCount } from './progress-renderer.js'
import { rangeLines, type RangeStatus, rangeStatuses } from './range-status.js'

/** Instances silent for longer than this are shown as stale, not live. */
const LIVE_WITHIN_S = 10

/**
 * `cutover status [<migration>]`: per migration the phase, read percent, compare sample, the
 * consistency of compared reads and the mirror lag across live instances, dead letters, quarantine,
 * backfill progress, the last verification; and every instance with its phase and heartbeat age.
 */
export async function statusCommand(context: CommandContext): Promise<number> {
  const { control } = context.config
  const name = context.args.positionals[1]
  const migrations = context.config.migrations.filter((m) => name === undefined || m.name === name)
  const instances = await new InstanceTable(control).list()
  const fences = await new BarrierTable(control).allFences()
  const statuses = []
  for (const migration of migrations) {
    const state = await controlState(control, migration.name)
    statuses.push({
      migration: migration.name,
      ...state,
      plan: isPhase(state.phase) ? await phasePlan(control, migration, state.phase) : undefined,
      jobControl: await new JobControl(control).state(migration.name),
      compared: comparedReads(instances, migration.name),
      mirrorLagMs: Math.max(0, ...liveStates(instances, migration.name).map((s) => s.mirrorLagMs)),
      backfill: await backfillProgress(control, migration.name),
      // Distributed backfill (range-status.ts): each range's holder and progress.
      backfillRanges: await rangeStatuses(control, migration.name),
      quarantineByReason: await new QuarantineTable(control).countByReason(migration.name),
      deadLettersOpen: await new DeadLetterTable(control).countOpen(migration.name),
      deadLettersByReason: await new DeadLetterTable(control).countByReason(migration.name),
      lastVerification: await lastVerification(control, migration.name),
      tenants: await tenantOverrides(control, migration.name, instances),
      instances: instances.map((i) => ({
        name: i.name,
        instanceId: i.instanceId,
        heartbeatAgeS: Math.round(i.heartbeatAgeS * 10) / 10,
        live: i.heartbeatAgeS <= LIVE_WITHIN_S,
        phase: i.migrations[migration.name]?.phase ?? null,
        version: i.migrations[migration.name]?.version ?? null,
        queueDepth: i.migrations[migration.name]?.queueDepth ?? null,
        writesRefused: i.migrations[migration.name]?.writesRefused ?? null,
        tenantWritesRefused: i.migrations[migration.name]?.tenantWritesRefused ?? {},
        fenced: fences.some((f) => f.instanceId === i.instanceId && f.migration === migration.name),
      })),
    })
  }
  writeResult(context, { command: 'status', migrations: statuses }, statuses.map(describe).join('\n'))
  return EXIT.ok
}

type Status = Awaited<ReturnType<typeof controlState>> & {
  migration: string
  plan: Awaited<ReturnType<typeof phasePlan>> | undefined
  jobControl: { paused: boolean; reason?: string | null | undefined }
  compared: ReturnType<typeof comparedReads>
  mirrorLagMs: number
  backfill: Awaited<ReturnType<typeof backfillProgress>>
  backfillRanges: RangeStatus[]
  quarantineByReason: Record<string, number>
  deadLettersOpen: number
  deadLettersByReason: Record<string, number>
  lastVerification: Awaited<ReturnType<typeof lastVerification>>
  tenants: Awaited<ReturnType<typeof tenantOverrides>>
  instances: { name: string; heartbeatAgeS: number; live: boolean; phase: string | null; writesRefused: string | null; tenantWritesRefused: Readonly<Record<string, string>>; fenced: boolean }[]
}

function tenantRefusals(refused: Readonly<Record<string, string>>): string {
  const entries = Object.entries(refused)
  return entries.length === 0 ? '' : `, refusing writes for ${entries.map(([tenant, reason]) => `tenant ${tenant} (${reason})`).join(', ')}`
}

function describe(s: Status): string {
  const consistency = s.compared.consistency === null ? 'no compared reads' : `${(s.compared.consistency * 100).toFixed(2)}% consistent of ${formatCount(s.compared.equal + s.compared.mismatch)} compared (${formatCount(s.compared.settling)} settling)`
  const instanceLines = s.instances.map(
    (i) => `    ${i.name}: ${i.phase ?? '?'}, heartbeat ${i.heartbeatAgeS}s ago${i.live ? '' : ' (STALE)'}${i.fenced ? ', FENCED' : ''}${i.writesRefused ? `, refusing writes (${i.writesRefused})` : ''}${tenantRefusals(i.tenantWritesRefused)}`,
  )
  return [
    `${s.migration}: phase ${s.phase} (v${s.version}), reads on new ${s.readPercent}%, compare sample ${s.compareSample}${s.jobControl.paused ? `, jobs PAUSED (${s.jobControl.reason ?? 'no reason given'})` : ''}`,
    `  compared reads: ${consistency}; mirror lag p99 ${s.mirrorLagMs} ms`,
    `  backfill: ${s.backfill.ranges === 0 ? 'not started' : `${s.backfill.done}/${s.backfill.ranges} ranges done, ${formatCount(s.backfill.read)} read, ${formatCount(s.backfill.written)} written, ${formatCount(s.backfill.quarantined)} quarantined`}`,
    ...rangeLines(s.backfillRanges),
    `  quarantine: ${Object.entries(s.quarantineByReason).map(([r, n]) => `${n} × ${r}`).join('; ') || 'empty'}; dead letters open: ${s.deadLettersOpen}${s.deadLettersOpen > 0 ? ` (${Object.entries(s.deadLettersByReason).map(([r, n]) => `${n} × ${r}`).join(', ')})` : ''}`,
    ...planLines(s),
    `  last verification: ${s.lastVerification ? `#${s.lastVerification.id} ${s.lastVerification.kind} ${s.lastVerification.consistent ? 'consistent' : 'INCONSISTENT'} at ${s.lastVerification.finishedAt.toISOString()}` : 'none'}`,
    ...tenantLines(s.tenants),
    `  instances: ${s.instances.length === 0 ? 'none registered' : ''}`,
    ...instanceLines,
  ].join('\n')
}

/** The control row, or the env flags this command runs with when there is none yet. */
async function controlState(control: Kysely<any>, migration: string): Promise<{ phase: string; readPercent: number; compareSample: number; version: number }> {
  const row = await control.selectFrom('cutover.migration_state').selectAll().where('migration', '=', migration).executeTakeFirst()
  const flags = readEnvFlags([migration], process.env, { rejectUnknownMigrations: false }).get(migration)
  return {
    phase: row?.phase ?? flags?.phase ?? 'off',
    readPercent: row?.read_percent != null ? Number(row.read_percent) : (flags?.readPercent ?? 0),
    compareSample: row?.compare_sample != null ? Number(row.compare_sample) : (flags?.compareSample ?? 0),
    version: row ? Number(row.version) : 0,
  }
}

function liveStates(instances: readonly InstanceRecord[], migration: string) {
  return instances.filter((i) => i.heartbeatAgeS <= LIVE_WITHIN_S).flatMap((i) => (i.migrations[migration] ? [i.migrations[migration]] : []))
}

/** Compared reads summed over live instances (each reports its own since it started). */
function comparedReads(instances: readonly InstanceRecord[], migration: string) {
  const sum = { equal: 0, mismatch: 0, settling: 0 }
  for (const state of liveStates(instances, migration)) {
    sum.equal += state.compared?.equal ?? 0
    sum.mismatch += state.compared?.mismatch ?? 0
    sum.settling += state.compared?.settling ?? 0
  }
  const total = sum.equal + sum.mismatch
  return { ...sum, consistency: total === 0 ? null : sum.equal / total }
}

async function backfillProgress(control: Kysely<any>, migration: string) {
  const checkpoints = await new CheckpointTable(control).list(migration)
  return {
    ranges: checkpoints.length,
    done: checkpoints.filter((c) => c.status === 'done').length,
    read: checkpoints.reduce((sum, c) => sum + c.counts.read, 0),
    written: checkpoints.reduce((sum, c) => sum + c.counts.written, 0),
    quarantined: checkpoints.reduce((sum, c) => sum + c.counts.quarantined, 0),
    lastUpdate: checkpoints.map((c) => c.updatedAt).sort((a, b) => b.getTime() - a.getTime())[0] ?? null,
  }
}

async function lastVerification(control: Kysely<any>, migration: string) {
  const report = await new VerificationReports(control).load(migration)
  return report ? { id: report.id, kind: report.kind, finishedAt: report.finishedAt, consistent: report.consistent, counts: report.counts } : null
}

/** The next move's gates and the safety net, as `cutover plan` shows them in full. */
function planLines(s: Status): string[] {
  const next = s.plan?.next
  const net = s.plan?.safetyNet
  const lines: string[] = []
  if (next) {
    const unmet = next.gates.filter((g) => !g.met).map((g) => `${g.gate} (${g.measured})`)
    lines.push(`  next: ${next.from} → ${next.to} ${next.met ? 'allowed' : `waits on ${unmet.join('; ')}`}`)
  }
  if (net) lines.push(`  safety net: ${net.releasedAt ? 'released' : `${net.readOnlyDaysLeft.toFixed(1)} days of read-only old store left`}, revert window ${net.revertWindowOpen ? 'open' : 'closed'}`)
  return lines
}

/**
 * Tenants with a phase of their own (`cutover.tenant_state`); every other tenant follows the
 * migration's row. `lagging`: live instances that do not have the tenant's phase in force yet.
 */
async function tenantOverrides(control: Kysely<any>, migration: string, instances: readonly InstanceRecord[]) {
  const overrides = await new TenantStateTable(control).overrides(migration)
  const live = instances.filter((i) => i.heartbeatAgeS <= LIVE_WITHIN_S && i.migrations[migration])
  return overrides.map((o) => ({
    tenant: o.tenant,
    phase: o.phase,
    readPercent: o.readPercent,
    compareSample: o.compareSample,
    version: o.version,
    updatedBy: o.updatedBy,
    updatedAt: o.updatedAt,
    lagging: live.filter((i) => i.migrations[migration]?.tenants?.[o.tenant] !== o.phase).map((i) => i.name),
  }))
}

function tenantLines(tenants: Awaited<ReturnType<typeof tenantOverrides>>): string[] {
  if (tenants.length === 0) return ['  tenant overrides: none (every tenant follows the migration)']
  return [
    `  tenant overrides (${tenants.length}):`,
    ...tenants.map((t) => `    ${t.tenant}: ${t.phase} (v${t.version}), reads on new ${t.readPercent}%, compare sample ${t.compareSample}, set by ${t.updatedBy} at ${t.updatedAt.toISOString()}${t.lagging.length > 0 ? `; NOT YET IN FORCE on ${t.lagging.join(', ')}` : ''}`),
  ]
}
