import type { Kysely } from 'kysely'
import { AuditLog } from '../control/audit-log.js'
import { compareRecords } from '../model/compare.js'
import { MapperError } from '../model/errors.js'
import { type Logger, silentLogger } from '../observe/logger.js'
import type { Migration } from '../model/migration.js'
import { projectOnto, rowDigest } from './row-digest.js'
import { routingBucket } from '../model/routing.js'
import { type BuiltinRowHash, type NativeFamily, newStoreSegments, oldStoreSegments, type SegmentChecksum, type SegmentSource } from './segment-checksum.js'
import { type KeyValue, keyString, type Row, storeRecordKey } from '../model/store.js'
import type { Inconsistency, VerificationCounts, VerificationReport } from '../control/verification-report.js'
import { VerificationReports } from '../control/verification-report.js'
import { sleep } from '../runtime/background.js'

/**
 * Where a verification is: `checksums` and `bisect` count segments checksummed (both sides) of the
 * level's total, `rows` keys compared, `recheck` attempts, `sample` keys sampled (no total).
 */
export interface VerificationStage {
  readonly stage: 'checksums' | 'bisect' | 'rows' | 'recheck' | 'sample'
  readonly done: number
  readonly total: number | undefined
}

interface CommonOptions {
  readonly migration: Migration<any, any>
  /** When given, the report is stored in `cutover.verification_reports` and audited. */
  readonly control?: Kysely<any>
  /**
   * Keys that differ are read again after `delayMs` (the mirror may be mid-write) up to `attempts`
   * times while they keep changing; only what still differs is reported. Default 1,000 ms × 3.
   */
  readonly recheck?: { readonly delayMs?: number; readonly attempts?: number }
  /** Most inconsistencies kept in the report. Default 10,000. */
  readonly maxEntries?: number
  readonly actor?: string
  readonly logger?: Logger
  readonly onProgress?: (stage: VerificationStage) => void
}

export interface ExhaustiveVerificationOptions extends CommonOptions {
  /** Default: the old store streamed and mapped (`oldStoreSegments`). */
  readonly old?: SegmentSource
  /** Default: the new store streamed (`newStoreSegments`). */
  readonly new?: SegmentSource
  /** Segments at the first level: 2^bits. Default 10 (1,024). */
  readonly initialBits?: number
  /** Differing segments are split (8 more bits a level) until they hold at most this many rows. Default 2,000. */
  readonly leafRows?: number
}

/**
 * Proves the two stores equal, or lists exactly where they are not (after data-diff / pg_comparator):
 *
 * 1. Both sides checksum every segment — `(count, sum of row digests)` per range of row hashes — in
 *    one pass each, in parallel: inside PostgreSQL (`postgresSegments`) or streamed (`storeSegments`).
 * 2. Segments that differ are split into 256 sub-segments and checksummed again, until the rows they
 *    hold are few; their keys (from both sides) are then compared record by record, field by field.
 * 3. Differing keys are re-checked after a delay; keys the mirror was still moving settle.
 *
 * Segments are ranges of a hash of the whole canonical record (key included, see `rowHash`), not of
 * keys: no key arithmetic, no dependence on either store's key order or collation, so no phantom
 * differences at boundaries; and one hash per row.
 */
