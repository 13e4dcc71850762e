/**
 * `ChangeLogWorker`: applies one captured side's `cutover.change_log` to the other store.
 *
 * Each round is one transaction on the captured database:
 * 1. claim the oldest entries of this capture with `FOR UPDATE SKIP LOCKED` (other workers take the
 *    next ones), and a transaction-scoped advisory lock per key: a key another worker is applying is
 *    left for a later round, so one key is never applied by two workers at once and its changes land
 *    in commit order (a row's changes are logged in the order their row locks allowed them);
 * 2. state-based, as the in-memory mirror: read the keys' current rows from the source store, map
 *    them, write them (or delete absent ones) through a `MirrorQueue`'s `apply`;
 * 3. record what could not be applied in the dead-letter table, report TRUNCATEs, and delete the
 *    batch's entries; commit.
 * The log is the checkpoint: a worker killed at any point rolls back, its locks go, and the entries
 * are claimed again (re-applying current state is idempotent). Nothing is removed before it is
 * applied or durably dead-lettered.
 */
import { sql, type Transaction } from 'kysely'
import type { DeadLetter, DeadLetterSink } from '../control/dead-letters.js'
import type { Migration } from '../model/migration.js'
import { COMPLETE_IN_REVERT_WINDOW, mirrorsWritesOf, type Phase, PHASE_BEHAVIOR, type Side } from '../model/phase.js'
import { keyString } from '../model/store.js'
import { type Logger, silentLogger } from '../observe/logger.js'
import { Metrics } from '../observe/metrics.js'
import { type ChangeEvent, type MirrorDirection, MirrorQueue } from '../runtime/mirror-queue.js'
import { captureTable, objectsFor } from './capture-install.js'
import { logKey } from './log-key.js'
import { sleep } from '../runtime/background.js'

export interface ChangeLogWorkerOptions {
  readonly migration: Migration<any, any>
  readonly direction: MirrorDirection
  readonly deadLetters: DeadLetterSink
  /** The phase in force: a direction the phase does not mirror is not applied (see `#claim`). */
  readonly phase: () => Phase
  /** Whether `complete`'s revert window is open, in which the reverse mirror (new → old) still runs. Default: closed. */
  readonly revertWindowOpen?: () => boolean
  /** Entries claimed per round. Default 500. */
  readonly batchSize?: number
  /** Wait after a round that found nothing to do. Default 100 ms. */
  readonly pollIntervalMs?: number
  /** How often the log's size is measured (`capture.log_size`). Default 5,000 ms. */
  readonly sizeIntervalMs?: number
  readonly metrics?: Metrics
  readonly logger?: Logger
  /** Keys (`keyString`) applied by a committed round: read-your-writes in this process. */
  readonly onApplied?: (keys: readonly string[]) => void
  /** A TRUNCATE of the captured table was applied: the other side needs a resync of the table. */
  readonly onTruncate?: (event: { readonly capture: string; readonly truncatedAt: Date }) => void
}

export interface RoundResult {
  /** Entries this round locked. */
  readonly claimed: number
  /** Entries applied (or dead-lettered) and removed. */
  readonly applied: number
  /** Entries left because another worker holds their key. */
  readonly deferred: number
  /** Entries removed unapplied: written to a side the phase in force does not mirror from. */
  readonly discarded: number
  readonly truncates: number
  readonly deadLettered: number
}

interface LogEntry {
  readonly id: string
  readonly op: 'I' | 'U' | 'D' | 'T'
  readonly key: string[] | null
  readonly logged_at: Date
  readonly age_ms: number
  readonly locked: boolean
}

const EMPTY: RoundResult = { claimed: 0, applied: 0, deferred: 0, discarded: 0, truncates: 0, deadLettered: 0 }

