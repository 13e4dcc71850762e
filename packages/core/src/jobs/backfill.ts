import { createHash } from 'node:crypto'
import type { Kysely } from 'kysely'
import { AuditLog } from '../control/audit-log.js'
import { BatchSizer, type BatchSizing } from './batch-sizer.js'
import { canonicalRecordText, canonicalText, canonicalize } from '../model/canonical.js'
import { addCounts, type BackfillCounts, BackfillConfigChangedError, type Checkpoint, CheckpointTable } from '../control/checkpoint.js'
import { compareRecords, type ComparisonRules } from '../model/compare.js'
import { MapperError } from '../model/errors.js'
import { JobControl } from '../control/job-control.js'
import { type Logger, silentLogger } from '../observe/logger.js'
import type { Migration } from '../model/migration.js'
import { type QuarantinedRecord, QuarantineTable } from '../control/quarantine.js'
import { projectOnto, textDigest } from './row-digest.js'
import { type KeyValue, keyString, type Row, type WriteMode } from '../model/store.js'
import { Throttle, type ThrottleReason, type ThrottleSettings } from './throttle.js'

/**
 * A slice of the old store's key space, bounded by real keys (never computed ones, so any key type
 * and collation works). Ranges let several workers share one backfill (backfill-jobs.ts).
 */
export interface KeyRange {
  /** Names the range's checkpoint. */
  readonly id: string
  /** Exclusive lower bound; absent: from the first key. */
  readonly after?: KeyValue
  /** Inclusive upper bound; absent: to the last key. */
  readonly until?: KeyValue
  /**
   * The bounds of the ranges after this one. The range ends when it reaches `until`; if `until` was
   * deleted meanwhile, reaching any of these tells it that it went past its end. (Overlap with the
   * next range is harmless: writes are insert-if-absent.)
   */
  readonly beyond?: readonly KeyValue[]
}

export interface BackfillOptions {
  readonly migration: Migration<any, any>
  /** PostgreSQL with the `cutover` schema (`ensureSchema`): checkpoints, quarantine, audit, control. */
  readonly control: Kysely<any>
  readonly range?: KeyRange
  readonly batch?: BatchSizing
  readonly throttle?: ThrottleSettings
  /** Inline verification of each batch; `false` turns it off. */
  readonly verify?: { readonly retries?: number; readonly delayMs?: number } | false
  /** Discard an existing checkpoint (also one written with another configuration) and begin again. */
  readonly restart?: boolean
  /** Part of the configuration fingerprint: bump it when the mapper's code changes. */
  readonly configVersion?: string
  readonly actor?: string
  readonly logger?: Logger
  readonly onProgress?: (progress: BackfillProgress) => void
  /** Stops after the batch in flight (its checkpoint is saved). */
  readonly signal?: AbortSignal
}

/** Reported after every batch. */
export interface BackfillProgress {
  readonly migration: string
  readonly rangeId: string
  /** Totals of the range, including work of earlier runs. */
  readonly counts: BackfillCounts
  /** Rows read by this run, and its rate. */
  readonly runRead: number
  readonly rowsPerSecond: number
  readonly elapsedMs: number
  readonly batchSize: number
  readonly lastKey: string | undefined
  /** Why the last batch waited, if it did. */
  readonly throttled: readonly ThrottleReason[]
}

/** A key whose copy in the new store still differed from the source after the retries. */
export interface BatchMismatch {
  readonly key: string
  readonly kind: 'MISSING_IN_NEW' | 'MISSING_IN_OLD' | 'DIFFERENT'
  readonly fields: readonly string[]
}

export interface BackfillSummary {
  readonly migration: string
  readonly rangeId: string
  /** `already-done`: the checkpoint said so and nothing was read. */
  readonly status: 'done' | 'already-done' | 'aborted'
  /** The key this run resumed after, if it resumed. */
  readonly resumedAfter: string | undefined
  readonly counts: BackfillCounts
  /** Open quarantine entries of the migration, by `REASON_CODE: reason`. */
  readonly quarantinedByReason: Readonly<Record<string, number>>
  /** The first 1,000 mismatches of this run. */
  readonly mismatches: readonly BatchMismatch[]
  /** Milliseconds waited, by throttle source. */
  readonly throttledMs: Readonly<Record<ThrottleReason['source'], number>>
  readonly batches: number
  readonly elapsedMs: number
  readonly rowsPerSecond: number
}

