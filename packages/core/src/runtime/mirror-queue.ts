import { compareRecords, type ComparisonRules } from '../model/compare.js'
import type { DeadLetter, DeadLetterSink } from '../control/dead-letters.js'
import { CutoverError, MapperError, StoreError } from '../model/errors.js'
import { type Logger, silentLogger } from '../observe/logger.js'
import { Metrics } from '../observe/metrics.js'
import { type KeyValue, keyString, type Row, type Store, type WriteMode } from '../model/store.js'

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

/** What became of one key. */
export type ApplyOutcome =
  | { readonly key: string; readonly status: 'applied' }
  | { readonly key: string; readonly status: 'dead-lettered'; readonly reasonCode: string; readonly reason: string }

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

interface PendingKey {
  key: KeyValue
  op: 'upsert' | 'delete'
  postImage: Row | undefined
  /** Whether `postImage` may be applied as it is (see `ChangeEvent.postImageExact`). */
  exact: boolean
  /** How many rechecks led here, to stop a key that never converges from looping. */
  recheckGeneration: number
  waiters: Array<(outcome: ApplyOutcome) => void>
  /** False when the caller keeps its own record of failures (a replay updates the existing dead letter). */
  deadLetterOnFailure: boolean
  /** When the oldest unapplied change of this key was queued (`performance.now()`). */
  queuedAt: number
}

const DEFAULT_RETRY: RetryPolicy = { attempts: 5, baseDelayMs: 50, maxDelayMs: 2_000 }
const MAX_RECHECK_GENERATIONS = 3
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
 *   with the reason; mapper rejections are dead-lettered at once (a retry cannot fix them).
 */
export class MirrorQueue {
  readonly migration: string
  readonly direction: MirrorDirection
  readonly #options: MirrorQueueOptions
  readonly #retry: RetryPolicy
  readonly #metrics: Metrics
  readonly #logger: Logger
  readonly #labels: Readonly<Record<string, string>>

  readonly #pending = new Map<string, PendingKey>()
  readonly #inFlight = new Set<string>()
  readonly #dirtyWhileInFlight = new Map<string, PendingKey>()
  #activeBatches = 0
  #lingerTimer: NodeJS.Timeout | undefined

  readonly #recheck = new Map<string, { key: KeyValue; generation: number }>()
  #recheckTimer: NodeJS.Timeout | undefined
  #recheckRunning: Promise<void> | undefined

  #deadLetterBuffer: DeadLetter[] = []
  #deadLetterFlush: Promise<void> | undefined
  #deadLetterRetryTimer: NodeJS.Timeout | undefined

  /** Keys applied lately, by when (`performance.now()`), oldest first: see `isSettling`. */
  readonly #recentlyApplied = new Map<string, number>()

  #idleWaiters: Array<() => void> = []
  #closed = false