export async function verifyExhaustive(options: ExhaustiveVerificationOptions): Promise<VerificationReport> {
  const { migration } = options
  const startedAt = new Date()
  const logger = options.logger ?? silentLogger
  const [oldSide, newSide] = await chooseRowHash(options.old ?? oldStoreSegments(migration), options.new ?? newStoreSegments(migration), logger, migration.name)
  const leafRows = options.leafRows ?? 2_000
  let bits = options.initialBits ?? 10

  const [oldSums, newSums] = await bothSides('checksums', 2 ** bits, options, (side) => side.checksums({ bits }), oldSide, newSide)
  let differing = differingSegments(oldSums, newSums)
  const firstLevel = { segments: 2 ** bits, differing: differing.length }
  const totals = { old: sumOf(oldSums), new: sumOf(newSums) }
  logger.info('verification: first-level checksums compared', { migration: migration.name, segments: firstLevel.segments, differing: differing.length })

  let rowsInDiffering = rowsIn(differing, oldSums, newSums)
  while (differing.length > 0 && rowsInDiffering > leafRows && bits < 32) {
    const next = Math.min(32, bits + 8)
    const within = { bits, segments: differing }
    const [o, n] = await bothSides('bisect', differing.length * 2 ** (next - bits), options, (side) => side.checksums({ bits: next, within }), oldSide, newSide)
    differing = differingSegments(o, n)
    rowsInDiffering = rowsIn(differing, o, n)
    bits = next
  }

  const keys = new Map<string, KeyValue>()
  if (differing.length > 0) {
    const [oldKeys, newKeys] = await Promise.all([oldSide.keys({ bits, segments: differing }), newSide.keys({ bits, segments: differing })])
    for (const key of [...oldKeys, ...newKeys]) keys.set(keyString(key), key)
  }
  const found = await inspectWithRecheck(options, [...keys.values()])
  const report = buildReport(options, 'exhaustive', startedAt, found, {
    oldRecords: totals.old.count,
    newRecords: totals.new.count,
    segments: firstLevel.segments,
    differingSegments: firstLevel.differing,
    keysCompared: keys.size,
  }, { old: totals.old.sum.toString(16), new: totals.new.sum.toString(16) })
  return finish(options, report)
}

/**
 * Both sides switch to the cheaper built-in hash when both offer it and compute it identically on
 * known inputs (same byte order, encoding, build); otherwise both keep SHA-256. With it, the fields
 * both sides hold in one native family (same names on both sides) are rendered by their type's
 * output instead of canonical JSON. Either way equal records hash equal on both sides, so the
 * choice can never report equal data as different.
 */
async function chooseRowHash(oldSide: SegmentSource, newSide: SegmentSource, logger: Logger, migration: string): Promise<[SegmentSource, SegmentSource]> {
  const chosen = await builtinIfIdentical(oldSide, newSide)
  logger.info('verification: row hash chosen', {
    migration,
    rowHash: chosen ? 'hashtextextended' : (oldSide.rowHash ?? 'sha256'),
    nativeFields: chosen ? [...chosen.native.keys()].sort() : [],
  })
  return chosen?.sides ?? [oldSide, newSide]
}

async function builtinIfIdentical(
  oldSide: SegmentSource,
  newSide: SegmentSource,
): Promise<{ sides: [SegmentSource, SegmentSource]; native: ReadonlyMap<string, NativeFamily> } | undefined> {
  const [oldHash, newHash] = [oldSide.builtinHash, newSide.builtinHash]
  if (!oldHash || !newHash) return undefined
  // A side that cannot tell its fields' types still takes the built-in hash, on canonical text.
  const families = (hash: BuiltinRowHash) => hash.nativeFamilies?.().catch(() => undefined)
  const answers = await Promise.all([oldHash.probe(), newHash.probe(), families(oldHash), families(newHash)]).catch(() => undefined)
  if (!answers) return undefined
  const [oldProbe, newProbe, oldFamilies, newFamilies] = answers
  if (oldProbe !== newProbe || oldProbe === '') return undefined
  const native = sharedFamilies(oldFamilies, newFamilies)
  return { sides: [oldHash.source(native), newHash.source(native)], native }
}

/** The fields both sides render in the same native family (the hash seed tells differing field sets apart). */
function sharedFamilies(a: ReadonlyMap<string, NativeFamily> | undefined, b: ReadonlyMap<string, NativeFamily> | undefined): ReadonlyMap<string, NativeFamily> {
  const shared = new Map<string, NativeFamily>()
  if (!a || !b) return shared
  for (const [field, family] of a) if (b.get(field) === family) shared.set(field, family)
  return shared
}

/**
 * Checksums one level on both sides at once, reporting segments done of the level's total (each
 * side's pass is one query, so a side counts when it ends).
 */