const MAX_REPORTED_MISMATCHES = 1_000
const WRITE_ATTEMPTS = 3

/**
 * Copies the old store's history into the new store (DESIGN property 4).
 *
 * - Walks the old store in key order, in batches sized by `BatchSizer`; holds at most three (one
 *   read ahead, two being written or verified), never the table.
 * - Writes `insert-if-absent`, or `version-guard` when the migration declares a new-side version
 *   field, so whatever the mirror wrote is never replaced by an older copy. Re-running is harmless.
 * - After each batch, in one control-database transaction: that batch's quarantined records and
 *   the checkpoint. A crash before the commit re-runs the batch (idempotent); after it, resumes
 *   after it. The checkpoint's configuration fingerprint must match, unless `restart`.
 * - Records the mapper rejects, or the new store refuses one by one (a unique constraint the old
 *   data breaks), are quarantined with the reason and the raw record; the run goes on.
 * - Each batch is read back and compared with the mapped source by row checksums; keys that differ
 *   are re-read on both sides after a delay (the mirror may be mid-write) and reported if they still
 *   differ. The backfill never repairs them itself: overwriting could undo a newer mirrored write.
 *   `reconcile` does, from the authoritative side.
 */
export async function backfill(options: BackfillOptions): Promise<BackfillSummary> {
  const { migration, control } = options
  const logger = options.logger ?? silentLogger
  const rangeId = options.range?.id ?? 'all'
  const actor = options.actor ?? 'cutover:backfill'
  const checkpoints = new CheckpointTable(control)
  const quarantine = new QuarantineTable(control)
  const audit = new AuditLog(control)
  const fingerprint = backfillFingerprint(options)
  const started = performance.now()

  let checkpoint: Checkpoint | undefined = await checkpoints.load(migration.name, rangeId)
  if (checkpoint && checkpoint.fingerprint !== fingerprint && !options.restart) {
    throw new BackfillConfigChangedError(migration.name, rangeId, checkpoint.fingerprint, fingerprint)
  }
  if (checkpoint?.status === 'done' && !options.restart) {
    return summary('already-done', checkpoint.counts, [], emptyThrottled(), 0, 0, undefined)
  }
  const sizer = new BatchSizer(options.batch, options.restart ? undefined : checkpoint?.batchSize)
  if (!checkpoint || options.restart) checkpoint = await checkpoints.begin(migration.name, rangeId, fingerprint, sizer.size)
  const resumedAfter = checkpoint.lastKey === undefined ? undefined : keyString(checkpoint.lastKey)
  let lastKey: KeyValue | undefined = checkpoint.lastKey ?? options.range?.after
  let counts = checkpoint.counts
  await audit.append({ actor, migration: migration.name, action: 'backfill', details: { event: 'started', rangeId, resumedAfter: resumedAfter ?? null, fingerprint } })
  logger.info('backfill started', { migration: migration.name, rangeId, resumedAfter })

  const throttle = new Throttle(options.throttle ?? {}, new JobControl(control), migration.name)
  const mode: WriteMode = migration.version?.new ? { kind: 'version-guard', field: migration.version.new } : { kind: 'insert-if-absent' }
  const mismatches: BatchMismatch[] = []
  const throttledMs = emptyThrottled()
  let runRead = 0
  let batches = 0
  let checksum = 0n
  let status: BackfillSummary['status'] = 'done'
  let savedDone = false

  // Read-ahead: the next batch is scanned while this one is mapped, written and verified, so the
  // old store's read time hides behind the new store's write time.
  let readAhead: { after: KeyValue | undefined; limit: number; rows: Promise<readonly Row[]> } | undefined
  const scan = (after: KeyValue | undefined, limit: number) => {
    const rows = migration.old.scan({ ...(after === undefined ? {} : { after }), limit })
    rows.catch(() => undefined) // awaited later; a failure surfaces there
    return { after, limit, rows }
  }
  let lastThrottled: ThrottleReason[] = []
  /** Verifies a written batch, then commits its quarantine and checkpoint, audits, reports. */
  const settle = async (read: number, written: WrittenBatch, batchKey: KeyValue, finished: boolean, waited: ThrottleReason[], writeMs: number) => {
    const verifyStarted = performance.now()
    const verification =
      options.verify === false ? { mismatches: [], checksum: 0n } : await verifyBatch(migration, written.expected, options.verify ?? {})
    const latencyMs = writeMs + (performance.now() - verifyStarted)
    counts = addCounts(counts, {
      read,
      written: written.written,
      skipped: written.skipped,
      quarantined: written.quarantined.length,
      mismatched: verification.mismatches.length,
    })
    await control.transaction().execute(async (trx) => {
      await quarantine.write(trx, written.quarantined)
      await checkpoints.save(trx, { migration: migration.name, rangeId, lastKey: batchKey, counts, batchSize: sizer.size, status: finished ? 'done' : 'running' })
    })
    savedDone = finished
    if (written.quarantined.length > 0) {
      await audit.append({
        actor,
        migration: migration.name,
        action: 'quarantine',
        details: { rangeId, count: written.quarantined.length, keys: written.quarantined.slice(0, 100).map((q) => q.key), reasons: countReasons(written.quarantined) },
      })
    }
    for (const mismatch of verification.mismatches) if (mismatches.length < MAX_REPORTED_MISMATCHES) mismatches.push(mismatch)
    if (verification.mismatches.length > 0) logger.warn('backfilled records differ from the source after retries', { migration: migration.name, keys: verification.mismatches.slice(0, 20) })
    checksum = (checksum + verification.checksum) & 0xffff_ffff_ffff_ffffn
    runRead += read
    batches++
    sizer.observe(latencyMs)
    for (const reason of waited) throttledMs[reason.source] += reason.waitedMs
    // What the previous batch slept afterwards (this one's sleep is still going on).
    const throttled = [...waited, ...lastThrottled]
    const elapsedMs = performance.now() - started
    options.onProgress?.({
      migration: migration.name,
      rangeId,
      counts,
      runRead,
      rowsPerSecond: runRead / (elapsedMs / 1_000),
      elapsedMs,
      batchSize: sizer.size,
      lastKey: keyString(batchKey),
      throttled,
    })
    return { rows: read, latencyMs }
  }

  // A two-deep pipeline: batch N+1 is mapped and its write begun before batch N is verified and
  // checkpointed, so the two overlap (and N+2 is read ahead meanwhile). Each checkpoint waits for
  // the one before it and for its own batch's write, so a checkpoint always means every batch up to
  // it is written; a crash only means the batches after the last checkpoint are written again, which
  // changes nothing. A nice ratio asks for idle time after each batch, which a batch written
  // meanwhile would fill: then one batch at a time.
  const inFlight = options.throttle?.niceRatio ? 1 : 2
  const unsettled: Promise<{ rows: number; latencyMs: number }>[] = []
  /** Waits for the oldest batch in flight to be checkpointed, then applies the throttle after it. */
  const settleOldest = async () => {
    const settled = await (unsettled.shift() as Promise<{ rows: number; latencyMs: number }>)
    lastThrottled = await throttle.afterBatch(settled.rows, settled.latencyMs, options.signal).catch((error: unknown) => {
      if (options.signal?.aborted) return []
      throw error
    })
    for (const reason of lastThrottled) throttledMs[reason.source] += reason.waitedMs
  }
  try {
    for (;;) {
      if (options.signal?.aborted) {
        status = 'aborted'
        break
      }
      let waited: ThrottleReason[]
      try {
        waited = await throttle.beforeBatch(options.signal)
      } catch (error) {
        if (options.signal?.aborted) {
          status = 'aborted'
          break
        }
        throw error
      }
      // A batch read before a pause or a hold is stale by now: read it again.
      if (waited.length > 0 || readAhead?.after !== lastKey) readAhead = undefined
      const batchStarted = performance.now()
      const current = readAhead ?? scan(lastKey, sizer.size)
      readAhead = undefined
      const scanned = await current.rows
      const { rows, reachedEnd } = clipToRange(scanned, migration.key.old, options.range)
      if (rows.length === 0) break
      const finished = reachedEnd || scanned.length < current.limit
      if (!finished) readAhead = scan(scanned.at(-1)?.[migration.key.old] as KeyValue, sizer.size)

      const batchKey = rows.at(-1)?.[migration.key.old] as KeyValue
      lastKey = batchKey
      const writing = writeBatch(options, rows, mode).then((written) => ({ written, writeMs: performance.now() - batchStarted }))
      writing.catch(() => undefined) // awaited by this batch's settle
      const previous = unsettled.at(-1) // the batch before this one, unless already checkpointed
      const settling = (async () => {
        const { written, writeMs } = await writing
        await previous
        return settle(rows.length, written, batchKey, finished, waited, writeMs)
      })()
      settling.catch(() => undefined) // awaited through `unsettled`
      unsettled.push(settling)
      if (unsettled.length >= inFlight) await settleOldest()
      if (finished) break
    }
  } catch (error) {
    // No write left running behind the throw.
    await Promise.allSettled(unsettled.splice(0))
    throw error
  }
  for (const batch of unsettled.splice(0)) await batch

  if (status === 'done' && !savedDone) {
    // The last batch was full and the next scan found nothing (or there was nothing to read).
    await checkpoints.save(control, { migration: migration.name, rangeId, lastKey, counts, batchSize: sizer.size, status: 'done' })
  }
  const elapsedMs = performance.now() - started
  await audit.append({
    actor,
    migration: migration.name,
    action: 'backfill',
    details: { event: status === 'done' ? 'finished' : 'aborted', rangeId, counts, runRead, batches, checksum: checksum.toString(16), mismatched: mismatches.length },
  })
  logger.info('backfill ended', { migration: migration.name, rangeId, status, counts })
  return summary(status, counts, mismatches, throttledMs, batches, elapsedMs, runRead)

  async function summary(
    s: BackfillSummary['status'],
    c: BackfillCounts,
    m: BatchMismatch[],
    t: Record<ThrottleReason['source'], number>,
    b: number,
    ms: number,
    read: number | undefined,
  ): Promise<BackfillSummary> {
    return {
      migration: migration.name,
      rangeId,
      status: s,
      resumedAfter: s === 'already-done' ? undefined : resumedAfter,
      counts: c,
      quarantinedByReason: await quarantine.countByReason(migration.name),
      mismatches: m,
      throttledMs: t,
      batches: b,
      elapsedMs: ms,
      rowsPerSecond: read && ms > 0 ? read / (ms / 1_000) : 0,
    }
  }
}

