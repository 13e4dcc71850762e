import { type Kysely, sql } from 'kysely'
import { AuditLog } from '../control/audit-log.js'
import { ensureSchema } from '../control/control-schema.js'
import { DeadLetterTable, type DeadLetterSink, entryKey } from '../control/dead-letters.js'
import { type MigrationFlags, readEnvFlags } from './env-flags.js'
import { ConfigError, type ConfigProblem } from '../model/errors.js'
import { checkTenant, type MigrationSettings, settingProblems, settingsFromRow } from '../model/settings.js'
import { createJsonLogger, type Logger } from '../observe/logger.js'
import { Metrics } from '../observe/metrics.js'
import type { Migration } from '../model/migration.js'
import { GUARD_ACTOR, MigrationRuntime } from './migration-runtime.js'
import { checkStores, sidesCheckedFor } from './store-checks.js'
import { DEFAULT_CLOSE_TIMEOUT_MS, type MirrorCloseReport } from './mirror-queue.js'
import { assertTenantTransition, assertTransition, type Phase, TENANT_PHASES } from '../model/phase.js'
import { describeError, finishesWithin, neverThrowing } from './background.js'
import { SafetyNets, type SafetyNetState } from '../control/safety-net.js'
import { SignalHistory } from '../control/signal-history.js'
import { afterMove, checkMove, checkTenantMove, type GateOverride, releaseOldStore } from './phase-move.js'
import { type TenantRow, TenantStateTable } from '../control/tenant-state.js'
import { DEFAULT_SIGNAL_INTERVAL_MS, SignalRecorder } from './signal-recorder.js'

export { GUARD_ACTOR, MigrationRuntime, type ReadComparison, type ReadComparisonDetail } from './migration-runtime.js'
import { attachChangeLogCapture } from '../capture/attach-capture.js'
import { resolveCaptureSettings } from '../capture/capture-settings.js'
import { type FleetOptions, FleetMember } from './fleet-member.js'
import { fleetEngine } from './fleet-engine.js'
import { type BarrierSettings, barrierSummary, commitBarrier, notifyFleet, passBarrier } from './phase-barrier.js'

export interface CutoverOptions {
  readonly migrations: readonly Migration<any, any>[]
  /**
   * PostgreSQL holding the `cutover` schema: dead letters, run-time phase control, audit. Strongly
   * recommended; without it dead letters go to `deadLetters` and phase control is per process.
   */
  readonly control?: Kysely<any>
  /** Where dead letters go when there is no `control` database (tests). */
  readonly deadLetters?: DeadLetterSink
  readonly env?: Readonly<Record<string, string | undefined>>
  /** Reject `CUTOVER_<NAME>_*` flags naming no migration (default true). */
  readonly rejectUnknownMigrationFlags?: boolean
  readonly logger?: Logger
  readonly metrics?: Metrics
  /**
   * How often the control table is re-read: the fleet member's heartbeat (default 1,000 ms), or,
   * with `fleet: false`, the poll (default 5,000 ms). `false` to only read it on `refresh()`.
   */
  readonly pollIntervalMs?: number | false
  /** Source of randomness for read sampling (tests make it deterministic). */
  readonly random?: () => number
  /**
   * How often this instance adds what it counted (mirror outcomes, compared reads, queue depths) to
   * `cutover.signals`, which the phase gates read. Default 10,000 ms; `false` to record nothing.
   */
  readonly signalIntervalMs?: number | false
  /**
   * This process as a member of the fleet (`runtime/fleet-member.ts`): heartbeat, ~1 s control poll,
   * LISTEN wake-up, barriers and fencing. On by default with `control` and polling; `false` to
   * opt out (the process then neither blocks nor follows barriers).
   */
  readonly fleet?: FleetOptions | false
  readonly barrier?: BarrierSettings
}

/** What `Cutover.close` left undone, per mirror queue. */
export interface CloseReport {
  /** True when every queue drained before the deadline. */
  readonly complete: boolean
  readonly queues: readonly MirrorCloseReport[]
}

