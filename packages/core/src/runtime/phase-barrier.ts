import { type Kysely, sql } from 'kysely'
import { BarrierTable } from '../control/barriers.js'
import { InstanceTable } from '../control/instances.js'
import type { Logger } from '../observe/logger.js'
import type { Phase } from '../model/phase.js'
import { CONTROL_CHANNEL, type FleetMember } from './fleet-member.js'
import { movesWriteAuthority } from './write-fence.js'

export interface BarrierSettings {
  /**
   * How long the change waits for every live instance to acknowledge. At least the instances'
   * lease (default 5 s + one heartbeat), so that an instance which missed it because it cannot reach
   * the control database has stopped accepting writes by itself before the change is in force.
   */
  readonly timeoutMs?: number
  /** An instance heartbeating within this is live and must acknowledge. Default: the timeout. */
  readonly livenessMs?: number
}

/** A barrier passed (or timed out) and not yet committed. */
export interface PassedBarrier {
  readonly id: string
  readonly migration: string
  /** The tenant the change was scoped to; undefined: the whole migration. */
  readonly tenant: string | undefined
  readonly acknowledged: readonly string[]
  /** Live instances that did not acknowledge in time: named, and fenced at commit. */
  readonly missing: readonly { readonly instanceId: string; readonly name: string }[]
  readonly waitedMs: number
}

const DEFAULT_TIMEOUT_MS = 6_000

/**
 * Before a change that moves write authority (`ramp → cutover`, `cutover → rollback`, …) is in
 * force: announce it, wake the fleet, and wait until every live instance has acknowledged (each
 * stops accepting writes to the migration and drains its mirror first) or the timeout passes.
 * Returns undefined for a change that moves no write authority: it needs no barrier.
 *
 * A change of one tenant's phase (`tenant`) passes the same barrier scoped to that tenant: every
 * live instance acknowledges as before, but holds (and, missing it, is fenced for) only the writes
 * made in that tenant's request context; the migration's other tenants keep writing.
 */
export async function passBarrier(
  db: Kysely<any>,
  change: { migration: string; tenant?: string | undefined; from: Phase; to: Phase; actor: string },
  options: { settings?: BarrierSettings; member?: FleetMember; logger: Logger },
): Promise<PassedBarrier | undefined> {
  if (!movesWriteAuthority(change.from, change.to)) return undefined
  const timeoutMs = options.settings?.timeoutMs ?? Math.max(DEFAULT_TIMEOUT_MS, (options.member?.leaseMs ?? 0) + (options.member?.heartbeatMs ?? 0))
  const livenessMs = options.settings?.livenessMs ?? timeoutMs
  const barriers = new BarrierTable(db)
  const instances = new InstanceTable(db)
  const started = performance.now()
  const id = await barriers.announce({ migration: change.migration, tenant: change.tenant, fromPhase: change.from, toPhase: change.to, actor: change.actor, timeoutMs })
  await notifyFleet(db, `barrier:${change.migration}`)
  if (options.member) await options.member.acknowledge({ id, migration: change.migration, tenant: change.tenant, fromPhase: change.from, toPhase: change.to, remainingMs: timeoutMs })
  // Who must acknowledge is fixed at the announcement: an instance that stops heartbeating during
  // the wait is fenced, not forgotten (it may only be paused, and wake up writing).
  const live = await instances.list({ withinMs: livenessMs })
  for (;;) {
    const acked = await barriers.acknowledged(id)
    const missing = live.filter((instance) => !acked.has(instance.instanceId)).map((i) => ({ instanceId: i.instanceId, name: i.name }))
    const waitedMs = performance.now() - started
    if (missing.length === 0 || waitedMs >= timeoutMs) {
      const acknowledged = live.filter((instance) => acked.has(instance.instanceId)).map((i) => i.name)
      if (missing.length > 0) options.logger.error('instances missed the barrier; fencing them', { migration: change.migration, ...(change.tenant === undefined ? {} : { tenant: change.tenant }), barrier: id, missing: missing.map((m) => m.name) })
      return { id, migration: change.migration, tenant: change.tenant, acknowledged, missing, waitedMs: Math.round(waitedMs) }
    }
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
}

/** After the control row (the tenant's row, for a tenant's barrier) moved to `version`: fence who missed the barrier, close it. */
export async function commitBarrier(db: Kysely<any>, barrier: PassedBarrier, version: number): Promise<void> {
  const barriers = new BarrierTable(db)
  await barriers.fence(barrier.missing.map((m) => ({ instanceId: m.instanceId, migration: barrier.migration, tenant: barrier.tenant, barrierId: barrier.id, untilVersion: version })))
  await barriers.finish(barrier.id, 'committed')
}

/** A NOTIFY on the control channel: instances listening re-read the control tables at once. */
export async function notifyFleet(db: Kysely<any>, payload: string): Promise<void> {
  await sql`select pg_notify(${CONTROL_CHANNEL}, ${payload})`.execute(db)
}

/** The barrier as the audit records it. */
export function barrierSummary(barrier: PassedBarrier | undefined): Record<string, unknown> | null {
  if (!barrier) return null
  return { id: barrier.id, ...(barrier.tenant === undefined ? {} : { tenant: barrier.tenant }), acknowledged: barrier.acknowledged, fenced: barrier.missing.map((m) => m.name), waitedMs: barrier.waitedMs }
}
