import { randomBytes } from 'node:crypto'
import { hostname } from 'node:os'
import type { Kysely } from 'kysely'
import pg from 'pg'
import { BarrierTable, type OpenBarrier } from '../control/barriers.js'
import { type InstanceMigrationState, InstanceTable } from '../control/instances.js'
import { scopeKey, tenantOfScope } from '../control/tenant-state.js'
import type { Logger } from '../observe/logger.js'
import type { Metrics } from '../observe/metrics.js'
import type { Phase } from '../model/phase.js'
import { finishesWithin } from './background.js'
import { authorityCanMove, type FenceReason, WriteFencedError } from './write-fence.js'

/** The LISTEN/NOTIFY channel every control change is announced on (a wake-up hint only). */
export const CONTROL_CHANNEL = 'cutover_control'

export interface FleetOptions {
  /** Shown in `cutover status` and named when fenced. Default `<host>:<pid>`. */
  readonly name?: string
  /** Heartbeat and control poll interval. Default 1,000 ms. */
  readonly heartbeatMs?: number
  /**
   * Without a successful control read for this long, writes to a migration whose write authority
   * could move are refused (`WriteFencedError`, reason `lease`). Default 5,000 ms.
   */
  readonly leaseMs?: number
  /** PostgreSQL URL of the control database for LISTEN (a wake-up within milliseconds). Without it, the poll alone. */
  readonly listenUrl?: string
}

/** What the fleet member needs of the engine (a narrow view of `Cutover`). */
export interface FleetEngine {
  readonly logger: Logger
  readonly metrics: Metrics
  readonly migrations: readonly { readonly name: string; readonly phase: Phase; readonly tenantPhases: Readonly<Record<string, Phase>>; queueDepth(): number; drain(): Promise<void> }[]
  refresh(): Promise<void>
}

/** Rounds given up on but still waiting on the control database; more wait for one to settle. */
const MAX_HUNG_ROUNDS = 2

interface Round {
  abandoned: boolean
}

interface Hold {
  readonly barrierId: string
  readonly until: number
}

/**
 * This process as a member of the fleet: registers in `cutover.instances` and heartbeats every
 * second with the phase, control row version, mirror lag and queue depth of each migration; polls the
 * control table at the same pace and wakes at once on a NOTIFY; acknowledges barriers (refusing
 * writes to the migration from then until it has switched); follows fences; and refuses writes
 * where write authority could move while it cannot reach the control database (its lease).
 *
 * Holds, fences and the versions they wait on are kept per scope (`scopeKey`): a migration, or one
 * tenant of it when the change was one tenant's. A write is refused when its migration's scope or
 * its tenant's scope is held or fenced.
 */
export class FleetMember {
  readonly instanceId: string
  readonly name: string
  readonly #db: Kysely<any>
  readonly #engine: FleetEngine
  readonly #options: Required<Omit<FleetOptions, 'listenUrl' | 'name'>> & { listenUrl?: string }
  readonly #instances: InstanceTable
  readonly #barriers: BarrierTable
  readonly #holds = new Map<string, Hold>()
  readonly #acking = new Set<string>()
  #fenced = new Set<string>()
  #versions = new Map<string, number>()
  #lastControlRead = performance.now()
  #timer: NodeJS.Timeout | undefined
  #ticking: Promise<void> | undefined
  #again = false
  readonly #hung = new Set<Promise<void>>()
  #listener: pg.Client | undefined
  #stopped = false

  constructor(db: Kysely<any>, engine: FleetEngine, options: FleetOptions = {}) {
    this.#db = db
    this.#engine = engine
    this.instanceId = `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`
    this.name = options.name ?? `${hostname()}:${process.pid}`
    this.#options = { heartbeatMs: options.heartbeatMs ?? 1_000, leaseMs: options.leaseMs ?? 5_000, ...(options.listenUrl ? { listenUrl: options.listenUrl } : {}) }
    this.#instances = new InstanceTable(db)
    this.#barriers = new BarrierTable(db)
  }

  get leaseMs(): number {
    return this.#options.leaseMs
  }

  get heartbeatMs(): number {
    return this.#options.heartbeatMs
  }

