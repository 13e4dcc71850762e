import { type Kysely, sql } from 'kysely'
import { AuditLog } from '../control/audit-log.js'
import { compareRecords, type Difference } from '../model/compare.js'
import { type CutoverContext, currentCutoverContext } from './context.js'
import { ensureSchema } from '../control/control-schema.js'
import { DeadLetterTable, type DeadLetterSink } from '../control/dead-letters.js'
import { type MigrationFlags, readEnvFlags } from './env-flags.js'
import { ConfigError, MapperError, WriteRejectedError } from '../model/errors.js'
import { HealthGuard } from './guard.js'
import { createJsonLogger, type Logger } from '../observe/logger.js'
import { Metrics } from '../observe/metrics.js'
import { countMismatchedFields } from '../observe/mismatch-fields.js'
import type { Migration } from '../model/migration.js'
import { type ChangeEvent, type MirrorDirection, MirrorQueue } from './mirror-queue.js'
import { RepeatedWarning } from '../observe/repeated-warning.js'
import { type FleetOptions, FleetMember } from './fleet-member.js'
import { fleetEngine } from './fleet-engine.js'
import { type BarrierSettings, barrierSummary, commitBarrier, notifyFleet, passBarrier } from './phase-barrier.js'
import { assertTransition, isPhase, type Phase, PHASE_BEHAVIOR, type PhaseBehavior, type Side } from '../model/phase.js'
import { rampReadSide } from '../model/routing.js'
import { type KeyValue, keyString, type Row } from '../model/store.js'

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
  /** How often the control table is re-read. Default 5,000 ms; `false` to only read it on `refresh()`. */
  readonly pollIntervalMs?: number | false
  /** Source of randomness for read sampling (tests make it deterministic). */
  readonly random?: () => number
  /**
   * This process as a member of the fleet (`runtime/fleet-member.ts`): heartbeat, ~1 s control poll,
   * LISTEN wake-up, barriers and fencing. On by default with `control` and polling; `false` to
   * opt out (the process then neither blocks nor follows barriers).
   */
  readonly fleet?: FleetOptions | false
  readonly barrier?: BarrierSettings
}

/** What a phase change sets. */
export interface PhaseChange {
  readonly actor: string
  readonly readPercent?: number
  readonly compareSample?: number
  readonly reason?: string
  /** Measurements behind the change (a guard's), recorded in the audit entry. */
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
  cutover.startPolling()
  return cutover
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

  /** @internal use `createCutover`. */
  constructor(options: CutoverOptions, flags: ReadonlyMap<string, MigrationFlags>) {
    this.#options = options
    this.metrics = options.metrics ?? new Metrics()
    this.logger = options.logger ?? createJsonLogger()
    this.deadLetters = options.control ? new DeadLetterTable(options.control) : undefined
    this.audit = options.control ? new AuditLog(options.control, { logger: this.logger }) : undefined
    this.fleet = options.control && options.pollIntervalMs !== false && options.fleet !== false ? new FleetMember(options.control, fleetEngine(this), options.fleet || {}) : undefined
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

  /** Re-reads run-time overrides from `cutover.migration_state`. */
  async refresh(): Promise<void> {
    const db = this.#options.control
    if (!db) return
    const rows = await db.selectFrom('cutover.migration_state').selectAll().execute()
    const byName = new Map(rows.map((row) => [row.migration as string, row]))
    for (const runtime of this.#runtimes.values()) {
      const row = byName.get(runtime.name)
      if (row && !isPhase(row.phase)) {
        this.logger.error('control table holds an unknown phase; ignoring it', { migration: runtime.name, phase: row.phase })
        continue
      }
      runtime.applyOverride(
        row
          ? {
              phase: row.phase as Phase,
              readPercent: row.read_percent === null ? undefined : Number(row.read_percent),
              compareSample: row.compare_sample === null ? undefined : Number(row.compare_sample),
            }
          : undefined,
      )
    }
  }

  /** @internal */
  startPolling(): void {
    if (this.fleet) {
      this.fleet.start().catch((error: unknown) => this.logger.warn('fleet member failed to start', { error }))
      return
    }
    const interval = this.#options.pollIntervalMs ?? 5_000
    if (interval === false || !this.#options.control) return
    this.#pollTimer = setInterval(() => {
      this.refresh().catch((error: unknown) => this.logger.warn('control table refresh failed', { error }))
    }, interval)
    this.#pollTimer.unref?.()
  }