/** What a phase change sets. `force` moves past unmet gates and needs a `reason`. */
export interface PhaseChange extends GateOverride {
  readonly actor: string
  readonly readPercent?: number
  readonly compareSample?: number
  /** Measurements behind the change (a guard's), recorded in the audit entry. */
  readonly evidence?: Readonly<Record<string, unknown>>
}

/** Start-up: validates env flags, creates the control schema, loads run-time overrides. */
export async function createCutover(options: CutoverOptions): Promise<Cutover> {
  const names = options.migrations.map((m) => m.name)
  const duplicates = names.filter((name, i) => names.indexOf(name) !== i)
  if (duplicates.length > 0) {
    throw new ConfigError(duplicates.map((name) => ({ source: 'migrations', value: name, message: `migration "${name}" is defined twice` })))
  }
  const flags = readEnvFlags(names, options.env ?? process.env, { rejectUnknownMigrations: options.rejectUnknownMigrationFlags ?? true })
  if (!options.control && !options.deadLetters) {
    throw new ConfigError([
      { source: 'control', value: undefined, message: 'createCutover needs `control` (a Kysely instance on PostgreSQL) or a `deadLetters` sink: mirrored writes that fail must land somewhere durable' },
    ])
  }
  if (options.control) await ensureSchema(options.control)
  const cutover = new Cutover(options, flags)
  await cutover.refresh()
  await checkStoresAtStartUp(cutover)
  await attachChangeLogCapture(cutover, options.deadLetters)
  cutover.startPolling()
  cutover.startSignals()
  return cutover
}

/**
 * Every store a migration's phase in force touches is described and checked (`store-checks.ts`);
 * every problem of every migration is thrown at once as one `ConfigError`. A store that cannot be
 * reached is logged and counted, not an error: the application must start while a new store is down.
 */
async function checkStoresAtStartUp(cutover: Cutover): Promise<void> {
  const problems: ConfigProblem[] = []
  for (const runtime of cutover.migrations) {
    const result = await checkStores(runtime.migration, sidesCheckedFor(runtime.phase))
    problems.push(...result.problems)
    for (const { store, error } of result.unreachable) {
      cutover.metrics.increment('store.describe_failed', { migration: runtime.name })
      cutover.logger.warn('store could not be described at start-up; checked again before the next phase change', { migration: runtime.name, store, error })
    }
    if (runtime.phase === 'off') cutover.logger.warn('migration is off: nothing is mirrored yet; set CUTOVER_<NAME>_PHASE=shadow or run `cutover phase <name> shadow` to start', { migration: runtime.name })
  }
  if (problems.length > 0) throw new ConfigError(problems)
}

/** The running engine: phase per migration, mirror queues, read routing and comparison, guards. */
export class Cutover {
  readonly metrics: Metrics
  readonly logger: Logger
  readonly deadLetters: DeadLetterTable | undefined
  readonly audit: AuditLog | undefined
  readonly fleet: FleetMember | undefined
  readonly #options: CutoverOptions
  readonly #runtimes: Map<string, MigrationRuntime>
  #pollTimer: NodeJS.Timeout | undefined
  #signals: SignalRecorder | undefined
  /** Set once start-up is done: from then on, phase changes read from the control table are checked first. */
  #started = false

