import type { ComparisonRules } from '../model/compare.js'
import type { DeadLetterSink } from '../control/dead-letters.js'
import { CutoverError } from '../model/errors.js'
import { type Logger, silentLogger } from '../observe/logger.js'
import { Metrics } from '../observe/metrics.js'
import { isKeyValue, type KeyValue, keyString, type Row, type Store } from '../model/store.js'
import { describeError, finishesWithin, neverThrowing, sleep } from './background.js'
import { DeadLetterBuffer } from './dead-letter-buffer.js'
import { type ApplyOutcome, type BatchStores, mapForward, type PendingKey, readSource, type TargetWrites, writeTarget } from './mirror-batch.js'
import { MirrorRecheck } from './mirror-recheck.js'

export type { ApplyOutcome } from './mirror-batch.js'

/** A committed write to mirror: which key changed, and its state after the write if known. */
export interface ChangeEvent {
  /** Key in the source store. */
  readonly key: KeyValue
  readonly op: 'upsert' | 'delete'
  /** The source record after the write (source shape), when the write returned it. */
  readonly postImage?: Row
  /**
   * True when `postImage` is the complete record exactly as the source stores it, and would return
   * it, right after this write: a document as inserted, or one a write returned whole. Such an image
   * is applied without reading the key back, even without a version field: the key's own later
   * events still override it (a key with more than one change queued is read back), and the
   * re-check that follows every apply repairs an image that another process's apply overtook.
   * Leave it unset for partial or possibly unapplied images: those are only kept for dead letters.
   */
  readonly postImageExact?: boolean
}

export type MirrorDirection = 'old-to-new' | 'new-to-old'

/** What `close` left undone when its deadline came first (all empty when `complete`). */
export interface MirrorCloseReport {
  readonly migration: string
  readonly direction: MirrorDirection
  /** True when everything was applied, re-checked and dead-lettered durably before the deadline. */
  readonly complete: boolean
  /** Keys queued or in flight: their change may not be in the target. */
  readonly unapplied: readonly string[]
  /** Applied keys whose re-check did not run. */
  readonly notRechecked: readonly string[]
  /** Dead letters still in memory: the table was unreachable. */
  readonly unflushedDeadLetters: readonly { readonly key: string; readonly reasonCode: string }[]
}

export interface RetryPolicy {
  readonly attempts: number
  readonly baseDelayMs: number
  readonly maxDelayMs: number
}

export interface MirrorQueueOptions {
  readonly migration: string
  readonly direction: MirrorDirection
  /** The authoritative side: its current state of a key is what gets written. */
  readonly source: Store
  readonly target: Store
  /** Source record → target record (the mapper's forward or backward); throws `MapperError`. */
  readonly translate: (record: Row, key: string) => Row
  /** Source key → target key. Identity by default: mappers keep key values. */
  readonly targetKey?: (key: KeyValue) => KeyValue
  /** Version field of the target shape: writes are version-guarded and post-images trusted. */
  readonly versionField?: string
  readonly deadLetters: DeadLetterSink
  /** Most distinct keys waiting in memory. Default 10,000. */
  readonly capacity?: number
  /**
   * When full: `dead-letter` (default) records the key in the dead-letter table so it is replayed
   * later, and the caller never waits; `reject` drops it and counts `mirror.rejected`, for callers
   * that retry themselves (`enqueue` returns false).
   */
  readonly overflow?: 'dead-letter' | 'reject'
  /** Batches applied at once. Default 4. */
  readonly concurrency?: number
  /** Keys per batch. Default 100. */
  readonly batchSize?: number
  /**
   * How long a batch that is not yet full waits for more keys before it starts. Under a steady
   * stream of single writes this turns one read and one write per key into one per batch, which
   * is what keeps the mirror's cost off the application's database. Adds at most this much lag.
   * Default 50 ms: at a few thousand writes a second that fills batches of 100, so the mirror adds
   * a couple of queries per hundred writes (at 10 ms it added about one per ten, measurably slowing
   * the application's own queries on a small machine); 0 starts every batch at once.
   */
  readonly lingerMs?: number
  readonly retry?: Partial<RetryPolicy>
  /**
   * Without a version field, two processes may apply one key in a stale order. Each applied key is
   * therefore re-checked this long after its write (source re-read, compared with the target) and
   * re-applied if they differ, so concurrent appliers converge. `false` turns it off. Default 500.
   */
  readonly recheckDelayMs?: number | false
  /** Rules for the re-check comparison (the migration's comparison rules). */
  readonly compare?: ComparisonRules
  /** Most entries held in memory while the dead-letter table itself is unreachable. Default 100,000. */
  readonly deadLetterBuffer?: number
  readonly metrics?: Metrics
  readonly logger?: Logger
}