  async start(): Promise<void> {
    await this.tick()
    this.#timer = setInterval(() => void this.tick(), this.#options.heartbeatMs)
    this.#timer.unref?.()
    if (this.#options.listenUrl) void this.#listen(this.#options.listenUrl)
  }

  /** Leaves the fleet; finishes within about twice the lease even when the control database does not answer. */
  async stop(): Promise<void> {
    this.#stopped = true
    if (this.#timer) clearInterval(this.#timer)
    await finishesWithin(this.#ticking ?? Promise.resolve(), this.#options.leaseMs)
    const leave = async () => {
      await this.#listener?.end().catch(() => undefined)
      await this.#instances.remove(this.instanceId).catch(() => undefined)
    }
    if (!(await finishesWithin(leave(), this.#options.leaseMs))) this.#engine.logger.warn('leaving the fleet did not finish; the instance row expires with its heartbeat', { instance: this.name })
  }

  /**
   * Throws `WriteFencedError` if this instance must not accept a write to `migration`'s tables now,
   * made in the request context of `tenant` (undefined: none) in `phase` (that tenant's phase in force).
   */
  assertWritable(migration: string, phase: Phase, target: string, key?: string, tenant?: string): void {
    const reason = this.#refusal(migration, phase, tenant)
    if (reason === null) return
    this.#engine.metrics.increment('write.fenced', { migration })
    throw new WriteFencedError(migration, reason, target, key)
  }

  /**
   * One round: control state, barriers, fences, heartbeat. Never throws; overlapping calls coalesce.
   * A round that has not finished within the lease is given up (counted, logged) so that the next
   * can try on another connection: a query on a half-open socket (a failed-over server, a
   * partition) can hang until TCP gives up, many minutes later. At most `MAX_HUNG_ROUNDS` are left
   * hanging at once, so a link that swallows everything does not pile up requests without bound.
   */
  tick(): Promise<void> {
    if (this.#ticking) {
      this.#again = true
      return this.#ticking
    }
    this.#ticking = this.#rounds().finally(() => {
      this.#ticking = undefined
    })
    return this.#ticking
  }

  async #rounds(): Promise<void> {
    do {
      this.#again = false
      if (this.#hung.size >= MAX_HUNG_ROUNDS) await Promise.race(this.#hung)
      const round: Round = { abandoned: false }
      const running = this.#round(round).catch((error: unknown) => {
        if (!round.abandoned) this.#roundFailed('fleet heartbeat failed', { error })
      })
      if (await finishesWithin(running, this.#options.leaseMs)) continue
      round.abandoned = true
      this.#roundFailed('fleet heartbeat did not finish within the lease; given up, the next round retries', { timeoutMs: this.#options.leaseMs })
      this.#hung.add(running)
      void running.finally(() => this.#hung.delete(running))
    } while (this.#again && !this.#stopped)
  }

  #roundFailed(message: string, fields: Record<string, unknown>): void {
    // The same failure as a poll's: counted under the same name, whichever reads the control table.
    this.#engine.metrics.increment('control.refresh_failed')
    this.#engine.logger.warn(message, { instance: this.name, ...fields })
  }

  /** Acknowledges a barrier this process itself announced, without waiting for its next round. */
  async acknowledge(barrier: OpenBarrier): Promise<void> {
    await this.#acknowledge(barrier)
  }

  /** Called once this process applied a barrier's change itself: its own hold ends at once. */
  switched(migration: string, tenant?: string): void {
    this.#holds.delete(scopeKey(migration, tenant))
  }

  async #round(round: Round): Promise<void> {
    // The lease counts from when this round began reading: a round stalled midway (a paused
    // process, a slow network) must not renew it with what it read before the stall.
    const startedAt = performance.now()
    const names = this.#engine.migrations.map((m) => m.name)
    // Order matters: a hold is released only for a barrier seen closed *before* the refresh, so
    // that the refresh has read the phase the barrier committed.
    const closed = await this.#closedHolds()
    const versions = await this.#readVersions()
    await this.#engine.refresh()
    // A round given up must not apply what it read before the rounds that replaced it.
    if (round.abandoned) return
    for (const scope of closed) this.#holds.delete(scope)
    this.#versions = versions
    for (const barrier of await this.#barriers.pendingFor(this.instanceId, names)) {
      if (!this.#acking.has(barrier.id)) void this.#acknowledge(barrier)
    }
    if (round.abandoned) return
    await this.#followFences()
    await this.#instances.heartbeat({ instanceId: this.instanceId, name: this.name, host: hostname(), pid: process.pid }, this.#state())
    if (!round.abandoned) this.#lastControlRead = startedAt
  }

  async #acknowledge(barrier: OpenBarrier): Promise<void> {
    if (this.#acking.has(barrier.id)) return
    this.#acking.add(barrier.id)
    try {
      // From here until it has switched, this instance accepts no write to the migration.
      this.#holds.set(scopeKey(barrier.migration, barrier.tenant), { barrierId: barrier.id, until: performance.now() + Math.max(barrier.remainingMs, 0) + 2 * this.#options.leaseMs })
      const runtime = this.#engine.migrations.find((m) => m.name === barrier.migration)
      // What it accepted before the hold reaches the other store before authority moves.
      const drained = await withTimeout(runtime?.drain() ?? Promise.resolve(), barrier.remainingMs)
      if (!drained) {
        this.#engine.logger.warn('mirror did not drain before the barrier deadline; not acknowledging', { migration: barrier.migration, barrier: barrier.id })
        return
      }
      await this.#barriers.acknowledge(barrier.id, this.instanceId)
    } catch (error) {
      this.#engine.logger.warn('barrier acknowledgement failed', { migration: barrier.migration, barrier: barrier.id, error })
    } finally {
      this.#acking.delete(barrier.id)
    }
  }

  async #closedHolds(): Promise<string[]> {
    const closed: string[] = []
    for (const [scope, hold] of this.#holds) {
      if (performance.now() > hold.until || !(await this.#barriers.isOpen(hold.barrierId))) closed.push(scope)
    }
    return closed
  }

  /** The control row version of every scope: each migration's row and each tenant's. */
  async #readVersions(): Promise<Map<string, number>> {
    const [migrations, tenants] = await Promise.all([
      this.#db.selectFrom('cutover.migration_state').select(['migration', 'version']).execute(),
      this.#db.selectFrom('cutover.tenant_state').select(['migration', 'tenant', 'version']).execute(),
    ])
    return new Map([
      ...migrations.map((row) => [row.migration as string, Number(row.version)] as const),
      ...tenants.map((row) => [scopeKey(row.migration as string, row.tenant as string), Number(row.version)] as const),
    ])
  }

  async #followFences(): Promise<void> {
    const fenced = new Set<string>()
    for (const fence of await this.#barriers.fencesOf(this.instanceId)) {
      const scope = scopeKey(fence.migration, fence.tenant)
      if ((this.#versions.get(scope) ?? 0) >= fence.untilVersion) {
        await this.#barriers.lift(this.instanceId, fence.migration, fence.tenant, fence.untilVersion)
        this.#engine.logger.warn('fence lifted: this instance follows the control table again', { instance: this.name, migration: fence.migration, ...(fence.tenant === undefined ? {} : { tenant: fence.tenant }) })
      } else fenced.add(scope)
    }
    this.#fenced = fenced
  }

  #refusal(migration: string, phase: Phase, tenant?: string): FenceReason | null {
    const scope = tenant === undefined ? undefined : scopeKey(migration, tenant)
    if (this.#holds.has(migration) || (scope !== undefined && this.#holds.has(scope))) return 'barrier'
    if (this.#fenced.has(migration) || (scope !== undefined && this.#fenced.has(scope))) return 'fenced'
    if (performance.now() - this.#lastControlRead > this.#options.leaseMs && authorityCanMove(phase)) return 'lease'
    return null
  }

  /**
   * Tenants whose writes this instance refuses while the migration's own writes are not refused: a
   * tenant's barrier or fence, or its lease where that tenant's phase lets authority move.
   */
  #tenantRefusals(migration: string, phase: Phase, tenantPhases: Readonly<Record<string, Phase>>): Record<string, FenceReason> {
    const refused: Record<string, FenceReason> = {}
    if (this.#refusal(migration, phase) !== null) return refused
    const scoped = [...this.#holds.keys(), ...this.#fenced].map((scope) => tenantOfScope(scope, migration))
    for (const tenant of new Set([...Object.keys(tenantPhases), ...scoped])) {
      if (tenant === undefined) continue
      const reason = this.#refusal(migration, tenantPhases[tenant] ?? phase, tenant)
      if (reason !== null) refused[tenant] = reason
    }
    return refused
  }

  #state(): Record<string, InstanceMigrationState> {
    const state: Record<string, InstanceMigrationState> = {}
    for (const runtime of this.#engine.migrations) {
      const lag = this.#engine.metrics.histogram('mirror.lag_ms', { migration: runtime.name, direction: 'old-to-new' })
      const back = this.#engine.metrics.histogram('mirror.lag_ms', { migration: runtime.name, direction: 'new-to-old' })
      state[runtime.name] = {
        phase: runtime.phase,
        version: this.#versions.get(runtime.name) ?? 0,
        queueDepth: runtime.queueDepth(),
        mirrorLagMs: Math.round(Math.max(lag?.p99 ?? 0, back?.p99 ?? 0)),
        writesRefused: this.#refusal(runtime.name, runtime.phase),
        tenants: runtime.tenantPhases,
        tenantWritesRefused: this.#tenantRefusals(runtime.name, runtime.phase, runtime.tenantPhases),
        compared: {
          equal: this.#engine.metrics.counter('compare.equal', { migration: runtime.name }),
          mismatch: this.#engine.metrics.counter('compare.mismatch', { migration: runtime.name }),
          settling: this.#engine.metrics.counter('compare.settling', { migration: runtime.name }),
        },
      }
    }
    return state
  }

  /** LISTEN on a connection of its own; reconnects with backoff. A lost notification costs one poll. */
  async #listen(url: string, attempt = 0): Promise<void> {
    if (this.#stopped) return
    const client = new pg.Client({ connectionString: url, application_name: `cutover-listen:${this.name}` })
    client.on('error', () => undefined)
    try {
      await client.connect()
      client.on('notification', () => void this.tick())
      client.on('end', () => {
        if (!this.#stopped) setTimeout(() => void this.#listen(url), 1_000).unref?.()
      })
      await client.query(`listen ${CONTROL_CHANNEL}`)
      this.#listener = client
      if (this.#stopped) await client.end()
    } catch (error) {
      await client.end().catch(() => undefined)
      this.#engine.logger.warn('LISTEN for control changes failed; polling only until it reconnects', { instance: this.name, error })
      setTimeout(() => void this.#listen(url, attempt + 1), Math.min(30_000, 1_000 * 2 ** attempt)).unref?.()
    }
  }
}

async function withTimeout(promise: Promise<void>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), Math.max(ms, 0))
  })
  try {
    return await Promise.race([promise.then(() => true as const), timeout])
  } finally {
    clearTimeout(timer)
  }
}