/**
 * What makes two runs the same backfill: the stores, keys, write mode, range, declarative field map
 * and comparison rules, and the user's `configVersion`. Batch sizes and throttles may change
 * between runs; a mapper's code cannot be hashed, hence `configVersion`.
 */
export function backfillFingerprint(options: Pick<BackfillOptions, 'migration' | 'range' | 'configVersion'>): string {
  const { migration } = options
  const fieldMap = migration.mapper.fieldMap?.forwardSql((field: string) => `"${field}"`)
  const description = {
    migration: migration.name,
    old: migration.old.name,
    new: migration.new.name,
    key: migration.key,
    version: migration.version?.new ?? null,
    range: options.range
      ? { id: options.range.id, after: keyOrNull(options.range.after), until: keyOrNull(options.range.until) }
      : null,
    fieldMap: fieldMap ?? null,
    compare: migration.compare ?? null,
    configVersion: options.configVersion ?? null,
  }
  return createHash('sha256').update(canonicalText(canonicalize(description)), 'utf8').digest('hex')
}

function keyOrNull(key: KeyValue | undefined): string | null {
  return key === undefined ? null : `${typeof key}:${keyString(key)}`
}

/** Cuts a scanned batch at the range's end. */
function clipToRange(rows: readonly Row[], keyField: string, range: KeyRange | undefined): { rows: readonly Row[]; reachedEnd: boolean } {
  if (!range || (range.until === undefined && !range.beyond?.length)) return { rows, reachedEnd: false }
  const until = range.until === undefined ? undefined : keyString(range.until)
  const beyond = new Set((range.beyond ?? []).map(keyString))
  for (let i = 0; i < rows.length; i++) {
    const key = keyString(rows[i]?.[keyField] as KeyValue)
    if (key === until) return { rows: rows.slice(0, i + 1), reachedEnd: true }
    if (beyond.has(key)) return { rows: rows.slice(0, i), reachedEnd: true }
  }
  return { rows, reachedEnd: false }
}