async function bothSides(
  stage: 'checksums' | 'bisect',
  segments: number,
  options: CommonOptions,
  checksum: (side: SegmentSource) => Promise<ReadonlyMap<number, SegmentChecksum>>,
  oldSide: SegmentSource,
  newSide: SegmentSource,
): Promise<[ReadonlyMap<number, SegmentChecksum>, ReadonlyMap<number, SegmentChecksum>]> {
  let done = 0
  const total = 2 * segments
  options.onProgress?.({ stage, done, total })
  const side = async (source: SegmentSource) => {
    const sums = await checksum(source)
    done += segments
    options.onProgress?.({ stage, done, total })
    return sums
  }
  return Promise.all([side(oldSide), side(newSide)])
}

export interface SampledVerificationOptions extends CommonOptions {
  /** Keys whose `routingBucket` (0–9,999) is below this are compared: 100 = 1 %. Reproducible across runs. */
  readonly buckets: number
  readonly batchSize?: number
}

/**
 * Compares a reproducible sample field by field: the keys whose routing bucket is below `buckets`,
 * from both stores (so records missing on either side are found too).
 */
export async function verifySample(options: SampledVerificationOptions): Promise<VerificationReport> {
  const { migration } = options
  const startedAt = new Date()
  const batchSize = options.batchSize ?? 5_000
  const sampled = new Map<string, KeyValue>()
  let oldRecords = 0
  let newRecords = 0
  for (const [side, keyField] of [
    [migration.old, migration.key.old],
    [migration.new, migration.key.new],
  ] as const) {
    let after: KeyValue | undefined
    for (;;) {
      const rows = await side.scan({ ...(after === undefined ? {} : { after }), limit: batchSize })
      for (const row of rows) {
        const key = storeRecordKey(side, keyField, row)
        if (routingBucket(keyString(key)) >= options.buckets) continue
        if (side === migration.old) oldRecords++
        else newRecords++
        sampled.set(keyString(key), key)
      }
      options.onProgress?.({ stage: 'sample', done: sampled.size, total: undefined })
      if (rows.length < batchSize) break
      after = storeRecordKey(side, keyField, rows.at(-1))
    }
  }
  const found = await inspectWithRecheck(options, [...sampled.values()])
  const report = buildReport(options, 'sampled', startedAt, found, { oldRecords, newRecords, segments: 0, differingSegments: 0, keysCompared: sampled.size }, { old: '', new: '' })
  return finish(options, report)
}

/**
 * Compares the current copies of `keys` on both sides. Returns the inconsistencies and, per key,
 * a fingerprint of both copies (to tell a key still changing from one that is simply wrong).
 */
export async function inspectKeys(
  migration: Migration<any, any>,
  keys: readonly KeyValue[],
): Promise<{ inconsistencies: Inconsistency[]; states: Map<string, string> }> {
  const rules = migration.compare ?? {}
  const inconsistencies: Inconsistency[] = []
  const states = new Map<string, string>()
  for (let i = 0; i < keys.length; i += 500) {
    const chunk = keys.slice(i, i + 500)
    const [oldRows, newRows] = await Promise.all([migration.old.get(chunk), migration.new.get(chunk)])
    for (const key of chunk) {
      const id = keyString(key)
      const oldRow = oldRows.get(id)
      const newRow = newRows.get(id)
      states.set(id, `${oldRow ? rowDigest(oldRow) : '-'}/${newRow ? rowDigest(newRow) : '-'}`)
      const found = compareOne(migration, id, oldRow, newRow, rules)
      if (found) inconsistencies.push(found)
    }
  }
  return { inconsistencies, states }
}

function compareOne(migration: Migration<any, any>, id: string, oldRow: Row | undefined, newRow: Row | undefined, rules: NonNullable<Migration['compare']>): Inconsistency | undefined {
  if (!oldRow && !newRow) return undefined
  if (!oldRow) return { key: id, kind: 'MISSING_IN_OLD', differences: [] }
  let expected: Row
  try {
    expected = migration.mapper.forward(oldRow, { key: id, migration: migration.name })
  } catch (error) {
    if (!(error instanceof MapperError)) throw error
    const detail = `the mapper rejects the old record (${error.issues.map((i) => i.path || i.message).join(', ')}); see the quarantine`
    return newRow
      ? { key: id, kind: 'DIFFERENT', differences: error.fields.map((path) => ({ path, kind: 'changed' as const })), detail }
      : { key: id, kind: 'MISSING_IN_NEW', differences: [], detail }
  }
  if (!newRow) return { key: id, kind: 'MISSING_IN_NEW', differences: [] }
  const comparison = compareRecords(expected, projectOnto(newRow, Object.keys(expected)), rules)
  return comparison.equal ? undefined : { key: id, kind: 'DIFFERENT', differences: comparison.differences }
}