  constructor(options: MirrorQueueOptions) {
    this.#options = options
    this.migration = options.migration
    this.direction = options.direction
    this.#retry = { ...DEFAULT_RETRY, ...options.retry }
    this.#metrics = options.metrics ?? new Metrics()
    this.#logger = options.logger ?? silentLogger
    this.#labels = { migration: options.migration, direction: options.direction }
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
    if (this.#pending.has(id) || this.#inFlight.has(id) || this.#dirtyWhileInFlight.has(id)) return true
    const appliedAt = this.#recentlyApplied.get(id)
    return appliedAt !== undefined && appliedAt >= Math.max(since ?? -Infinity, performance.now() - SETTLE_MS)
  }

  /**
   * Whether a change this queue was handed has not reached the target yet: for `key`, a change of
   * that key is queued or being applied; without a key, any change is. Reads that want their own
   * writes (ramp) ask this before they read the target.
   */
  hasUnapplied(key?: KeyValue): boolean {
    if (key === undefined) return this.depth > 0
    const id = keyString(key)
    return this.#pending.has(id) || this.#inFlight.has(id) || this.#dirtyWhileInFlight.has(id)
  }

  /** Resolves when nothing is waiting, in flight, due for a re-check or unflushed to the dead-letter table. */
  async drain(): Promise<void> {
    for (;;) {
      if (this.#recheck.size > 0) await this.#runRecheck()
      if (this.#deadLetterBuffer.length > 0 || this.#deadLetterFlush) await this.#flushDeadLetters()
      if (this.#isIdle()) {
        if (this.#recheck.size === 0 && this.#deadLetterBuffer.length === 0 && !this.#recheckRunning) return
        continue
      }
      await new Promise<void>((resolve) => this.#idleWaiters.push(resolve))
    }
  }

  /** Drains, then refuses new events. */
  async close(): Promise<void> {
    await this.drain()
    this.#closed = true
    if (this.#recheckTimer) clearTimeout(this.#recheckTimer)
    if (this.#deadLetterRetryTimer) clearTimeout(this.#deadLetterRetryTimer)
  }

  #add(
    event: ChangeEvent,
    recheckGeneration: number,
    waiter: ((outcome: ApplyOutcome) => void) | undefined,
    deadLetterOnFailure: boolean,
  ): boolean {
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
      this.#pump()
    }, linger)
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
      void this.#runBatch(batch).finally(() => {
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
        if (this.#isIdle()) this.#notifyIdle()
      })
    }
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
          const reason = describe(error)
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
    const { source, target, translate } = this.#options
    const started = performance.now()
    const versioned = this.#options.versionField !== undefined
    // A post-image stands for the source's state when it is exact, or when the version guard keeps
    // an older one from overwriting a newer one; every other key is read back.
    const imageOf = (entry: PendingKey): Row | undefined =>
      entry.op === 'upsert' && (entry.exact || versioned) ? entry.postImage : undefined

    const toRead = batch.filter((entry) => imageOf(entry) === undefined)
    const current = toRead.length > 0 ? await source.get(toRead.map((entry) => entry.key)) : new Map<string, Row>()

    const upserts: Row[] = []
    const deletes: KeyValue[] = []
    const applied: PendingKey[] = []
    for (const entry of batch) {
      const id = keyString(entry.key)
      const state = imageOf(entry) ?? current.get(id)
      const targetKey = this.#options.targetKey ? this.#options.targetKey(entry.key) : entry.key
      if (state === undefined) {
        deletes.push(targetKey)
        applied.push(entry)
        continue
      }
      try {
        const record = translate(state, id)
        upserts.push(record)
        applied.push(entry)
      } catch (error) {
        const reasonCode = error instanceof CutoverError ? error.code : 'MAPPER_REJECTED'
        const fields = error instanceof MapperError ? error.fields : []
        this.#deadLetter({ ...entry, postImage: state }, reasonCode, describe(error), fields, 1)
        rejected.set(id, { key: id, status: 'dead-lettered', reasonCode, reason: describe(error) })
      }
    }

    const mode: WriteMode = this.#options.versionField ? { kind: 'version-guard', field: this.#options.versionField } : { kind: 'overwrite' }
    if (upserts.length > 0) await target.upsert(upserts, mode)
    if (deletes.length > 0) await target.delete(deletes)

    const elapsed = performance.now() - started
    this.#metrics.observe('mirror.apply_ms', elapsed, { ...this.#labels, side: this.direction === 'old-to-new' ? 'new' : 'old' })
    this.#metrics.increment('mirror.applied', this.#labels, applied.length)
    const now = performance.now()
    for (const entry of applied) {
      // Lag from the commit being queued to its state being in the other store: the window a crash
      // could lose, and what verification before cutover must cover.
      this.#metrics.observe('mirror.lag_ms', now - entry.queuedAt, this.#labels)
      this.#scheduleRecheck(entry.key, entry.recheckGeneration)
      const id = keyString(entry.key)
      this.#recentlyApplied.delete(id) // re-inserted last: the map stays in time order
      this.#recentlyApplied.set(id, now)
    }
    for (const [id, appliedAt] of this.#recentlyApplied) {
      if (now - appliedAt < SETTLE_MS) break
      this.#recentlyApplied.delete(id)
    }
  }

  #scheduleRecheck(key: KeyValue, generation: number): void {
    const id = keyString(key)
    const delay = this.#options.recheckDelayMs ?? 500
    if (delay === false || this.#options.versionField !== undefined) return
    if (generation >= MAX_RECHECK_GENERATIONS) {
      this.#metrics.increment('mirror.recheck_gave_up', this.#labels)
      this.#logger.warn('key still differs after repeated re-checks; leaving it to verification', { ...this.#labels, key: id })
      return
    }
    this.#recheck.set(id, { key, generation })
    if (!this.#recheckTimer && !this.#closed) {
      this.#recheckTimer = setTimeout(() => {
        this.#recheckTimer = undefined
        void this.#runRecheck()
      }, delay)
      this.#recheckTimer.unref?.()
    }
  }