/** How long `close` waits for the queue to drain when not told. */
export const DEFAULT_CLOSE_TIMEOUT_MS = 10_000
const DEFAULT_RETRY: RetryPolicy = { attempts: 5, baseDelayMs: 50, maxDelayMs: 2_000 }
/** How long applied keys are remembered for `isSettling`: longer than any compared read takes. */
const SETTLE_MS = 1_000
/**
 * Keys read per store call by the re-check. Larger than an apply batch: the re-check only reads,
 * and a source that answers a key lookup by scanning (FerretDB on SQLite) pays one scan per call
 * however many keys it carries.
 */
const RECHECK_READ_SIZE = 1_000

/**
 * Applies committed changes to the other store off the caller's path.
 *
 * - State, not operations: the key's current state is read from the source (or taken from a trusted
 *   post-image when the target has a version guard) and written to the target; an absent key is
 *   deleted there. Replaying a key is therefore always safe.
 * - Per-key order: a key is never in two batches at once; events arriving while it is being applied
 *   are coalesced and applied after. Different keys are applied concurrently.
 * - Bounded: at most `capacity` keys wait; beyond that the overflow policy applies. Coalescing means
 *   a hot key costs one slot however often it is written.
 * - Nothing lost silently: store failures are retried with exponential backoff, then dead-lettered
 *   with the reason (`DeadLetterBuffer`); mapper rejections are dead-lettered at once (a retry
 *   cannot fix them). Applied keys are re-checked later (`MirrorRecheck`) when there is no version.
 *
 * One apply of a batch reads as `readSource → mapForward → writeTarget → settle` (`mirror-batch.ts`).
 */
export class MirrorQueue {
  readonly migration: string
  readonly direction: MirrorDirection
  readonly #options: MirrorQueueOptions
  readonly #retry: RetryPolicy
  readonly #metrics: Metrics
  readonly #logger: Logger
  readonly #labels: Readonly<Record<string, string>>
  readonly #stores: BatchStores

  readonly #pending = new Map<string, PendingKey>()
  readonly #inFlight = new Set<string>()
  readonly #dirtyWhileInFlight = new Map<string, PendingKey>()
  #activeBatches = 0
  #lingerTimer: NodeJS.Timeout | undefined

  readonly #recheck: MirrorRecheck | undefined
  readonly #deadLetters: DeadLetterBuffer

  /** Keys applied lately, by when (`performance.now()`), oldest first: see `isSettling`. */
  readonly #recentlyApplied = new Map<string, number>()

  /**
   * Keys whose change this queue dead-lettered and has not applied since: the target is stale for
   * them until a replay (or a later change) applies them. Bounded; past the bound every key counts
   * as stale (`#unreplayedOverflow`) until a replay finds nothing open.
   */
  readonly #unreplayed = new Set<string>()
  #unreplayedOverflow = false
  /** Called after every batch, for `whenApplied`. */
  readonly #appliedWatchers = new Set<() => void>()