export class ChangeLogWorker {
  readonly #options: ChangeLogWorkerOptions
  readonly #side: Side
  readonly #capture: string
  readonly #queue: MirrorQueue
  readonly #metrics: Metrics
  readonly #logger: Logger
  readonly #labels: Readonly<Record<string, string>>
  /** Captured-database time at which this worker first saw its direction not mirrored. */
  #inactiveSince: Date | undefined
  /** The read of that time started when the phase changed (`phaseChanged`), until it answers. */
  #stamping: Promise<void> | undefined
  #loop: Promise<void> | undefined
  #stopping = false
  #wake: (() => void) | undefined
  #lastSizeAt = 0

  constructor(options: ChangeLogWorkerOptions) {
    this.#options = options
    this.#side = options.direction === 'old-to-new' ? 'old' : 'new'
    this.#capture = objectsFor(options.migration, this.#side).capture
    this.#metrics = options.metrics ?? new Metrics()
    this.#logger = options.logger ?? silentLogger
    this.#labels = { migration: options.migration.name, direction: options.direction }
    this.#queue = applyQueue(options.migration, options.direction, options.deadLetters, this.#metrics, this.#logger)
  }

  /** Runs rounds until `stop()`. Never throws: failures are logged and retried with backoff. */
  start(): void {
    if (this.#loop) return
    this.#stopping = false
    this.#loop = this.#run()
  }

  /**
   * The phase in force changed. If this direction stops mirroring, the captured database's time is
   * read now rather than at the next round: a write logged between the change and that round (a
   * poll interval later, or whenever a drain runs) reached the side that is no longer
   * authoritative, and must be discarded, not applied to the side that is.
   */
  phaseChanged(): void {
    if (this.#mirrors()) {
      // Mirroring again: what is logged from now on is applied (a later stop stamps afresh).
      this.#inactiveSince = undefined
      return
    }
    if (this.#inactiveSince !== undefined || this.#stamping) return
    const table = captureTable(this.#options.migration, this.#side)
    this.#stamping = table
      .run(() => sql<{ now: Date }>`select now() as now`.execute(table.db))
      .then(({ rows }) => {
        if (!this.#mirrors()) this.#inactiveSince ??= rows[0]?.now
      })
      .catch((error: unknown) => this.#logger.warn('could not read the time the phase stopped mirroring; the next round reads it', { ...this.#labels, error: error instanceof Error ? error.message : String(error) }))
      .finally(() => {
        this.#stamping = undefined
      })
  }

  /** Finishes the round in flight and stops. */
  async stop(): Promise<void> {
    this.#stopping = true
    this.#wake?.()
    await this.#loop
    this.#loop = undefined
  }

  /**
   * Runs rounds until this capture's log is empty: entries other workers hold (this process's loop
   * included) are waited for, since the log is empty only once their rounds have committed.
   */
  async drain(): Promise<void> {
    for (;;) {
      const round = await this.runOnce()
      if (round.claimed > 0 && round.deferred === 0) continue
      if ((await this.pending()) === 0) return
      await sleep(20)
    }
  }

  /** Entries of this capture in the log, applied by no committed round yet. */
  async pending(): Promise<number> {
    const table = captureTable(this.#options.migration, this.#side)
    const { rows } = await table.run(() => sql<{ n: number }>`select count(*)::int as n from cutover.change_log where capture = ${this.#capture}`.execute(table.db))
    return rows[0]?.n ?? 0
  }

  /** One round: claim, apply, remove, commit. */
  async runOnce(): Promise<RoundResult> {
    // Every round looks, so that a worker told of no change (`cutover capture run`) still stamps
    // the moment it first sees its direction stop mirroring, even while the log is empty.
    this.phaseChanged()
    const table = captureTable(this.#options.migration, this.#side)
    let applied: string[] = []
    const result = await table.run(() =>
      table.db.transaction().execute(async (trx) => {
        const entries = await this.#claim(trx)
        if (entries.length === 0) return EMPTY
        const outcome = await this.#process(trx, entries)
        applied = outcome.appliedKeys
        return outcome.result
      }),
    )
    if (applied.length > 0) this.#options.onApplied?.(applied)
    await this.#measureSize().catch(() => undefined)
    return result
  }

  async #run(): Promise<void> {
    let backoff = 100
    while (!this.#stopping) {
      try {
        const round = await this.runOnce()
        backoff = 100
        if (round.claimed < (this.#options.batchSize ?? 500)) await this.#idle(this.#options.pollIntervalMs ?? 100)
      } catch (error) {
        this.#metrics.increment('capture.round_failed', this.#labels)
        this.#logger.warn('change-log round failed; retrying', { ...this.#labels, error: error instanceof Error ? error.message : String(error) })
        await this.#idle(backoff)
        backoff = Math.min(5_000, backoff * 2)
      }
    }
  }

  #idle(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms)
      function done() {
        clearTimeout(timer)
        resolve()
      }
      this.#wake = done
    })
  }

  /**
   * Locks the oldest entries no other worker holds, and per key an advisory lock (per capture for a
   * TRUNCATE). Entries logged after this worker saw its direction stop mirroring are marked for
   * discarding: such writes reached the non-authoritative side, and the in-memory path drops them too.
   */
  async #claim(trx: Transaction<any>): Promise<LogEntry[]> {
    const { rows } = await sql<LogEntry>`
      with claimed as (
        select id, op, key, logged_at from cutover.change_log
         where capture = ${this.#capture}
         order by id limit ${this.#options.batchSize ?? 500}
         for update skip locked
      )
      select id::text as id, op, key, logged_at,
             (extract(epoch from clock_timestamp() - logged_at) * 1000)::float8 as age_ms,
             pg_try_advisory_xact_lock(hashtextextended(${this.#capture} || coalesce(key::text, ''), 0)) as locked
        from claimed order by id`.execute(trx)
    return rows
  }

  async #process(trx: Transaction<any>, entries: readonly LogEntry[]): Promise<{ result: RoundResult; appliedKeys: string[] }> {
    const locked = entries.filter((entry) => entry.locked)
    const mirrors = await this.#mirrorsNow(trx)
    const discard = locked.filter((entry) => !mirrors && this.#inactiveSince !== undefined && entry.logged_at >= this.#inactiveSince)
    const kept = locked.filter((entry) => !discard.includes(entry))
    const truncates = kept.filter((entry) => entry.op === 'T')
    const changes = kept.filter((entry) => entry.op !== 'T')

    const { appliedKeys, deadLettered } = await this.#apply(changes)
    for (const entry of truncates) await this.#reportTruncate(trx, entry)
    await this.#remove(trx, [...discard, ...kept])

    const ageAtDone = (entry: LogEntry) => entry.age_ms
    for (const entry of changes) this.#metrics.observe('capture.lag_ms', ageAtDone(entry), this.#labels)
    this.#metrics.increment('capture.applied', this.#labels, changes.length)
    if (discard.length > 0) this.#metrics.increment('capture.discarded', this.#labels, discard.length)
    return {
      appliedKeys,
      result: { claimed: entries.length, applied: changes.length, deferred: entries.length - locked.length, discarded: discard.length, truncates: truncates.length, deadLettered },
    }
  }

  /** State-based apply of the batch's distinct keys; failures are dead-lettered before the entries go. */
  async #apply(changes: readonly LogEntry[]): Promise<{ appliedKeys: string[]; deadLettered: number }> {
    const events = new Map<string, ChangeEvent>()
    for (const entry of changes) {
      const key = logKey(entry.key as string[])
      events.set(keyString(key), { key, op: entry.op === 'D' ? 'delete' : 'upsert' })
    }
    if (events.size === 0) return { appliedKeys: [], deadLettered: 0 }
    const outcomes = await this.#queue.apply([...events.values()], { deadLetter: false })
    const failed: DeadLetter[] = []
    for (const outcome of outcomes) {
      if (outcome.status !== 'dead-lettered') continue
      failed.push({
        migration: this.#options.migration.name,
        direction: this.#options.direction,
        key: outcome.key,
        ...(events.has(outcome.key) ? { keyValue: events.get(outcome.key)?.key } : {}),
        op: events.get(outcome.key)?.op ?? 'upsert',
        reasonCode: outcome.reasonCode,
        reason: outcome.reason,
        attempts: 1,
      })
    }
    // Durable before the entries are deleted: if the dead-letter table is unreachable this throws,
    // the round rolls back and the entries are tried again.
    if (failed.length > 0) await this.#options.deadLetters.write(failed)
    return { appliedKeys: outcomes.filter((o) => o.status === 'applied').map((o) => o.key), deadLettered: failed.length }
  }

  async #reportTruncate(trx: Transaction<any>, entry: LogEntry): Promise<void> {
    await sql`insert into cutover.capture_resyncs (capture, truncated_at) values (${this.#capture}, ${entry.logged_at})`.execute(trx)
    this.#metrics.increment('capture.truncated', this.#labels)
    this.#logger.error('captured table was truncated: the other side needs a resync of the table (backfill --restart, then verify and reconcile)', {
      ...this.#labels,
      capture: this.#capture,
      truncatedAt: entry.logged_at.toISOString(),
    })
    this.#options.onTruncate?.({ capture: this.#capture, truncatedAt: entry.logged_at })
  }