  /** Re-reads recently applied keys on both sides and re-applies those that differ. */
  async #runRecheck(): Promise<void> {
    if (this.#recheckRunning) return this.#recheckRunning
    const due = new Map(this.#recheck)
    this.#recheck.clear()
    if (this.#recheckTimer) {
      clearTimeout(this.#recheckTimer)
      this.#recheckTimer = undefined
    }
    this.#recheckRunning = (async () => {
      const { source, target } = this.#options
      const ids = [...due.keys()]
      const readSize = Math.max(this.#options.batchSize ?? 100, RECHECK_READ_SIZE)
      for (let i = 0; i < ids.length; i += readSize) {
        const slice = ids.slice(i, i + readSize)
        try {
          const keys = slice.map((id) => (due.get(id) as { key: KeyValue }).key)
          const sourceRows = await source.get(keys)
          const targetKeys = keys.map((k) => (this.#options.targetKey ? this.#options.targetKey(k) : k))
          const targetRows = await target.get(targetKeys)
          slice.forEach((id, index) => {
            const sourceRow = sourceRows.get(id)
            const targetRow = targetRows.get(keyString(targetKeys[index] as KeyValue))
            if (this.#converged(sourceRow, targetRow, id)) return
            this.#metrics.increment('mirror.recheck_repaired', this.#labels)
            this.#add({ key: keys[index] as KeyValue, op: sourceRow ? 'upsert' : 'delete' }, (due.get(id)?.generation ?? 0) + 1, undefined, true)
          })
        } catch (error) {
          this.#logger.warn('mirror re-check failed; keys left to verification', { ...this.#labels, keys: slice.length, error: describe(error) })
        }
      }
    })().finally(() => {
      this.#recheckRunning = undefined
      if (this.#isIdle()) this.#notifyIdle()
    })
    return this.#recheckRunning
  }

  #converged(sourceRow: Row | undefined, targetRow: Row | undefined, id: string): boolean {
    if (!sourceRow || !targetRow) return !sourceRow && !targetRow
    let expected: Row
    try {
      expected = this.#options.translate(sourceRow, id)
    } catch {
      return true // the mapper rejects it: dead-lettered already, nothing to converge to
    }
    // Only the mapped fields count: the target may hold columns of its own (defaults, timestamps).
    const actual = Object.fromEntries(Object.keys(expected).map((field) => [field, targetRow[field]]))
    return compareRecords(expected, actual, this.#options.compare).equal
  }

  #deadLetter(entry: PendingKey, reasonCode: string, reason: string, fields: readonly string[], attempts: number): void {
    this.#metrics.increment('mirror.dead_lettered', { ...this.#labels, reason: reasonCode })
    if (!entry.deadLetterOnFailure) return
    const limit = this.#options.deadLetterBuffer ?? 100_000
    if (this.#deadLetterBuffer.length >= limit) {
      // The dead-letter table is unreachable and the buffer is full: this is the one place a change
      // can be lost, so it is counted and logged with its key for reconciliation to pick up.
      this.#metrics.increment('mirror.lost', this.#labels)
      this.#logger.error('dead-letter buffer full; change lost until reconciliation', { ...this.#labels, key: keyString(entry.key), reasonCode })
      return
    }
    this.#deadLetterBuffer.push({
      migration: this.migration,
      direction: this.direction,
      key: keyString(entry.key),
      op: entry.op,
      reasonCode,
      reason,
      fields,
      payload: entry.postImage,
      ...(this.#options.compare?.sensitive ? { sensitive: this.#options.compare.sensitive } : {}),
      attempts,
    })
    void this.#flushDeadLetters()
  }

  #flushDeadLetters(): Promise<void> {
    if (this.#deadLetterFlush) return this.#deadLetterFlush
    this.#deadLetterFlush = (async () => {
      let delay = this.#retry.baseDelayMs
      while (this.#deadLetterBuffer.length > 0) {
        const entries = this.#deadLetterBuffer.slice(0, 500)
        try {
          await this.#options.deadLetters.write(entries)
          this.#deadLetterBuffer.splice(0, entries.length)
          delay = this.#retry.baseDelayMs
        } catch (error) {
          this.#logger.warn('dead-letter table unreachable; holding entries in memory', { ...this.#labels, held: this.#deadLetterBuffer.length, error: describe(error) })
          await sleep(delay)
          delay = Math.min(this.#retry.maxDelayMs, delay * 2)
        }
      }
    })().finally(() => {
      this.#deadLetterFlush = undefined
      if (this.#isIdle()) this.#notifyIdle()
    })
    return this.#deadLetterFlush
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

function describe(error: unknown): string {
  if (error instanceof StoreError || error instanceof CutoverError) return error.message
  if (error instanceof Error) return `${error.name}: ${error.message}`
  return String(error)
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}