  /**
   * Moves a migration to another phase for the whole fleet (control table) and audits it. Illegal
   * transitions throw `PhaseTransitionError`.
   */
  async setPhase(name: string, phase: Phase, change: PhaseChange): Promise<void> {
    const runtime = this.migration(name)
    const before = { phase: runtime.configuredPhase, readPercent: runtime.readPercent, compareSample: runtime.compareSample }
    assertTransition(name, before.phase, phase)
    const after = {
      phase,
      readPercent: change.readPercent ?? before.readPercent,
      compareSample: change.compareSample ?? before.compareSample,
    }
    const db = this.#options.control
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
        details: { before, after, reason: change.reason ?? null, ...(change.evidence ? { evidence: change.evidence } : {}), ...(barrier ? { barrier: barrierSummary(barrier) } : {}) },
      })
    }
    runtime.applyOverride(after)
    this.fleet?.switched(name)
    this.logger.info('phase changed', { migration: name, from: before.phase, to: phase, actor: change.actor, reason: change.reason })
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
          batch.map((entry) => ({ key: entry.key, op: entry.op })),
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
    await this.audit?.append({ actor: options.actor ?? 'cutover:replay', migration: name, action: 'dead_letter_replay', details: { replayed, stillFailing } })
    return { replayed, stillFailing }
  }

  async drain(): Promise<void> {
    await Promise.all([...this.#runtimes.values()].map((runtime) => runtime.drain()))
  }

  /** Drains every queue and stops polling. */
  async close(): Promise<void> {
    if (this.#pollTimer) clearInterval(this.#pollTimer)
    await this.fleet?.stop()
    await Promise.all([...this.#runtimes.values()].map((runtime) => runtime.close()))
  }
}

export const GUARD_ACTOR = 'cutover:guard'

/** One migration inside a running `Cutover`: what plugins ask on every query. */
export class MigrationRuntime {
  readonly name: string
  readonly migration: Migration<any, any>
  readonly #cutover: Cutover
  readonly #flags: MigrationFlags
  #override: Partial<MigrationFlags> | undefined
  readonly #queues: Record<MirrorDirection, MirrorQueue>
  readonly #guard: HealthGuard | undefined
  readonly #random: () => number
  /** Set when the guard rolled back locally; holds the phase it rolled back from. */
  #trippedFrom: Phase | undefined
  readonly #staleSideWarning: RepeatedWarning
  readonly #unmirroredWarnings = new Map<string, RepeatedWarning>()

  constructor(cutover: Cutover, migration: Migration<any, any>, flags: MigrationFlags, deadLetters: DeadLetterSink, random: () => number) {
    this.#cutover = cutover
    this.#staleSideWarning = new RepeatedWarning(cutover.logger, 'write reached the old store after cutover; mirrored forward')
    this.migration = migration
    this.name = migration.name
    this.#flags = flags
    this.#random = random
    this.#guard = migration.guards ? new HealthGuard(migration.guards) : undefined
    const mapper = migration.mapper
    const common = {
      migration: migration.name,
      deadLetters,
      metrics: cutover.metrics,
      logger: cutover.logger,
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

  /** The engine's logger, for plugins reporting about this migration. */
  get logger(): Logger {
    return this.#cutover.logger
  }

  get metrics(): Metrics {
    return this.#cutover.metrics
  }

  /** The phase in force in this process. */
  get phase(): Phase {
    return this.#trippedFrom !== undefined ? 'rollback' : this.configuredPhase
  }

  /** The phase env flags and the control table set (the guard may have rolled back locally). */
  get configuredPhase(): Phase {
    return this.#override?.phase ?? this.#flags.phase
  }

  get behavior(): PhaseBehavior {
    return PHASE_BEHAVIOR[this.phase]
  }

  get readPercent(): number {
    return this.#override?.readPercent ?? this.#flags.readPercent
  }

  get compareSample(): number {
    return this.#override?.compareSample ?? this.#flags.compareSample
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
      this.#cutover.logger.info('phase now in force', { migration: this.name, from: before, to: this.phase })
    }
  }

  /** Which store serves a read now, for the request context. */
  readSide(context: CutoverContext = currentCutoverContext()): Side {
    const reads = this.behavior.reads
    return reads === 'split' ? rampReadSide(this.readPercent, context, this.migration.routing) : reads
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
    if (side !== 'new' || this.behavior.authoritative !== 'old') return side
    const queue = this.#queues['old-to-new']
    const stale = keys === undefined ? queue.hasUnapplied() : keys.some((key) => queue.hasUnapplied(key))
    if (!stale) return side
    this.#cutover.metrics.increment('read.fresh_fallback', { migration: this.name })
    return 'old'
  }

  /** Whether this read should also be run on the other store and compared (sampled). */
  sampleComparison(): boolean {
    return this.behavior.compareReads && this.compareSample > 0 && this.#random() < this.compareSample
  }

  /**
   * Decides what to do with a write that reached `side`: `apply` it (and mirror it if the phase
   * mirrors from that side), or throw `WriteRejectedError` if the side is no longer authoritative
   * and the policy is strict.
   */
  checkWrite(side: Side, target: string, key?: KeyValue): void {
    this.#cutover.fleet?.assertWritable(this.name, this.phase, target, key === undefined ? undefined : keyString(key))
    const behavior = this.behavior
    if (side === behavior.authoritative || side === 'new' || this.migration.staleSideWrites === 'permissive') return
    throw new WriteRejectedError(this.name, this.phase, target, key === undefined ? undefined : keyString(key))
  }

  /**
   * Hands a committed write on `side` to the mirror, if the phase mirrors from that side. Returns
   * at once; the write happens off the request path.
   */
  recordWrite(side: Side, event: ChangeEvent): void {
    const mirror = this.behavior.mirror
    const direction: MirrorDirection | undefined =
      mirror === 'old-to-new' && side === 'old'
        ? 'old-to-new'
        : mirror === 'new-to-old' && side === 'new'
          ? 'new-to-old'
          : side === 'old' && this.behavior.authoritative === 'new' && this.migration.staleSideWrites === 'permissive'
            ? 'old-to-new'
            : undefined
    if (side === 'old' && this.behavior.authoritative === 'new') {
      this.#staleSideWarning.warn({ migration: this.name, phase: this.phase, key: keyString(event.key) })
      this.#cutover.metrics.increment('write.stale_side', { migration: this.name })
    }
    this.#cutover.metrics.increment('write.recorded', { migration: this.name, side })
    if (!direction) return
    this.#queues[direction].enqueue(event)
  }

  /** Counts a write the plugin saw but could not attribute to keys (raw SQL, `Model.collection`). */
  recordUnmirrored(target: string, detail: string): void {
    this.#cutover.metrics.increment('write.unmirrored', { migration: this.name, target })
    let warning = this.#unmirroredWarnings.get(target)
    if (!warning) {
      warning = new RepeatedWarning(this.#cutover.logger, 'write not mirrored: its keys could not be attributed')
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
    this.#cutover.metrics.observe('read.latency_ms', latencyMs, labels)
    this.#cutover.metrics.increment(ok ? 'read.ok' : 'read.error', labels)
    this.#guard?.record({ kind: 'read', side, ok, latencyMs })
    this.#checkGuard()
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
    for (const row of oldRows) {
      const id = keyString(row[key.old] as KeyValue)
      try {
        expected.set(id, mapper.forward(row, { key: id, migration: this.name }))
      } catch (error) {
        if (!(error instanceof MapperError)) throw error
        different.push({ key: id, differences: error.issues.map((issue) => ({ path: issue.path, kind: 'changed' as const })) })
      }
    }
    const actual = new Map(newRows.map((row) => [keyString(row[key.new] as KeyValue), row]))
    const rejected = new Set(different.map((d) => d.key))
    const settling: string[] = []
    // Only keys that differ are asked about: the check is cheap, but most keys are equal.
    const settled = (id: string) => {
      if (!this.#queues['old-to-new'].isSettling(id, detail.since) && !this.#queues['new-to-old'].isSettling(id, detail.since)) return true
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
    if (settling.length > 0) this.#cutover.metrics.increment('compare.settling', { migration: this.name }, settling.length)
    countMismatchedFields(this.#cutover.metrics, this.name, different)
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
    this.#cutover.metrics.increment(equal ? 'compare.equal' : 'compare.mismatch', { migration: this.name })
    if (!equal) this.#cutover.logger.warn('read mismatch between old and new store', { migration: this.name, ...mismatch() })
    this.#guard?.record({ kind: 'comparison', equal })
    this.#checkGuard()
  }

  #checkGuard(): void {
    if (!this.#guard || this.#trippedFrom !== undefined) return
    const from = this.phase
    if (from !== 'ramp' && from !== 'cutover') return
    const verdict = this.#guard.verdict()
    if (!verdict.trip) return
    // Stop using the new store in this process at once; then tell the fleet through the control table.
    this.#trippedFrom = from
    this.#guard.reset()
    this.#cutover.logger.error('guard tripped; rolling back', { event: 'cutover.guard.rollback', migration: this.name, from, reason: verdict.reason, observed: verdict.observed, measurements: verdict.measurements })
    this.#cutover.metrics.increment('guard.rollback', { migration: this.name })
    this.#cutover.setPhase(this.name, 'rollback', { actor: GUARD_ACTOR, reason: verdict.reason ?? 'guard', evidence: { observed: verdict.observed, ...(verdict.measurements ? { measurements: verdict.measurements } : {}) } }).catch((error: unknown) => {
      this.#cutover.logger.error('guard could not record the rollback in the control table; rolled back in this process only', { migration: this.name, error })
    })
  }

  async drain(): Promise<void> {
    await Promise.all([this.#queues['old-to-new'].drain(), this.#queues['new-to-old'].drain()])
  }

  async close(): Promise<void> {
    await Promise.all([this.#queues['old-to-new'].close(), this.#queues['new-to-old'].close()])
  }
}