interface WrittenBatch {
  readonly written: number
  readonly skipped: number
  readonly quarantined: readonly QuarantinedRecord[]
  /** The mapped records that were written (or found present), by key: what verification expects. */
  readonly expected: ReadonlyMap<string, Row>
}

async function writeBatch(options: BackfillOptions, rows: readonly Row[], mode: WriteMode): Promise<WrittenBatch> {
  const { migration } = options
  const quarantined: QuarantinedRecord[] = []
  const mapped = new Map<string, { source: Row; record: Row }>()
  for (const row of rows) {
    const key = keyString(row[migration.key.old] as KeyValue)
    try {
      mapped.set(key, { source: row, record: migration.mapper.forward(row, { key, migration: migration.name }) })
    } catch (error) {
      if (!(error instanceof MapperError)) throw error
      quarantined.push(quarantineEntry(migration, key, row, 'MAPPER_REJECTED', mapperReason(error), error.fields))
    }
  }

  // Stores split writes that are too large for one statement themselves (KyselyTableStore does).
  const write = await writeIsolating(migration, [...mapped.values()].map((m) => m.record), mode)
  for (const { record, error } of write.refused) {
    const key = keyString(record[migration.key.new] as KeyValue)
    const source = mapped.get(key)?.source ?? record
    mapped.delete(key)
    quarantined.push(quarantineEntry(migration, key, source, 'STORE_REJECTED', storeReason(error), []))
  }
  return { written: write.written, skipped: write.skipped, quarantined, expected: new Map([...mapped].map(([key, m]) => [key, m.record])) }
}