  #idleWaiters: Array<() => void> = []
  #closed = false
  /** Set when `close` gave up waiting: no batch starts any more, and `drain` returns at once. */
  #abandoned = false

  constructor(options: MirrorQueueOptions) {
    this.#options = options
    this.migration = options.migration
    this.direction = options.direction
    this.#retry = { ...DEFAULT_RETRY, ...options.retry }
    this.#metrics = options.metrics ?? new Metrics()
    this.#logger = neverThrowing(options.logger ?? silentLogger)
    this.#labels = { migration: options.migration, direction: options.direction }
    const targetKey = options.targetKey ?? ((key: KeyValue) => key)
    this.#stores = { source: options.source, target: options.target, translate: options.translate, targetKey, versionField: options.versionField }
    const onSettled = () => this.#isIdle() && this.#notifyIdle()
    this.#deadLetters = new DeadLetterBuffer({
      sink: options.deadLetters,
      limit: options.deadLetterBuffer ?? 100_000,
      baseDelayMs: this.#retry.baseDelayMs,
      maxDelayMs: this.#retry.maxDelayMs,
      metrics: this.#metrics,
      logger: this.#logger,
      labels: this.#labels,
      onFlushed: onSettled,
    })
    const delay = options.recheckDelayMs ?? 500
    this.#recheck =
      delay === false || options.versionField !== undefined
        ? undefined
        : new MirrorRecheck({
            source: options.source,
            target: options.target,
            translate: options.translate,
            targetKey,
            ...(options.compare ? { compare: options.compare } : {}),
            delayMs: delay,
            readSize: Math.max(options.batchSize ?? 100, RECHECK_READ_SIZE),
            metrics: this.#metrics,
            logger: this.#logger,
            labels: this.#labels,
            onDiverged: (divergence) => this.#add({ key: divergence.key, op: divergence.op }, divergence.generation, undefined, true),
            onRun: onSettled,
          })
  }

  /** Keys waiting or being applied. */
  get depth(): number {
    return this.#pending.size + this.#inFlight.size + this.#dirtyWhileInFlight.size
  }

  /**
   * Queues a committed change; returns at once. False when the queue was full and the overflow
   * policy is `reject`.
   */
  enqueue(event: ChangeEvent): boolean {
    return this.#add(event, 0, undefined, true)
  }

  /**
   * Queues keys and resolves when each has been applied or has failed (replay, reconciliation).
   * With `deadLetter: false` failures are only reported, for callers that already hold a record of
   * the key (replaying a dead letter updates that entry instead of adding another).
   */
  apply(events: readonly ChangeEvent[], options: { deadLetter?: boolean } = {}): Promise<ApplyOutcome[]> {
    return Promise.all(
      events.map(
        (event) =>
          new Promise<ApplyOutcome>((resolve) => {
            if (!this.#add(event, 0, resolve, options.deadLetter ?? true)) {
              resolve({ key: keyString(event.key), status: 'dead-lettered', reasonCode: 'QUEUE_FULL', reason: 'mirror queue full' })
            }
          }),
      ),
    )
  }

  /**
   * Whether reads of both stores that began at `since` (`performance.now()`) may see different
   * states of the key through no fault of either: a change of it is queued or being applied, or was
   * applied after `since` (one store read before the apply, the other after). Read comparisons skip
   * such keys instead of reporting mirror lag as a mismatch. Without `since`: the last second.
   */
  isSettling(key: KeyValue, since?: number): boolean {
    const id = keyString(key)
    if (this.#isQueued(id)) return true
    const appliedAt = this.#recentlyApplied.get(id)
    return appliedAt !== undefined && appliedAt >= Math.max(since ?? -Infinity, performance.now() - SETTLE_MS)
  }

  /**
   * Whether a change this queue was handed has not reached the target yet: for `key`, a change of
   * that key is queued or being applied; without a key, any change is. Reads that want their own
   * writes (ramp) ask this before they read the target.
   */
  hasUnapplied(key?: KeyValue): boolean {
    // A key that is not one (null from an unusual document) cannot be told apart: ask about all.
    if (key === undefined || !isKeyValue(key)) return this.depth > 0 || this.#unreplayed.size > 0 || this.#unreplayedOverflow
    const id = keyString(key)
    return this.#isQueued(id) || this.#unreplayed.has(id) || this.#unreplayedOverflow
  }

  /**
   * Resolves true as soon as none of `keys` (any key, when undefined) has a change queued or in
   * flight, false after `timeoutMs` or at once when one of them was dead-lettered (waiting cannot
   * bring that one back). For reads that would rather wait a little than leave the new store.
   */
  whenApplied(keys: readonly KeyValue[] | undefined, timeoutMs: number): Promise<boolean> {
    const fresh = () => (keys === undefined ? !this.hasUnapplied() : !keys.some((key) => this.hasUnapplied(key)))
    const hopeless = () =>
      this.#unreplayedOverflow || (keys === undefined ? this.#unreplayed.size > 0 : keys.some((key) => isKeyValue(key) && this.#unreplayed.has(keyString(key))))
    if (fresh()) return Promise.resolve(true)
    if (hopeless() || timeoutMs <= 0) return Promise.resolve(false)
    return new Promise<boolean>((resolve) => {
      const finish = () => {
        clearTimeout(timer)
        this.#appliedWatchers.delete(check)
        resolve(fresh())
      }
      const check = () => {
        if (fresh() || hopeless()) finish()
      }
      const timer = setTimeout(finish, timeoutMs)
      this.#appliedWatchers.add(check)
    })
  }

  /**
   * Resolves when nothing is waiting, in flight, due for a re-check or unflushed to the dead-letter
   * table. Every turn of its loop awaits the work it is waiting for, so it never spins; it has no
   * deadline of its own (`close` has one).
   */
  async drain(): Promise<void> {
    while (!this.#abandoned && !this.#isDrained()) {
      if (!this.#isIdle()) await new Promise<void>((resolve) => this.#idleWaiters.push(resolve))
      else if (this.#recheck && (this.#recheck.due > 0 || this.#recheck.running)) await this.#recheck.run()
      else await this.#deadLetters.flush()
    }
  }

  /**
   * Drains for at most `timeoutMs` (default 10 s), then refuses new events and stops every timer.
   * What the deadline cut off is reported, logged and counted (`mirror.shutdown_incomplete`):
   * those keys are left to reconciliation, like a crash would leave them. Never rejects.
   */
  async close(options: { readonly timeoutMs?: number } = {}): Promise<MirrorCloseReport> {
    const complete = await finishesWithin(this.drain(), options.timeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS)
    this.#closed = true
    if (this.#lingerTimer) clearTimeout(this.#lingerTimer)
    this.#recheck?.stop()
    this.#deadLetters.stop()
    const report = this.#closeReport(complete)
    if (!complete) {
      this.#abandoned = true
      this.#notifyIdle()
      this.#metrics.increment('mirror.shutdown_incomplete', this.#labels)
      this.#logger.error('mirror queue closed before it drained; what is left goes to reconciliation', {
        ...this.#labels,
        unapplied: report.unapplied.length,
        notRechecked: report.notRechecked.length,
        unflushedDeadLetters: report.unflushedDeadLetters.length,
        keys: [...report.unapplied, ...report.unflushedDeadLetters.map((entry) => entry.key)].slice(0, 100),
      })
    }
    return report
  }

  #closeReport(complete: boolean): MirrorCloseReport {
    return {
      migration: this.migration,
      direction: this.direction,
      complete,
      unapplied: [...new Set([...this.#inFlight, ...this.#pending.keys(), ...this.#dirtyWhileInFlight.keys()])],
      notRechecked: this.#recheck?.dueKeys ?? [],
      unflushedDeadLetters: this.#deadLetters.unflushed.map((entry) => ({ key: entry.key, reasonCode: entry.reasonCode })),
    }
  }

  #isDrained(): boolean {
    return this.#isIdle() && !this.#recheck?.due && !this.#recheck?.running && this.#deadLetters.held === 0 && !this.#deadLetters.flushing
  }

  #isQueued(id: string): boolean {
    return this.#pending.has(id) || this.#inFlight.has(id) || this.#dirtyWhileInFlight.has(id)
  }

  #add(
    event: ChangeEvent,
    recheckGeneration: number,
    waiter: ((outcome: ApplyOutcome) => void) | undefined,
    deadLetterOnFailure: boolean,
  ): boolean {
    if (!isKeyValue(event.key)) return this.#invalidKey(event)
    const id = keyString(event.key)
    if (this.#closed) {
      this.#logger.error('mirror queue closed; change not mirrored', { ...this.#labels, key: id })
      this.#metrics.increment('mirror.rejected', this.#labels)
      return false
    }
    this.#metrics.increment('mirror.enqueued', this.#labels)
    const waiters = waiter ? [waiter] : []
    const existing = this.#pending.get(id) ?? this.#dirtyWhileInFlight.get(id)
    if (existing) {
      // Coalesce: the latest state wins; whoever waited for the older event waits for this one. An
      // exact image is no longer trusted: two writes may reach the queue in another order than the
      // one they had in the source, so the key is read back instead.
      existing.op = event.op
      existing.postImage = event.postImage
      existing.exact = false
      existing.recheckGeneration = Math.min(existing.recheckGeneration, recheckGeneration)
      existing.waiters.push(...waiters)
      existing.deadLetterOnFailure ||= deadLetterOnFailure
      this.#metrics.increment('mirror.coalesced', this.#labels)
      return true
    }
    const entry: PendingKey = {
      key: event.key,
      op: event.op,
      postImage: event.postImage,
      exact: event.postImageExact === true && event.op === 'upsert' && event.postImage !== undefined,
      recheckGeneration,
      waiters,
      deadLetterOnFailure,
      queuedAt: performance.now(),
    }
    if (this.#inFlight.has(id)) {
      // Read back, as for coalesced changes: this image may be older than the one being applied.
      entry.exact = false
      this.#dirtyWhileInFlight.set(id, entry)
      return true
    }
    if (this.#pending.size >= (this.#options.capacity ?? 10_000)) return this.#overflow(entry)
    this.#pending.set(id, entry)
    this.#schedulePump()
    return true
  }

  /** Starts full batches now; lets a partial batch linger a little for more keys. */
  #schedulePump(): void {
    const linger = this.#options.lingerMs ?? 50
    if (linger <= 0 || this.#pending.size >= (this.#options.batchSize ?? 100)) {
      this.#pump()
      return
    }
    if (this.#lingerTimer) return
    this.#lingerTimer = setTimeout(() => {
      this.#lingerTimer = undefined
      try {
        this.#pump()
      } catch (error) {
        this.#backgroundFailed('pump', error)
      }
    }, linger)
  }

  /**
   * A change whose key is not a key (`null`, `undefined`, an object): it cannot be queued or read
   * back, so it is reported where a user looks for what was not mirrored, the dead letters.
   */
  #invalidKey(event: ChangeEvent): boolean {
    const key = String(event.key)
    this.#metrics.increment('mirror.invalid_key', this.#labels)
    this.#metrics.increment('mirror.dead_lettered', { ...this.#labels, reason: 'KEY_INVALID' })
    this.#logger.error('change has no usable key; dead-lettered', { ...this.#labels, key, keyType: typeof event.key })
    this.#deadLetters.add({
      migration: this.migration,
      direction: this.direction,
      key,
      op: event.op,
      reasonCode: 'KEY_INVALID',
      reason: `key ${key} (${typeof event.key}) is not a string, number or bigint`,
      fields: [],
      payload: event.postImage,
      attempts: 0,
    })
    return false
  }

  /** Last resort for background work: a bug of ours is counted and logged, never thrown. */
  #backgroundFailed(work: string, error: unknown): void {
    this.#metrics.increment('mirror.background_error', { ...this.#labels, work })
    this.#logger.error('mirror background work failed', { ...this.#labels, work, error: describeError(error) })
  }

  #overflow(entry: PendingKey): boolean {
    const key = keyString(entry.key)
    if ((this.#options.overflow ?? 'dead-letter') === 'reject') {
      this.#metrics.increment('mirror.rejected', this.#labels)
      return false
    }
    this.#metrics.increment('mirror.overflow', this.#labels)
    this.#deadLetter(entry, 'QUEUE_FULL', `mirror queue held ${this.#options.capacity ?? 10_000} keys; replay to apply`, [], 0)
    this.#logger.warn('mirror queue full; key dead-lettered for replay', { ...this.#labels, key })
    return true
  }

  #pump(): void {
    if (this.#abandoned) return
    const concurrency = this.#options.concurrency ?? 4
    const batchSize = this.#options.batchSize ?? 100
    while (this.#activeBatches < concurrency && this.#pending.size > 0) {
      const batch: PendingKey[] = []
      for (const [id, entry] of this.#pending) {
        this.#pending.delete(id)
        this.#inFlight.add(id)
        batch.push(entry)
        if (batch.length >= batchSize) break
      }
      this.#activeBatches++
      void this.#runBatch(batch)
        .catch((error: unknown) => this.#backgroundFailed('batch', error))
        .then(() => this.#batchDone(batch))
        .catch((error: unknown) => this.#backgroundFailed('batch settle', error))
    }
  }

  /** A batch left flight: its keys written meanwhile queue again, and the next batches start. */
  #batchDone(batch: readonly PendingKey[]): void {
    this.#activeBatches--
    for (const entry of batch) {
      const id = keyString(entry.key)
      this.#inFlight.delete(id)
      const dirty = this.#dirtyWhileInFlight.get(id)
      if (dirty) {
        this.#dirtyWhileInFlight.delete(id)
        this.#pending.set(id, dirty)
      }
    }
    this.#schedulePump()
    for (const check of [...this.#appliedWatchers]) check()
    if (this.#isIdle()) this.#notifyIdle()
  }

  async #runBatch(batch: PendingKey[]): Promise<void> {
    let remaining = batch
    for (let attempt = 1; ; attempt++) {
      const rejected = new Map<string, ApplyOutcome>()
      try {
        await this.#applyBatch(remaining, rejected)
        for (const entry of remaining) {
          const outcome = rejected.get(keyString(entry.key)) ?? { key: keyString(entry.key), status: 'applied' as const }
          for (const resolve of entry.waiters) resolve(outcome)
        }
        return
      } catch (error) {
        // Mapper rejections are final and already dead-lettered: settle them, retry only the rest.
        for (const entry of remaining) {
          const outcome = rejected.get(keyString(entry.key))
          if (outcome) for (const resolve of entry.waiters) resolve(outcome)
        }
        remaining = remaining.filter((entry) => !rejected.has(keyString(entry.key)))
        this.#metrics.increment('mirror.retried', this.#labels)
        if (attempt >= this.#retry.attempts) {
          const reason = describeError(error)
          this.#logger.error('mirror batch failed after retries; keys dead-lettered', { ...this.#labels, keys: remaining.length, attempts: attempt, error: reason })
          const code = error instanceof CutoverError ? error.code : 'STORE_FAILED'
          for (const entry of remaining) {
            this.#deadLetter(entry, code, reason, [], attempt)
            for (const resolve of entry.waiters) resolve({ key: keyString(entry.key), status: 'dead-lettered', reasonCode: code, reason })
          }
          return
        }
        const delay = Math.min(this.#retry.maxDelayMs, this.#retry.baseDelayMs * 2 ** (attempt - 1))
        await sleep(delay * (0.5 + Math.random() / 2))
      }
    }
  }

  /**
   * One attempt at a batch. Throws on store failure (the batch is retried); mapper rejections are
   * per key, dead-lettered once and reported through `rejected`.
   */
  async #applyBatch(batch: PendingKey[], rejected: Map<string, ApplyOutcome>): Promise<void> {
    const started = performance.now()
    const states = await readSource(batch, this.#stores)
    const writes = mapForward(batch, states, this.#stores)
    for (const rejection of writes.rejected) {
      const id = keyString(rejection.entry.key)
      this.#deadLetter({ ...rejection.entry, postImage: rejection.state }, rejection.reasonCode, rejection.reason, rejection.fields, 1)
      rejected.set(id, { key: id, status: 'dead-lettered', reasonCode: rejection.reasonCode, reason: rejection.reason })
    }
    await writeTarget(writes, this.#stores)
    this.#settle(writes, started)
  }

  /** After a successful write: metrics, lag, the re-check and the settling window of each key. */
  #settle(writes: TargetWrites, started: number): void {
    const now = performance.now()
    this.#metrics.observe('mirror.apply_ms', now - started, { ...this.#labels, side: this.direction === 'old-to-new' ? 'new' : 'old' })
    this.#metrics.increment('mirror.applied', this.#labels, writes.applied.length)
    for (const entry of writes.applied) {
      // Lag from the commit being queued to its state being in the other store: the window a crash
      // could lose, and what verification before cutover must cover.
      this.#metrics.observe('mirror.lag_ms', now - entry.queuedAt, this.#labels)
      this.#recheck?.schedule(entry.key, entry.recheckGeneration)
      const id = keyString(entry.key)
      this.#unreplayed.delete(id)
      this.#recentlyApplied.delete(id) // re-inserted last: the map stays in time order
      this.#recentlyApplied.set(id, now)
    }
    for (const [id, appliedAt] of this.#recentlyApplied) {
      if (now - appliedAt < SETTLE_MS) break
      this.#recentlyApplied.delete(id)
    }
  }

  #deadLetter(entry: PendingKey, reasonCode: string, reason: string, fields: readonly string[], attempts: number): void {
    this.#metrics.increment('mirror.dead_lettered', { ...this.#labels, reason: reasonCode })
    this.#markUnreplayed(keyString(entry.key))
    if (!entry.deadLetterOnFailure) return
    this.#deadLetters.add({
      migration: this.migration,
      direction: this.direction,
      key: keyString(entry.key),
      keyValue: entry.key,
      op: entry.op,
      reasonCode,
      reason,
      fields,
      payload: entry.postImage,
      ...(this.#options.compare?.sensitive ? { sensitive: this.#options.compare.sensitive } : {}),
      attempts,
    })
  }

  #markUnreplayed(id: string): void {
    if (this.#unreplayed.size < (this.#options.deadLetterBuffer ?? 100_000)) {
      this.#unreplayed.add(id)
      return
    }
    if (!this.#unreplayedOverflow) this.#logger.warn('too many dead-lettered keys to track; reads stay on the authoritative side until a replay', { ...this.#labels })
    this.#unreplayedOverflow = true
  }

  /**
   * Called by a replay that left no dead letter open: keys the queue lost track of (past its bound)
   * are no longer assumed stale.
   */
  forgetUnreplayed(): void {
    if (this.#unreplayed.size === 0) this.#unreplayedOverflow = false
  }

  #isIdle(): boolean {
    return this.#pending.size === 0 && this.#inFlight.size === 0 && this.#dirtyWhileInFlight.size === 0 && this.#activeBatches === 0
  }

  #notifyIdle(): void {
    const waiters = this.#idleWaiters
    this.#idleWaiters = []
    for (const resolve of waiters) resolve()
  }
}
