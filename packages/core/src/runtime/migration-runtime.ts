import { compareRecords, type Difference } from '../model/compare.js'
import { type CutoverContext, currentCutoverContext } from './context.js'
import type { DeadLetterSink } from '../control/dead-letters.js'
import type { MigrationFlags } from './env-flags.js'
import { MapperError, WriteRejectedError } from '../model/errors.js'
import { type GuardSignal, type GuardThresholds, type GuardVerdict, HealthGuard } from './guard.js'
import type { Logger } from '../observe/logger.js'
import type { Metrics } from '../observe/metrics.js'
import type { Migration } from '../model/migration.js'
import { type ChangeEvent, type MirrorCloseReport, type MirrorDirection, MirrorQueue } from './mirror-queue.js'
import { RepeatedWarning } from '../observe/repeated-warning.js'
import { COMPLETE_IN_REVERT_WINDOW, mirrorsWritesOf, type Phase, PHASE_BEHAVIOR, type PhaseBehavior, type Side } from '../model/phase.js'
import { revertWindowOpen, type SafetyNetState } from '../control/safety-net.js'
import { rampReadSide } from '../model/routing.js'
import type { MigrationSettings } from '../model/settings.js'
import { isKeyValue, type KeyValue, keyString, type Row, storeRecordKey } from '../model/store.js'
import { describeError } from './background.js'
import type { RuntimeCapture } from '../capture/runtime-capture.js'
import type { FleetMember } from './fleet-member.js'
import { countMismatchedFields } from '../observe/mismatch-fields.js'

/**
 * What a migration's runtime needs from the engine around it: its logger and metrics, and the way
 * to tell the fleet about a guard rollback. `Cutover` is one; the interface keeps the runtime from
 * depending on the engine's other jobs (polling, replay, audit).
 */
export interface RuntimeHost {
  readonly logger: Logger
  readonly metrics: Metrics
  /** This process in the fleet, when it is a member: it may fence writes during a barrier. */
  readonly fleet?: Pick<FleetMember, 'assertWritable'> | undefined
  setPhase(name: string, phase: Phase, change: GuardPhaseChange): Promise<void>
  /** How a guard rolls back one tenant that has a phase of its own. */
  setTenantPhase(name: string, tenant: string, phase: Phase, change: GuardPhaseChange): Promise<void>
}

/** What a guard's rollback records: who (the guard), why, and the measurements behind it. */
export interface GuardPhaseChange {
  readonly actor: string
  readonly reason?: string
  readonly evidence?: Readonly<Record<string, unknown>>
}

/** About a compared read, for reports and for telling mirror lag from mismatches. */
export interface ReadComparisonDetail {
  readonly query?: string
  /**
   * `performance.now()` when the first of the two reads began: a key whose mirrored change was
   * applied after it, or is still under way, is settling, not different. Default: the last second.
   */
  readonly since?: number
}

/** The result of comparing one read's rows between the stores, by key. */
export interface ReadComparison {
  readonly equal: boolean
  readonly missingInNew: readonly string[]
  readonly missingInOld: readonly string[]
  readonly different: readonly { readonly key: string; readonly differences: readonly Difference[] }[]
  /**
   * Keys that differed while a mirrored change of theirs was queued, being applied or just applied:
   * mirror lag, not a mismatch. Counted (`compare.settling`), not reported or fed to the guard.
   */
  readonly settling: readonly string[]
}

export const GUARD_ACTOR = 'cutover:guard'

/** One migration inside a running `Cutover`: what plugins ask on every query. */
export class MigrationRuntime {
  readonly name: string
  readonly migration: Migration<any, any>
  readonly #host: RuntimeHost
  readonly #flags: MigrationFlags
  #override: Partial<MigrationFlags> | undefined
  readonly #queues: Record<MirrorDirection, MirrorQueue>
  readonly #guard: HealthGuard | undefined
  readonly #random: () => number
  /** Set when the guard rolled back locally; holds the phase it rolled back from. */
  #trippedFrom: Phase | undefined
  /** The safety net after `complete`, as last read from the control table. */
  #safetyNet: SafetyNetState | undefined
  readonly #staleSideWarning: RepeatedWarning
  readonly #unmirroredWarnings = new Map<string, RepeatedWarning>()
  #changeLog: RuntimeCapture | undefined
  /** Tenants with a phase of their own (`cutover.tenant_state`), as last read from the control table. */
  #tenants: ReadonlyMap<string, MigrationSettings> = new Map()
  /** A guard per tenant with a phase of its own: its traffic is judged apart from the migration's. */
  readonly #tenantGuards = new Map<string, HealthGuard>()
  /** Tenants a guard rolled back in this process, with the phase each rolled back from. */
  readonly #trippedTenants = new Map<string, Phase>()