async function inspectWithRecheck(options: CommonOptions, keys: readonly KeyValue[]): Promise<{ inconsistencies: Inconsistency[]; settled: number }> {
  const { migration } = options
  const delayMs = options.recheck?.delayMs ?? 1_000
  const attempts = options.recheck?.attempts ?? 3
  options.onProgress?.({ stage: 'rows', done: 0, total: keys.length })
  let { inconsistencies, states } = await inspectKeys(migration, keys)
  options.onProgress?.({ stage: 'rows', done: keys.length, total: keys.length })
  let settled = 0
  const keyById = new Map(keys.map((key) => [keyString(key), key]))
  for (let attempt = 1; attempt <= attempts && inconsistencies.length > 0; attempt++) {
    await sleep(delayMs)
    options.onProgress?.({ stage: 'recheck', done: attempt, total: attempts })
    const byKey = new Map(inconsistencies.map((entry) => [entry.key, entry]))
    const again = await inspectKeys(migration, inconsistencies.map((entry) => keyById.get(entry.key) ?? entry.key))
    settled += inconsistencies.length - again.inconsistencies.length
    const stillChanging = again.inconsistencies.some((entry) => again.states.get(entry.key) !== states.get(entry.key))
    inconsistencies = again.inconsistencies.filter((entry) => byKey.has(entry.key))
    states = again.states
    if (!stillChanging) break
  }
  return { inconsistencies, settled }
}

function buildReport(
  options: CommonOptions,
  kind: VerificationReport['kind'],
  startedAt: Date,
  found: { inconsistencies: Inconsistency[]; settled: number },
  counts: Omit<VerificationCounts, 'settledOnRecheck' | 'missingInNew' | 'missingInOld' | 'different'>,
  checksums: VerificationReport['checksums'],
): VerificationReport {
  const max = options.maxEntries ?? 10_000
  const sorted = [...found.inconsistencies].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
  const count = (k: Inconsistency['kind']) => sorted.filter((entry) => entry.kind === k).length
  return {
    migration: options.migration.name,
    kind,
    startedAt,
    finishedAt: new Date(),
    consistent: sorted.length === 0,
    counts: { ...counts, settledOnRecheck: found.settled, missingInNew: count('MISSING_IN_NEW'), missingInOld: count('MISSING_IN_OLD'), different: count('DIFFERENT') },
    checksums,
    inconsistencies: sorted.slice(0, max),
    truncated: sorted.length > max,
  }
}

async function finish(options: CommonOptions, report: VerificationReport): Promise<VerificationReport> {
  if (!options.control) return report
  const id = await new VerificationReports(options.control).save(report)
  await new AuditLog(options.control).append({
    actor: options.actor ?? 'cutover:verify',
    migration: report.migration,
    action: 'verification',
    details: { reportId: id, kind: report.kind, consistent: report.consistent, counts: report.counts, checksums: report.checksums },
  })
  return { ...report, id }
}

function differingSegments(a: ReadonlyMap<number, SegmentChecksum>, b: ReadonlyMap<number, SegmentChecksum>): number[] {
  const segments = new Set([...a.keys(), ...b.keys()])
  return [...segments].filter((s) => a.get(s)?.count !== b.get(s)?.count || a.get(s)?.sum !== b.get(s)?.sum).sort((x, y) => x - y)
}

function rowsIn(segments: readonly number[], a: ReadonlyMap<number, SegmentChecksum>, b: ReadonlyMap<number, SegmentChecksum>): number {
  return segments.reduce((sum, s) => sum + Math.max(a.get(s)?.count ?? 0, b.get(s)?.count ?? 0), 0)
}

function sumOf(sums: ReadonlyMap<number, SegmentChecksum>): { count: number; sum: bigint } {
  let count = 0
  let sum = 0n
  for (const entry of sums.values()) {
    count += entry.count
    sum += entry.sum
  }
  return { count, sum }
}