function quarantineEntry(migration: Migration, key: string, payload: Row, reasonCode: string, reason: string, fields: readonly string[]): QuarantinedRecord {
  const sensitive = migration.compare?.sensitive
  return { migration: migration.name, key, reasonCode, reason, fields, payload, ...(sensitive ? { sensitive } : {}) }
}

/** The mapper's issues without the record key, so equal problems group under one reason. */
function mapperReason(error: MapperError): string {
  return `${error.stage}: ${error.issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message)).join('; ')}`
}

function storeReason(error: unknown): string {
  const cause = (error as { cause?: { code?: string; constraint?: string; detail?: string } }).cause
  if (cause?.code === '23505') return `unique constraint ${cause.constraint ?? ''} violated`.replace('  ', ' ')
  if (cause?.code) return `PostgreSQL error ${cause.code}${cause.constraint ? ` on ${cause.constraint}` : ''}`
  return error instanceof Error ? error.message.replace(/\(.*?\)=\(.*?\)/g, '(…)') : String(error)
}

function countReasons(records: readonly QuarantinedRecord[]): Record<string, number> {
  const counts: Record<string, number> = {}
  for (const r of records) counts[`${r.reasonCode}: ${r.reason}`] = (counts[`${r.reasonCode}: ${r.reason}`] ?? 0) + 1
  return counts
}

/**
 * Writes a batch; when the store refuses it, retries (transient failures), then halves it until the
 * records it refuses are alone, so one bad record costs a few extra statements, not the batch. If
 * nothing at all could be written, the store itself is failing: that is thrown, not quarantined.
 */
async function writeIsolating(
  migration: Migration<any, any>,
  records: readonly Row[],
  mode: WriteMode,
): Promise<{ written: number; skipped: number; refused: { record: Row; error: unknown }[] }> {
  if (records.length === 0) return { written: 0, skipped: 0, refused: [] }
  let lastError: unknown
  for (let attempt = 1; attempt <= WRITE_ATTEMPTS; attempt++) {
    try {
      const result = await migration.new.upsert(records, mode)
      return { ...result, refused: [] }
    } catch (error) {
      lastError = error
      if (attempt < WRITE_ATTEMPTS) await sleep(50 * 2 ** attempt)
    }
  }
  const outcome = { written: 0, skipped: 0, refused: [] as { record: Row; error: unknown }[] }
  let anyWritten = false
  const bisect = async (slice: readonly Row[]): Promise<void> => {
    try {
      const result = await migration.new.upsert(slice, mode)
      outcome.written += result.written
      outcome.skipped += result.skipped
      anyWritten = true
    } catch (error) {
      if (slice.length === 1) outcome.refused.push({ record: slice[0] as Row, error })
      else {
        const middle = Math.ceil(slice.length / 2)
        await bisect(slice.slice(0, middle))
        await bisect(slice.slice(middle))
      }
    }
  }
  if (records.length > 1) {
    const middle = Math.ceil(records.length / 2)
    await bisect(records.slice(0, middle))
    await bisect(records.slice(middle))
  } else {
    outcome.refused.push({ record: records[0] as Row, error: lastError })
  }
  // Nothing written and not every refusal is about its record: the store is failing, not the data.
  if (!anyWritten && !outcome.refused.every((r) => isRecordError(r.error))) throw lastError
  return outcome
}