  constructor(host: RuntimeHost, migration: Migration<any, any>, flags: MigrationFlags, deadLetters: DeadLetterSink, random: () => number) {
    this.#host = host
    this.#staleSideWarning = new RepeatedWarning(host.logger, 'write reached the old store after cutover; mirrored forward')
    this.migration = migration
    this.name = migration.name
    this.#flags = flags
    this.#random = random
    this.#guard = migration.guards ? new HealthGuard(migration.guards) : undefined
    const mapper = migration.mapper
    const common = {
      migration: migration.name,
      deadLetters,
      metrics: host.metrics,
      logger: host.logger,
      ...(migration.compare ? { compare: migration.compare } : {}),
      ...migration.mirror,
    }
    this.#queues = {
      'old-to-new': new MirrorQueue({
        ...common,
        direction: 'old-to-new',
        source: migration.old,
        target: migration.new,
        translate: (record, key) => mapper.forward(record, { key, migration: migration.name }),
        ...(migration.version?.new ? { versionField: migration.version.new } : {}),
      }),
      'new-to-old': new MirrorQueue({
        ...common,
        direction: 'new-to-old',
        source: migration.new,
        target: migration.old,
        translate: (record, key) => mapper.backward(record, { key, migration: migration.name }),
        ...(migration.version?.old ? { versionField: migration.version.old } : {}),
      }),
    }
  }

  /** @internal set by `createCutover` for a migration with `capture: 'change-log'`. */
  attachCapture(capture: RuntimeCapture): void {
    this.#changeLog = capture
  }

  /** Change-log capture of this migration, when on: the plugins need not capture keys for the mirror. */
  get changeLog(): RuntimeCapture | undefined {
    return this.#changeLog
  }

  /** The engine's logger, for plugins reporting about this migration. */
  get logger(): Logger {
    return this.#host.logger
  }

  get metrics(): Metrics {
    return this.#host.metrics
  }

  /**
   * The migration's phase in force in this process: what requests without a tenant override follow.
   * The phase of one request is `phaseFor()`.
   */
  get phase(): Phase {
    return this.#trippedFrom !== undefined ? 'rollback' : this.configuredPhase
  }

  /** The phase env flags and the control table set (the guard may have rolled back locally). */
  get configuredPhase(): Phase {
    return this.#override?.phase ?? this.#flags.phase
  }

  get behavior(): PhaseBehavior {
    const phase = this.phase
    return phase === 'complete' && revertWindowOpen(this.#safetyNet) ? COMPLETE_IN_REVERT_WINDOW : PHASE_BEHAVIOR[phase]
  }

  /** @internal called by `Cutover` with the migration's safety net (undefined: none). */
  applySafetyNet(net: SafetyNetState | undefined): void {
    this.#safetyNet = net
    // The revert window's end stops the reverse mirror.
    this.#changeLog?.phaseChanged()
  }

  get readPercent(): number {
    return this.#override?.readPercent ?? this.#flags.readPercent
  }

  get compareSample(): number {
    return this.#override?.compareSample ?? this.#flags.compareSample
  }

  /**
   * The phase in force for a request (default: the running one): its tenant's own phase when the
   * control table gives the tenant one, otherwise the migration's. Plugins ask this (and
   * `behaviorFor`) on every query; with no tenant overrides it costs a field read.
   */
  phaseFor(context?: CutoverContext): Phase {
    return this.#tenantSettings(context)?.phase ?? this.phase
  }

  /** What the phase in force for a request (default: the running one) does: see `phaseFor`. */
  behaviorFor(context?: CutoverContext): PhaseBehavior {
    const own = this.#tenantSettings(context)
    return own ? PHASE_BEHAVIOR[own.phase] : this.behavior
  }

  /** The read percent and compare sample in force for a request (its tenant's, or the migration's). */
  settingsFor(context?: CutoverContext): MigrationSettings {
    return this.#tenantSettings(context) ?? { phase: this.phase, readPercent: this.readPercent, compareSample: this.compareSample }
  }

  /** Tenants with a phase of their own, as this process last read them. */
  get tenantOverrides(): ReadonlyMap<string, MigrationSettings> {
    return this.#tenants
  }

  /** @internal called by `Cutover` with the tenant overrides read from the control table. */
  applyTenantOverrides(overrides: ReadonlyMap<string, MigrationSettings>): void {
    const before = this.#tenants
    this.#tenants = overrides
    for (const tenant of new Set([...before.keys(), ...overrides.keys()])) {
      const from = before.get(tenant)?.phase ?? this.phase
      const to = overrides.get(tenant)?.phase ?? this.phase
      // As for the migration: a tenant's local guard rollback lasts until its configured phase moves.
      const tripped = this.#trippedTenants.get(tenant)
      if (tripped !== undefined && overrides.get(tenant)?.phase !== tripped) this.#trippedTenants.delete(tenant)
      if (from !== to || !overrides.has(tenant)) this.#tenantGuards.delete(tenant)
      if (from !== to) this.#host.logger.info('tenant phase now in force', { migration: this.name, tenant, from, to, override: overrides.has(tenant) })
    }
  }

  /** The tenant's own settings for a request, when it has them; no context lookup without overrides. */
  #tenantSettings(context: CutoverContext | undefined): MigrationSettings | undefined {
    if (this.#tenants.size === 0) return undefined
    const tenant = (context ?? currentCutoverContext()).tenant
    const own = tenant === undefined ? undefined : this.#tenants.get(tenant)
    return own && this.#trippedTenants.has(tenant as string) ? { ...own, phase: 'rollback' } : own
  }

  /** @internal called by `Cutover` when env flags are overridden from the control table. */
  applyOverride(override: Partial<MigrationFlags> | undefined): void {
    const before = this.phase
    this.#override = override
    // A local guard rollback lasts until the configured phase moves (to `rollback` through the
    // control table, or anywhere an operator sends it).
    if (this.#trippedFrom !== undefined && this.configuredPhase !== this.#trippedFrom) this.#trippedFrom = undefined
    if (before !== this.phase) {
      this.#guard?.reset()
      this.#changeLog?.phaseChanged()
      this.#host.logger.info('phase now in force', { migration: this.name, from: before, to: this.phase })
    }
  }

  /** Which store serves a read now, for the request context. */
  readSide(context: CutoverContext = currentCutoverContext()): Side {
    const reads = this.behaviorFor(context).reads
    return reads === 'split' ? rampReadSide(this.settingsFor(context).readPercent, context, this.migration.routing) : reads
  }

  /**
   * Which store serves a read of `keys` (undefined: the read is not by key, e.g. a scan or a
   * filter), with read-your-writes: a read that would be served from the new store while a change
   * this process handed to the old → new mirror is not applied yet (of one of `keys`, or of any key
   * when they are not known) is served from the old store instead, and counted as
   * `read.fresh_fallback`.
   */
  readSideFor(keys: readonly KeyValue[] | undefined, context: CutoverContext = currentCutoverContext()): Side {
    const side = this.readSide(context)
    // Not only in ramp: after cutover the old → new queue still carries old-side writes that
    // `staleSideWrites: 'permissive'` lets through; otherwise it is empty and this costs nothing.
    if (side !== 'new' || !this.#staleFor(keys)) return side
    this.#host.metrics.increment('read.fresh_fallback', { migration: this.name })
    return 'old'
  }

  /**
   * `readSideFor`, but a read that would fall back first waits up to the migration's
   * `freshness.waitMs` for this process's changes of `keys` to be applied, and then stays on the
   * new store (counted `read.fresh_waited`). A key whose change was dead-lettered falls back at
   * once: waiting cannot apply it. Without `freshness` this is `readSideFor`.
   */
  async awaitReadSide(keys: readonly KeyValue[] | undefined, context: CutoverContext = currentCutoverContext()): Promise<Side> {
    const waitMs = this.migration.freshness?.waitMs ?? 0
    const side = this.readSide(context)
    if (waitMs <= 0 || side !== 'new' || !this.#staleFor(keys)) return this.readSideFor(keys, context)
    const started = performance.now()
    const applied = await this.#queues['old-to-new'].whenApplied(keys, waitMs)
    this.#host.metrics.observe('read.fresh_wait_ms', performance.now() - started, { migration: this.name })
    if (!applied) {
      this.#host.metrics.increment('read.fresh_fallback', { migration: this.name })
      return 'old'
    }
    this.#host.metrics.increment('read.fresh_waited', { migration: this.name })
    return 'new'
  }

  /** Whether this process handed the old → new mirror a change of `keys` (any key) it has not applied. */
  #staleFor(keys: readonly KeyValue[] | undefined): boolean {
    const queue = this.#queues['old-to-new']
    const log = this.#changeLog
    const unapplied = (key?: KeyValue) => queue.hasUnapplied(key) || (log?.hasUnapplied('old', key) ?? false)
    return keys === undefined ? unapplied() : keys.some((key) => unapplied(key))
  }

  /** Whether this read should also be run on the other store and compared (sampled). */
  sampleComparison(context?: CutoverContext): boolean {
    const sample = this.settingsFor(context).compareSample
    return this.behaviorFor(context).compareReads && sample > 0 && this.#random() < sample
  }

  /**
   * Decides what to do with a write that reached `side`: `apply` it (and mirror it if the phase
   * mirrors from that side), or throw `WriteRejectedError` if the side is no longer authoritative
   * and the policy is strict.
   */
  checkWrite(side: Side, target: string, key?: KeyValue): void {
    const context = currentCutoverContext()
    const phase = this.phaseFor(context)
    // The tenant goes along even without an override: a barrier moving it is held by tenant.
    this.#host.fleet?.assertWritable(this.name, phase, target, key === undefined ? undefined : keyString(key), context.tenant)
    const behavior = this.behaviorFor(context)
    // After `complete` the old store is the archive of the move: until its safety net is released,
    // no policy lets a write reach it.
    const archived = phase === 'complete' && this.#safetyNet?.releasedAt === undefined
    const permissive = this.migration.staleSideWrites === 'permissive' && !archived
    if (side === behavior.authoritative || side === 'new' || permissive) return
    throw new WriteRejectedError(this.name, phase, target, key === undefined ? undefined : String(key))
  }

  /**
   * Hands a committed write on `side` to the mirror, if the phase mirrors from that side. Returns
   * at once; the write happens off the request path.
   */
  recordWrite(side: Side, event: ChangeEvent): void {
    try {
      this.#recordWrite(side, event)
    } catch (error) {
      // Called from the application's write path, after its write succeeded: never throw there.
      this.#host.metrics.increment('mirror.record_failed', { migration: this.name })
      this.#host.logger.error('write could not be handed to the mirror; left to reconciliation', { migration: this.name, key: String(event?.key), error: describeError(error) })
    }
  }

  #recordWrite(side: Side, event: ChangeEvent): void {
    // The phase of the request that wrote: a tenant in `cutover` mirrors its new-side writes back
    // while another tenant's old-side writes go forward, each through its own queue.
    const behavior = this.behaviorFor()
    const direction: MirrorDirection | undefined = mirrorsWritesOf(behavior, side, this.migration.staleSideWrites) ? (side === 'old' ? 'old-to-new' : 'new-to-old') : undefined
    if (side === 'old' && behavior.authoritative === 'new') {
      this.#staleSideWarning.warn({ migration: this.name, phase: this.phaseFor(), key: String(event.key) })
      this.#host.metrics.increment('write.stale_side', { migration: this.name })
    }
    this.#host.metrics.increment('write.recorded', { migration: this.name, side })
    if (!direction) return
    // The change log has it already (same transaction); only remember it for read-your-writes.
    if (this.#changeLog?.captures(side)) this.#changeLog.noteWrite(side, event.key)
    else this.#queues[direction].enqueue(event)
  }

  /**
   * A committed write on a side the change log captures, run as written so its keys are unknown
   * (the triggers mirror it anyway): until the log has applied every entry up to where it stood
   * after the write, compared reads of any key count a difference as settling, and
   * `unkeyedWritePending` says that any key may be behind.
   */
  recordUnkeyedWrite(side: Side): void {
    if (this.#changeLog?.captures(side)) this.#changeLog.noteUnkeyedWrite(side)
  }

  /** Whether a write of unknown keys this process committed on `side` may not have reached the other store yet. */
  unkeyedWritePending(side: Side): boolean {
    return this.#changeLog?.hasUnkeyedPending(side) ?? false
  }

  /** Counts a write the plugin saw but could not attribute to keys (raw SQL, `Model.collection`). */
  recordUnmirrored(target: string, detail: string): void {
    this.#host.metrics.increment('write.unmirrored', { migration: this.name, target })
    let warning = this.#unmirroredWarnings.get(target)
    if (!warning) {
      warning = new RepeatedWarning(this.#host.logger, 'write not mirrored: its keys could not be attributed')
      this.#unmirroredWarnings.set(target, warning)
    }
    warning.warn({ migration: this.name, target, detail })
  }

  queue(direction: MirrorDirection): MirrorQueue {
    return this.#queues[direction]
  }

  /** Records a read outcome on one side (metrics, guards). */
  recordRead(side: Side, ok: boolean, latencyMs: number): void {
    const labels = { migration: this.name, side }
    this.#host.metrics.observe('read.latency_ms', latencyMs, labels)
    this.#host.metrics.increment(ok ? 'read.ok' : 'read.error', labels)
    this.#guardSignal({ kind: 'read', side, ok, latencyMs })
  }

  /**
   * Compares the rows one read returned from the old store (old shape) with those from the new store
   * (new shape), by key: old rows go through the mapper first. Mismatches are counted and logged with
   * key and field paths; values of sensitive fields never appear.
   */
  compareRead(oldRows: readonly Row[], newRows: readonly Row[], detail: ReadComparisonDetail = {}): ReadComparison {
    const { key, mapper, compare } = this.migration
    const expected = new Map<string, Row>()
    const different: { key: string; differences: Difference[] }[] = []
    let unkeyed = 0
    // A composite key is read from all its fields (`storeRecordKey`), not from the first one.
    const oldKey = (row: Row) => storeRecordKey(this.migration.old, key.old, row)
    const newKey = (row: Row) => storeRecordKey(this.migration.new, key.new, row)
    for (const row of oldRows) {
      if (!isKeyValue(oldKey(row))) {
        unkeyed++
        continue
      }
      const id = keyString(oldKey(row))
      try {
        expected.set(id, mapper.forward(row, { key: id, migration: this.name }))
      } catch (error) {
        if (!(error instanceof MapperError)) throw error
        different.push({ key: id, differences: error.issues.map((issue) => ({ path: issue.path, kind: 'changed' as const })) })
      }
    }
    const keyedNew = newRows.filter((row) => isKeyValue(newKey(row)))
    unkeyed += newRows.length - keyedNew.length
    // A row without a usable key cannot be matched to its counterpart: counted, not compared.
    if (unkeyed > 0) this.#host.metrics.increment('compare.unkeyed', { migration: this.name }, unkeyed)
    const actual = new Map(keyedNew.map((row) => [keyString(newKey(row)), row]))
    const rejected = new Set(different.map((d) => d.key))
    const settling: string[] = []
    // Only keys that differ are asked about: the check is cheap, but most keys are equal.
    // A key's text is a key of its own (`keyString` of a string is itself), so the change log's
    // noted writes can be asked by it: a write the log held when the read began settles too.
    const log = this.#changeLog
    const inFlight = (id: string) =>
      this.#queues['old-to-new'].isSettling(id, detail.since) || this.#queues['new-to-old'].isSettling(id, detail.since) || (log !== undefined && (log.isSettling('old', id, detail.since) || log.isSettling('new', id, detail.since)))
    const settled = (id: string) => {
      if (!inFlight(id)) return true
      settling.push(id)
      return false
    }
    const missingInNew = [...expected.keys()].filter((id) => !actual.has(id) && settled(id))
    const missingInOld = [...actual.keys()].filter((id) => !expected.has(id) && !rejected.has(id) && settled(id))
    for (const [id, record] of expected) {
      const candidate = actual.get(id)
      if (!candidate) continue
      // Compare the fields the mapper produces; the new table may hold more (audit columns).
      const projected = Object.fromEntries(Object.keys(record).map((field) => [field, candidate[field]]))
      const result = compareRecords(record, projected, compare)
      if (!result.equal && settled(id)) different.push({ key: id, differences: [...result.differences] })
    }
    if (settling.length > 0) this.#host.metrics.increment('compare.settling', { migration: this.name }, settling.length)
    countMismatchedFields(this.#host.metrics, this.name, different)
    const equal = missingInNew.length === 0 && missingInOld.length === 0 && different.length === 0
    this.#recordComparison(equal, () => ({
      query: detail.query,
      missingInNew,
      missingInOld,
      different: different.map((d) => ({ key: d.key, fields: d.differences })),
    }))
    return { equal, missingInNew, missingInOld, different, settling }
  }

  /** Compares a count (e.g. `countDocuments`) from both stores; counted and guarded like `compareRead`. */
  compareCount(oldCount: number, newCount: number, detail: { query?: string } = {}): boolean {
    const equal = oldCount === newCount
    this.#recordComparison(equal, () => ({ query: detail.query, oldCount, newCount }))
    return equal
  }

  #recordComparison(equal: boolean, mismatch: () => Record<string, unknown>): void {
    this.#host.metrics.increment(equal ? 'compare.equal' : 'compare.mismatch', { migration: this.name })
    if (!equal) this.#host.logger.warn('read mismatch between old and new store', { migration: this.name, ...mismatch() })
    this.#guardSignal({ kind: 'comparison', equal })
  }

  /**
   * Feeds a read or comparison to the guard it counts for, and rolls back when that guard trips: a
   * request of a tenant with a phase of its own counts for the tenant's guard (and rolls back that
   * tenant only); every other request counts for the migration's.
   */
  #guardSignal(signal: GuardSignal): void {
    if (!this.#guard) return
    const tenant = this.#tenants.size === 0 ? undefined : currentCutoverContext().tenant
    if (tenant !== undefined && this.#tenants.has(tenant)) return this.#tenantGuardSignal(tenant, signal)
    this.#guard.record(signal)
    if (this.#trippedFrom !== undefined) return
    const from = this.phase
    const verdict = tripped(this.#guard, from)
    if (!verdict) return
    // Stop using the new store in this process at once; then tell the fleet through the control table.
    this.#trippedFrom = from
    this.#changeLog?.phaseChanged()
    this.#rollBack(verdict, from, undefined)
  }

  #tenantGuardSignal(tenant: string, signal: GuardSignal): void {
    let guard = this.#tenantGuards.get(tenant)
    if (!guard) this.#tenantGuards.set(tenant, (guard = new HealthGuard(this.migration.guards as GuardThresholds)))
    guard.record(signal)
    const from = this.#tenants.get(tenant)?.phase
    if (this.#trippedTenants.has(tenant) || from === undefined) return
    const verdict = tripped(guard, from)
    if (!verdict) return
    this.#trippedTenants.set(tenant, from)
    this.#rollBack(verdict, from, tenant)
  }

  /** Logs and counts a guard's rollback, then records it in the control table (the migration's row, or the tenant's). */
  #rollBack(verdict: GuardVerdict, from: Phase, tenant: string | undefined): void {
    const scope = tenant === undefined ? {} : { tenant }
    this.#host.logger.error('guard tripped; rolling back', { event: 'cutover.guard.rollback', migration: this.name, ...scope, from, reason: verdict.reason, observed: verdict.observed, measurements: verdict.measurements })
    this.#host.metrics.increment('guard.rollback', { migration: this.name })
    const evidence = { observed: verdict.observed, ...(verdict.measurements ? { measurements: verdict.measurements } : {}) }
    const change = { actor: GUARD_ACTOR, reason: verdict.reason ?? 'guard', evidence }
    const recorded = tenant === undefined ? this.#host.setPhase(this.name, 'rollback', change) : this.#host.setTenantPhase(this.name, tenant, 'rollback', change)
    recorded.catch((error: unknown) => {
      this.#host.metrics.increment('guard.record_failed', { migration: this.name })
      this.#host.logger.error('guard could not record the rollback in the control table; rolled back in this process only', { migration: this.name, ...scope, error })
    })
  }

  async drain(): Promise<void> {
    await Promise.all([this.#queues['old-to-new'].drain(), this.#queues['new-to-old'].drain(), this.#changeLog?.drain()])
  }

  /** Closes both mirror queues within `timeoutMs` (see `MirrorQueue.close`). */
  async close(options: { readonly timeoutMs?: number } = {}): Promise<MirrorCloseReport[]> {
    await this.#changeLog?.close()
    return Promise.all([this.#queues['old-to-new'].close(options), this.#queues['new-to-old'].close(options)])
  }
}

/**
 * The guard's verdict when it trips in a phase that serves from the new store (`ramp`, `cutover`),
 * its window emptied for what follows the rollback; undefined otherwise.
 */
function tripped(guard: HealthGuard, phase: Phase): GuardVerdict | undefined {
  if (phase !== 'ramp' && phase !== 'cutover') return undefined
  const verdict = guard.verdict()
  if (!verdict.trip) return undefined
  guard.reset()
  return verdict
}