  /** @internal use `createCutover`. */
  constructor(options: CutoverOptions, flags: ReadonlyMap<string, MigrationFlags>) {
    this.#options = options
    this.metrics = options.metrics ?? new Metrics()
    this.logger = neverThrowing(options.logger ?? createJsonLogger())
    this.deadLetters = options.control ? new DeadLetterTable(options.control) : undefined
    this.audit = options.control ? new AuditLog(options.control, { logger: this.logger }) : undefined
    this.fleet = options.control && options.pollIntervalMs !== false && options.fleet !== false ? new FleetMember(options.control, fleetEngine(this), { ...(options.pollIntervalMs === undefined ? {} : { heartbeatMs: options.pollIntervalMs }), ...options.fleet }) : undefined
    const sink = options.deadLetters ?? (this.deadLetters as DeadLetterSink)
    this.#runtimes = new Map(
      options.migrations.map((migration) => [
        migration.name,
        new MigrationRuntime(this, migration, flags.get(migration.name) as MigrationFlags, sink, options.random ?? Math.random),
      ]),
    )
  }

  migration(name: string): MigrationRuntime {
    const runtime = this.#runtimes.get(name)
    if (!runtime) {
      throw new ConfigError([{ source: 'migration', value: name, message: `no migration named "${name}"; known: ${[...this.#runtimes.keys()].join(', ')}` }])
    }
    return runtime
  }

  get migrations(): readonly MigrationRuntime[] {
    return [...this.#runtimes.values()]
  }

  /** Re-reads run-time overrides from `cutover.migration_state` and `cutover.tenant_state`. */
  async refresh(): Promise<void> {
    const db = this.#options.control
    if (!db) return
    const [rows, nets, tenantRows] = await Promise.all([db.selectFrom('cutover.migration_state').selectAll().execute(), new SafetyNets(db).all(), new TenantStateTable(db).rows()])
    const byName = new Map(rows.map((row) => [row.migration as string, row]))
    for (const net of nets) this.#runtimes.get(net.migration)?.applySafetyNet(net)
    for (const runtime of this.#runtimes.values()) {
      const row = byName.get(runtime.name)
      const read = row ? settingsFromRow(row) : { ok: true as const, settings: undefined }
      if (!read.ok) {
        // Another process (or a hand-written UPDATE) stored what this one would never accept:
        // keep the settings in force rather than run on a value nobody validated.
        this.metrics.increment('control.setting_refused', { migration: runtime.name })
        this.logger.error('control table holds invalid settings; keeping the ones in force', { migration: runtime.name, problems: read.problems })
        continue
      }
      if (this.#started && read.settings?.phase !== undefined && read.settings.phase !== runtime.configuredPhase && !(await this.#phaseChangeAllowed(runtime, read.settings.phase))) continue
      runtime.applyOverride(read.settings)
    }
    for (const runtime of this.#runtimes.values()) runtime.applyTenantOverrides(await this.#tenantOverrides(runtime, tenantRows.filter((row) => (row.kind === 'override' ? row.override.migration : row.migration) === runtime.name)))
  }

  /**
   * The tenant overrides of one migration from its `tenant_state` rows. A row that fails
   * validation, or whose phase this process's stores would fail, keeps the tenant's settings in
   * force (as for the migration's row).
   */
  async #tenantOverrides(runtime: MigrationRuntime, rows: readonly TenantRow[]): Promise<Map<string, MigrationSettings>> {
    const before = runtime.tenantOverrides
    const overrides = new Map<string, MigrationSettings>()
    for (const row of rows) {
      const tenant = row.kind === 'override' ? row.override.tenant : row.tenant
      const kept = before.get(tenant)
      if (row.kind === 'cleared') continue
      if (row.kind === 'invalid') {
        this.metrics.increment('control.setting_refused', { migration: runtime.name })
        this.logger.error('control table holds invalid tenant settings; keeping the ones in force', { migration: runtime.name, tenant, problems: row.problems })
        if (kept) overrides.set(tenant, kept)
        continue
      }
      const { phase, readPercent, compareSample } = row.override
      const current = kept?.phase ?? runtime.configuredPhase
      if (this.#started && phase !== current && !(await this.#phaseChangeAllowed(runtime, phase))) {
        if (kept) overrides.set(tenant, kept)
        continue
      }
      overrides.set(tenant, Object.freeze({ phase, readPercent, compareSample }))
    }
    return overrides
  }

  /**
   * The store checks of start-up, run before a phase change from the control table takes effect
   * here: a change this process's stores would fail (wrong table or key, or unreachable) is refused
   * in this process, which keeps its phase, logs it and counts `control.phase_refused`; the next
   * poll tries again.
   */
  async #phaseChangeAllowed(runtime: MigrationRuntime, phase: Phase): Promise<boolean> {
    const result = await checkStores(runtime.migration, sidesCheckedFor(phase))
    if (result.problems.length === 0 && result.unreachable.length === 0) return true
    this.metrics.increment('control.phase_refused', { migration: runtime.name, phase })
    this.logger.error('phase change from the control table refused in this process: its stores fail the start-up checks', {
      migration: runtime.name,
      from: runtime.configuredPhase,
      to: phase,
      problems: result.problems.map((problem) => problem.message),
      unreachable: result.unreachable,
    })
    return false
  }

  /** @internal */
  startPolling(): void {
    this.#started = true
    if (this.fleet) {
      this.fleet.start().catch((error: unknown) => this.logger.warn('fleet member failed to start', { error: describeError(error) }))
      return
    }
    const interval = this.#options.pollIntervalMs ?? 5_000
    if (interval === false || !this.#options.control) return
    this.#pollTimer = setInterval(() => {
      this.refresh().catch((error: unknown) => {
        this.metrics.increment('control.refresh_failed')
        this.logger.warn('control table refresh failed; keeping the settings in force', { error: describeError(error) })
      })
    }, interval)
    this.#pollTimer.unref?.()
  }

  /** @internal */
  startSignals(): void {
    if (!this.#options.control) return
    this.#signals = new SignalRecorder(new SignalHistory(this.#options.control), this.metrics, this.logger, () => this.migrations)
    const interval = this.#options.signalIntervalMs ?? DEFAULT_SIGNAL_INTERVAL_MS
    if (interval !== false) this.#signals.start(interval)
  }

  /**
   * Adds what this instance counted to `cutover.signals` now, which the phase gates read (they are
   * also written every `signalIntervalMs`). For tests and for processes that record by hand.
   */
  async recordSignals(): Promise<void> {
    await this.#signals?.flush()
  }

  /**
   * Moves a migration to another phase for the whole fleet (control table) and audits it. Illegal
   * transitions throw `PhaseTransitionError`; a forward move whose gates are unmet throws
   * `PhaseGateError` unless forced with a reason (the audit keeps the gate values either way).
   */
  async setPhase(name: string, phase: Phase, change: PhaseChange): Promise<void> {
    const runtime = this.migration(name)
    checkPhaseChange(name, phase, change)
    await assertStoresFit(runtime, phase)
    const before = { phase: runtime.configuredPhase, readPercent: runtime.readPercent, compareSample: runtime.compareSample }
    assertTransition(name, before.phase, phase)
    const db = this.#options.control
    if (db && phase === 'complete') await assertNoTenantOverrides(db, name)
    // The guard's rollback is never gated: it is how the fleet gets out of trouble.
    const gates = db && change.actor !== GUARD_ACTOR ? await checkMove(db, runtime.migration, before.phase, phase, change) : undefined
    const after = {
      phase,
      readPercent: change.readPercent ?? before.readPercent,
      compareSample: change.compareSample ?? before.compareSample,
    }
    if (db) {
      // A change of write authority waits until every live instance has stopped writing (barrier).
      const barrier = await passBarrier(db, { migration: name, from: before.phase, to: phase, actor: change.actor }, { logger: this.logger, ...(this.fleet ? { member: this.fleet } : {}), ...(this.#options.barrier ? { settings: this.#options.barrier } : {}) })
      const row = await db
        .insertInto('cutover.migration_state')
        .values({ migration: name, phase, read_percent: after.readPercent, compare_sample: after.compareSample, updated_by: change.actor })
        .onConflict((oc) =>
          oc.column('migration').doUpdateSet({ phase, read_percent: after.readPercent, compare_sample: after.compareSample, updated_by: change.actor, updated_at: new Date(), version: sql`cutover.migration_state.version + 1` }),
        )
        .returning('version')
        .executeTakeFirstOrThrow()
      if (barrier) await commitBarrier(db, barrier, Number(row.version))
      await notifyFleet(db, `phase:${name}`)
      await this.audit?.append({
        actor: change.actor,
        migration: name,
        action: phase === 'rollback' && change.actor === GUARD_ACTOR ? 'guard_rollback' : 'phase_change',
        details: {
          before,
          after,
          reason: change.reason ?? null,
          ...(gates && gates.gates.length > 0 ? { gates: gates.gates, forced: !gates.met } : {}),
          ...(change.evidence ? { evidence: change.evidence } : {}),
          ...(barrier ? { barrier: barrierSummary(barrier) } : {}),
        },
      })
      await afterMove(db, runtime.migration, before.phase, phase, this.logger)
      runtime.applySafetyNet(await new SafetyNets(db).state(name))
    }
    runtime.applyOverride(after)
    this.fleet?.switched(name)
    this.logger.info('phase changed', { migration: name, from: before.phase, to: phase, actor: change.actor, reason: change.reason })
  }

  /**
   * Gives one tenant a phase of its own (`phase`), or clears it (`null`: the tenant follows the
   * migration again), for the whole fleet, through the same checks as `setPhase`: the settings'
   * validation, the transition from the tenant's phase in force, the stores, the gates (on the
   * tenant's own timeline, see `checkTenantMove`), a barrier scoped to the tenant when write
   * authority moves for it, and an audit entry (`tenant_phase_change`, with `details.tenant`).
   * Only the requests whose context names the tenant follow it.
   */
  async setTenantPhase(name: string, tenant: string, phase: Phase | null, change: PhaseChange): Promise<void> {
    const runtime = this.migration(name)
    const db = this.#options.control
    checkTenantChange(runtime, tenant, phase, change, db !== undefined)
    if (!db) return
    const table = new TenantStateTable(db)
    const own = await table.override(name, tenant)
    // Nothing to clear: the tenant follows the migration already.
    if (phase === null && !own) return
    const migrationSettings = { phase: runtime.configuredPhase, readPercent: runtime.readPercent, compareSample: runtime.compareSample }
    const before = own ? { phase: own.phase, readPercent: own.readPercent, compareSample: own.compareSample } : migrationSettings
    const after =
      phase === null
        ? migrationSettings
        : { phase, readPercent: change.readPercent ?? before.readPercent, compareSample: change.compareSample ?? before.compareSample }
    assertTenantTransition(name, tenant, before.phase, after.phase)
    await assertStoresFit(runtime, after.phase)
    const gates = change.actor !== GUARD_ACTOR ? await checkTenantMove(db, runtime.migration, tenant, before.phase, after.phase, change) : undefined
    const barrier = await passBarrier(db, { migration: name, tenant, from: before.phase, to: after.phase, actor: change.actor }, { logger: this.logger, ...(this.fleet ? { member: this.fleet } : {}), ...(this.#options.barrier ? { settings: this.#options.barrier } : {}) })
    const version = await table.write(name, tenant, phase === null ? { phase: null } : after, change.actor)
    if (barrier) await commitBarrier(db, barrier, version)
    await notifyFleet(db, `tenant:${name}`)
    await this.audit?.append({
      actor: change.actor,
      migration: name,
      action: 'tenant_phase_change',
      details: {
        tenant,
        before: { ...before, override: own !== undefined },
        after: { ...after, override: phase !== null },
        cleared: phase === null,
        reason: change.reason ?? null,
        ...(gates && gates.gates.length > 0 ? { gates: gates.gates, forced: !gates.met } : {}),
        ...(change.evidence ? { evidence: change.evidence } : {}),
        ...(barrier ? { barrier: barrierSummary(barrier) } : {}),
      },
    })
    const overrides = new Map(runtime.tenantOverrides)
    if (phase === null) overrides.delete(tenant)
    else overrides.set(tenant, Object.freeze(after))
    runtime.applyTenantOverrides(overrides)
    this.fleet?.switched(name, tenant)
    this.logger.info('tenant phase changed', { migration: name, tenant, from: before.phase, to: after.phase, cleared: phase === null, actor: change.actor, reason: change.reason })
  }

  /**
   * Ends a completed migration's safety net early: the revert window closes (the reverse mirror
   * stops) and the old store takes writes again. Audited. Throws `ConfigError` if it has none.
   */
  async releaseSafetyNet(name: string, change: { actor: string; reason?: string }): Promise<SafetyNetState> {
    const runtime = this.migration(name)
    const db = this.#options.control
    const nets = db ? new SafetyNets(db) : undefined
    const before = await nets?.state(name)
    if (!db || !nets || !before) {
      throw new ConfigError([{ source: 'migration', value: name, message: `${name} has no safety net to release: it has not completed` }])
    }
    await releaseOldStore(runtime.migration, this.logger)
    const after = (await nets.release(name, change.actor)) ?? before
    runtime.applySafetyNet(after)
    await this.audit?.append({
      actor: change.actor,
      migration: name,
      action: 'safety_net_release',
      details: { revertUntil: before.revertUntil.toISOString(), readOnlyUntil: before.readOnlyUntil.toISOString(), reason: change.reason ?? null },
    })
    return after
  }

  /** Replays open dead letters of a migration through its mirror queues; resolves the ones applied. */
  async replayDeadLetters(name: string, options: { actor?: string; batchSize?: number } = {}): Promise<{ replayed: number; stillFailing: number }> {
    const table = this.deadLetters
    if (!table) throw new ConfigError([{ source: 'control', value: undefined, message: 'replaying dead letters needs the `control` database' }])
    const runtime = this.migration(name)
    let replayed = 0
    let stillFailing = 0
    let afterId: string | undefined
    // Only what was open when the replay started: a key failing again updates its own entry.
    const newest = (await table.open(name, { limit: 1, newestFirst: true }))[0]?.id
    for (;;) {
      const entries = (await table.open(name, { limit: options.batchSize ?? 500, ...(afterId ? { afterId } : {}) })).filter(
        (entry) => newest !== undefined && BigInt(entry.id) <= BigInt(newest),
      )
      if (entries.length === 0) break
      afterId = entries.at(-1)?.id
      for (const direction of ['old-to-new', 'new-to-old'] as const) {
        const batch = entries.filter((entry) => entry.direction === direction)
        if (batch.length === 0) continue
        // State-based: each key is re-read from its source now, so replay writes current state.
        const outcomes = await runtime.queue(direction).apply(
          batch.map((entry) => ({ key: entryKey(entry, direction === 'old-to-new' ? runtime.migration.old : runtime.migration.new), op: entry.op })),
          { deadLetter: false },
        )
        const byKey = new Map(outcomes.map((outcome) => [outcome.key, outcome]))
        const ok = batch.filter((entry) => byKey.get(entry.key)?.status === 'applied').map((entry) => entry.id)
        await table.resolve(ok, 'replayed')
        for (const entry of batch) {
          const outcome = byKey.get(entry.key)
          if (outcome?.status === 'dead-lettered') await table.recordAttempt([entry.id], outcome.reason)
        }
        replayed += ok.length
        stillFailing += batch.length - ok.length
      }
    }
    await runtime.drain()
    if (stillFailing === 0) for (const direction of ['old-to-new', 'new-to-old'] as const) runtime.queue(direction).forgetUnreplayed()
    await this.audit?.append({ actor: options.actor ?? 'cutover:replay', migration: name, action: 'dead_letter_replay', details: { replayed, stillFailing } })
    return { replayed, stillFailing }
  }

  async drain(): Promise<void> {
    await Promise.all([...this.#runtimes.values()].map((runtime) => runtime.drain()))
  }

  /**
   * Stops polling and closes every mirror queue, waiting at most `timeoutMs` (default 10 s) for
   * them to drain. Resolves (never rejects) with what the deadline left undone: keys not applied,
   * re-checks not run, dead letters not written. Those are left to reconciliation.
   */
  async close(options: { readonly timeoutMs?: number } = {}): Promise<CloseReport> {
    if (this.#pollTimer) clearInterval(this.#pollTimer)
    this.#pollTimer = undefined
    // Leaving the fleet and the last signals report talk to the control database, which may be gone:
    // each gets the same deadline as the queues, so shutdown stays bounded.
    const deadline = options.timeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS
    if (this.fleet && !(await finishesWithin(this.fleet.stop(), deadline))) this.logger.warn('leaving the fleet did not finish before the deadline', { timeoutMs: deadline })
    const queues = (await Promise.all([...this.#runtimes.values()].map((runtime) => runtime.close(options)))).flat()
    if (this.#signals) await finishesWithin(this.#signals.stop(), deadline)
    return { complete: queues.every((queue) => queue.complete), queues }
  }
}

/** Refuses a phase change whose settings the env flags or the control table would refuse. */
function checkPhaseChange(name: string, phase: Phase, change: PhaseChange): void {
  const problems = settingProblems(`setPhase(${JSON.stringify(name)})`, `migration "${name}"`, { phase, readPercent: change.readPercent, compareSample: change.compareSample })
  if (problems.length > 0) throw new ConfigError(problems)
}

/**
 * Refuses a tenant change the migration cannot take: an invalid tenant id or setting, no control
 * database (a tenant's phase lives in the control table), `complete` (only the whole migration
 * completes: its safety net makes the old store read-only for every tenant), a migration already in
 * `complete`, or change-log capture, whose workers follow the migration's phase alone.
 */
function checkTenantChange(runtime: MigrationRuntime, tenant: string, phase: Phase | null, change: PhaseChange, hasControl: boolean): void {
  const name = runtime.name
  const source = `setTenantPhase(${JSON.stringify(name)}, ${JSON.stringify(tenant)})`
  const subject = `tenant ${JSON.stringify(tenant)} of migration "${name}"`
  const problems: ConfigProblem[] = settingProblems(source, subject, { phase: phase ?? undefined, readPercent: change.readPercent, compareSample: change.compareSample })
  const checked = checkTenant(tenant)
  if (!checked.ok) problems.push({ source: `${source}.tenant`, value: tenant, message: `tenant ${JSON.stringify(tenant)} is not valid; ${checked.message}` })
  if (!hasControl) problems.push({ source: `${source}`, value: undefined, message: `a tenant's own phase lives in the control table: ${name} needs \`control\`` })
  if (phase !== null && !TENANT_PHASES.includes(phase)) problems.push({ source: `${source}.phase`, value: phase, message: `${subject} cannot be given "${phase}": only the whole migration completes (clear the tenant's override once the migration is in cutover, then complete the migration)` })
  if (runtime.configuredPhase === 'complete') problems.push({ source: `${source}.phase`, value: phase, message: `migration "${name}" is complete: its tenants cannot have phases of their own` })
  if (resolveCaptureSettings(runtime.migration.capture).mode === 'change-log') problems.push({ source: `${source}`, value: 'change-log', message: `migration "${name}" captures through a change log, whose workers follow the migration's phase only: tenants cannot have phases of their own` })
  if (problems.length > 0) throw new ConfigError(problems)
}

/** `complete` is the whole migration's: every tenant's override must be cleared first. */
async function assertNoTenantOverrides(db: Kysely<any>, name: string): Promise<void> {
  const overrides = await new TenantStateTable(db).overrides(name)
  if (overrides.length === 0) return
  throw new ConfigError([
    { source: `setPhase(${JSON.stringify(name)}).phase`, value: 'complete', message: `migration "${name}" cannot complete while tenants have phases of their own (${overrides.map((o) => `${o.tenant}: ${o.phase}`).join(', ')}); clear them with \`cutover phase ${name} --tenant T --clear\`` },
  ])
}

/** Refuses a phase change (in `setPhase`, so also the CLI) that the stores it touches would fail. */
async function assertStoresFit(runtime: MigrationRuntime, phase: Phase): Promise<void> {
  const result = await checkStores(runtime.migration, sidesCheckedFor(phase))
  const unreachable = result.unreachable.map(({ side, store, error }) => ({
    source: `migration "${runtime.name}" ${side} store ${store}`,
    value: store,
    message: `migration "${runtime.name}" ${side} store ${store} could not be checked before moving to ${phase}: ${error}`,
  }))
  if (result.problems.length + unreachable.length > 0) throw new ConfigError([...result.problems, ...unreachable])
}