/** A failure that is about the record (constraint, type), not the store being unreachable. */
function isRecordError(error: unknown): boolean {
  const code = (error as { cause?: { code?: string } }).cause?.code
  return typeof code === 'string' && /^(22|23)/.test(code)
}

/**
 * Compares the batch read back from the new store with the mapped source: by row checksum first,
 * by fields for keys that differ, after re-reading both sides (the mirror may have moved either).
 */
async function verifyBatch(
  migration: Migration<any, any>,
  expected: ReadonlyMap<string, Row>,
  settings: { readonly retries?: number; readonly delayMs?: number },
): Promise<{ mismatches: BatchMismatch[]; checksum: bigint }> {
  const rules: ComparisonRules = migration.compare ?? {}
  const keys = [...expected.keys()]
  if (keys.length === 0) return { mismatches: [], checksum: 0n }
  const actual = await migration.new.get(keys.map((k) => expectedKey(expected, k, migration.key.new)))
  // Equal canonical texts hash equal, so a copy is compared by its text, and only the source's text
  // is hashed (for the run's checksum).
  let sourceSum = 0n
  const differing: string[] = []
  for (const key of keys) {
    const record = expected.get(key) as Row
    const text = canonicalRecordText(record, rules)
    sourceSum += textDigest(text)
    const copy = actual.get(key)
    if (copy === undefined || !(sameValues(record, copy) || canonicalRecordText(projectOnto(copy, Object.keys(record)), rules) === text)) differing.push(key)
  }
  if (differing.length === 0) return { mismatches: [], checksum: sourceSum }
  let pending = differing.filter((key) => {
    const copied = actual.get(key)
    const record = expected.get(key) as Row
    // Tolerances are not in the text: the field comparison has the last word.
    return !(copied && compareRecords(record, projectOnto(copied, Object.keys(record)), rules).equal)
  })
  if (pending.length === 0) return { mismatches: [], checksum: sourceSum }

  const retries = settings.retries ?? 3
  const delayMs = settings.delayMs ?? 200
  let mismatches: BatchMismatch[] = []
  for (let attempt = 0; attempt <= retries && pending.length > 0; attempt++) {
    if (attempt > 0) await sleep(delayMs * attempt)
    const lookup = pending.map((k) => expectedKey(expected, k, migration.key.new))
    const [oldRows, newRows] = await Promise.all([migration.old.get(lookup), migration.new.get(lookup)])
    mismatches = []
    for (const key of pending) {
      const oldRow = oldRows.get(key)
      const newRow = newRows.get(key)
      if (!oldRow && !newRow) continue
      if (!oldRow) {
        mismatches.push({ key, kind: 'MISSING_IN_OLD', fields: [] })
        continue
      }
      let mappedNow: Row
      try {
        mappedNow = migration.mapper.forward(oldRow, { key, migration: migration.name })
      } catch (error) {
        // Changed since the scan into something the mapper rejects: verification will report it.
        mismatches.push({ key, kind: 'DIFFERENT', fields: error instanceof MapperError ? error.fields : [] })
        continue
      }
      if (!newRow) {
        mismatches.push({ key, kind: 'MISSING_IN_NEW', fields: [] })
        continue
      }
      const comparison = compareRecords(mappedNow, projectOnto(newRow, Object.keys(mappedNow)), rules)
      if (!comparison.equal) mismatches.push({ key, kind: 'DIFFERENT', fields: comparison.differences.map((d) => d.path) })
    }
    pending = mismatches.map((m) => m.key)
  }
  return { mismatches, checksum: sourceSum }
}

/**
 * Whether every field of `expected` holds the identical value in `actual` (Dates: the same
 * instant): then their canonical texts are equal under any rules, and building the copy's text
 * can be skipped. Anything else (a number read back as a numeric string, bytes) is left to the text.
 */
function sameValues(expected: Row, actual: Row): boolean {
  for (const field in expected) {
    const a = expected[field]
    const b = actual[field]
    if (a === b) continue
    if (a instanceof Date && b instanceof Date && a.getTime() === b.getTime()) continue
    return false
  }
  return true
}

/** The key value to look a record up by (the mapped record's own key, keeping its type). */
function expectedKey(expected: ReadonlyMap<string, Row>, key: string, keyField: string): KeyValue {
  return (expected.get(key)?.[keyField] as KeyValue | undefined) ?? key
}

function emptyThrottled(): Record<ThrottleReason['source'], number> {
  return { paused: 0, query: 0, 'rate-limit': 0, nice: 0 }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