  async #remove(trx: Transaction<any>, entries: readonly LogEntry[]): Promise<void> {
    if (entries.length === 0) return
    await sql`delete from cutover.change_log where capture = ${this.#capture} and id = any(${entries.map((e) => e.id)}::bigint[])`.execute(trx)
  }

  /** Whether the phase in force mirrors from this side; remembers when it stopped doing so. */
  async #mirrorsNow(trx: Transaction<any>): Promise<boolean> {
    await this.#stamping
    const mirrors = this.#mirrors()
    if (mirrors) this.#inactiveSince = undefined
    else if (this.#inactiveSince === undefined) {
      const { rows } = await sql<{ now: Date }>`select now() as now`.execute(trx)
      this.#inactiveSince = rows[0]?.now
    }
    return mirrors
  }

  #mirrors(): boolean {
    const phase = this.#options.phase()
    const behavior = phase === 'complete' && this.#options.revertWindowOpen?.() ? COMPLETE_IN_REVERT_WINDOW : PHASE_BEHAVIOR[phase]
    return mirrorsWritesOf(behavior, this.#side, this.#options.migration.staleSideWrites)
  }

  async #measureSize(): Promise<void> {
    const every = this.#options.sizeIntervalMs ?? 5_000
    if (Date.now() - this.#lastSizeAt < every) return
    this.#lastSizeAt = Date.now()
    this.#metrics.observe('capture.log_size', await this.pending(), this.#labels)
  }
}

/**
 * The write path of the in-memory mirror, without its timing: no linger (a round's batch is
 * complete), no delayed re-check (the per-key advisory lock already serializes appliers).
 */
function applyQueue(migration: Migration<any, any>, direction: MirrorDirection, deadLetters: DeadLetterSink, metrics: Metrics, logger: Logger): MirrorQueue {
  const forward = direction === 'old-to-new'
  const version = forward ? migration.version?.new : migration.version?.old
  return new MirrorQueue({
    migration: migration.name,
    direction,
    source: forward ? migration.old : migration.new,
    target: forward ? migration.new : migration.old,
    translate: (record, key) => (forward ? migration.mapper.forward : migration.mapper.backward)(record, { key, migration: migration.name }),
    deadLetters,
    metrics,
    logger,
    ...(migration.compare ? { compare: migration.compare } : {}),
    ...migration.mirror,
    lingerMs: 0,
    recheckDelayMs: false,
    capacity: Number.MAX_SAFE_INTEGER,
    ...(version ? { versionField: version } : {}),
  })
}
