import type { Kysely } from 'kysely'
import { AuditLog } from '../control/audit-log.js'
import { canonicalHash } from '../model/canonical.js'
import { DeadLetterTable, entryKey, type StoredDeadLetter } from '../control/dead-letters.js'
import { readEnvFlags } from '../runtime/env-flags.js'
import { type Logger, silentLogger } from '../observe/logger.js'
import type { Migration } from '../model/migration.js'
import { type ApplyOutcome, MirrorQueue } from '../runtime/mirror-queue.js'
import { isPhase, type Phase, PHASE_BEHAVIOR, type Side } from '../model/phase.js'
import { QuarantineTable } from '../control/quarantine.js'
import { type KeyValue, keyString, type Row } from '../model/store.js'
import { keyArity, keyFromText } from '../model/stored-key.js'
import { inspectKeys } from './verification.js'
import { type Inconsistency, type VerificationReport, VerificationReports } from '../control/verification-report.js'

export interface ReconcileOptions {
  readonly migration: Migration<any, any>
  readonly control: Kysely<any>
  /**
   * What to repair: a report's inconsistencies, or these keys. Default: the latest stored report of
   * the migration. `includeQuarantine` adds the open quarantine entries (fixed data is re-copied).
   */
  readonly report?: VerificationReport
  readonly keys?: readonly KeyValue[]
  readonly includeQuarantine?: boolean
  /**
   * Adds the open dead letters (mirrored changes that could not be applied) and resolves the ones
   * repaired: replaying the dead-letter table is the same state-based operation.
   */
  readonly includeDeadLetters?: boolean
  /** The side whose current state wins. Default: the phase's (control table, else env flags). */
  readonly authoritative?: Side
  readonly batchSize?: number
  readonly actor?: string
  readonly logger?: Logger
  readonly env?: Readonly<Record<string, string | undefined>>
}

/** One key's repair, with the canonical hashes of both copies before and after (null: absent). */
export interface Repair {
  readonly key: string
  readonly before: { readonly old: string | null; readonly new: string | null }
  readonly after: { readonly old: string | null; readonly new: string | null }
  readonly outcome: 'repaired' | 'still-inconsistent' | 'dead-lettered'
  readonly reason?: string
}

export interface ReconcileResult {
  readonly migration: string
  readonly authoritative: Side
  readonly attempted: number
  readonly repaired: number
  readonly repairs: readonly Repair[]
  /** Keys that still differ after the repair (a writer moved them again, or the target refuses). */
  readonly stillInconsistent: readonly Inconsistency[]
}

/**
 * Repairs inconsistencies: re-reads each key on the authoritative side, writes that state to the
 * other side through the mapper (the mirror's own state-based apply: absent there means delete
 * here), checks the key again, and audits every repair with before/after hashes of both copies.
 * Because the state written is read at repair time, it can never be older than what a concurrent
 * mirror writes; a key a writer moves meanwhile shows up as still inconsistent, to run again.
 * A key the target refuses (a constraint its repaired state breaks) is dead-lettered alone, as the
 * backfill quarantines a refused row alone: the other repairs of its batch still go through. A
 * failure already recorded by an open dead letter (same key and reason) is not recorded twice.
 */
export async function reconcile(options: ReconcileOptions): Promise<ReconcileResult> {
  const { migration, control } = options
  const logger = options.logger ?? silentLogger
  const authoritative = options.authoritative ?? sideOf(await currentPhase(migration.name, control, options.env))
  const report = options.keys ? undefined : (options.report ?? (await new VerificationReports(control).load(migration.name)))
  const deadLetters = new DeadLetterTable(control)
  const quarantine = new QuarantineTable(control)
  const { keys, letters } = await collectKeys(options, report, quarantine, deadLetters)
  const queue = repairQueue(migration, authoritative, deadLetters, options.batchSize ?? 200, logger)
  const repairs: Repair[] = []
  const stillInconsistent: Inconsistency[] = []
  const batchSize = options.batchSize ?? 200
  try {
    for (let i = 0; i < keys.length; i += batchSize) {
      const chunk = await repairChunk(migration, queue, keys.slice(i, i + batchSize))
      repairs.push(...chunk.repairs)
      stillInconsistent.push(...chunk.stillInconsistent)
    }
  } finally {
    await queue.close()
  }
  const repaired = repairs.filter((r) => r.outcome === 'repaired')
  await resolveRepaired(migration.name, repaired, letters, quarantine, deadLetters)
  await new AuditLog(control).append({
    actor: options.actor ?? 'cutover:reconcile',
    migration: migration.name,
    action: 'reconciliation',
    details: {
      authoritative,
      reportId: report?.id ?? null,
      attempted: repairs.length,
      repaired: repaired.length,
      stillInconsistent: stillInconsistent.length,
      repairs: repairs.slice(0, 1_000),
    },
  })
  logger.info('reconciliation done', { migration: migration.name, authoritative, attempted: repairs.length, repaired: repaired.length })
  return { migration: migration.name, authoritative, attempted: repairs.length, repaired: repaired.length, repairs, stillInconsistent }
}

/** The keys to repair: the report's (or the given ones), plus open quarantine and dead letters if asked. */
async function collectKeys(
  options: ReconcileOptions,
  report: VerificationReport | undefined,
  quarantine: QuarantineTable,
  deadLetters: DeadLetterTable,
): Promise<{ keys: KeyValue[]; letters: StoredDeadLetter[] }> {
  const { migration } = options
  const keys = new Map<string, KeyValue>()
  const add = (key: KeyValue) => keys.set(keyString(key), key)
  // A report keeps key texts, and API callers may pass them: a composite key's text is read back
  // into its parts (`keyFromText`); both sides of a migration have keys of one arity.
  const arity = keyArity(migration.old)
  for (const key of options.keys ?? report?.inconsistencies.map((entry) => entry.key) ?? []) add(typeof key === 'string' ? (keyFromText(key, arity) ?? key) : key)
  if (options.includeQuarantine) {
    for (const entry of await quarantine.open(migration.name, { limit: 100_000 })) add(entryKey(entry, migration.old))
  }
  const letters = options.includeDeadLetters ? await deadLetters.open(migration.name, { limit: 100_000 }) : []
  for (const letter of letters) add(entryKey(letter, letter.direction === 'old-to-new' ? migration.old : migration.new))
  return { keys: [...keys.values()], letters }
}

/**
 * The mirror queue that writes the repairs: no delayed re-check (the repair is checked right after,
 * with the report's rules), no linger (keys come in whole batches), few retries (a refused key is
 * isolated and re-applied alone, so retrying a whole batch mostly re-meets the same refusal), and
 * dead letters written only where none is open for the same key and reason.
 */
function repairQueue(migration: Migration<any, any>, authoritative: Side, deadLetters: DeadLetterTable, batchSize: number, logger: Logger): MirrorQueue {
  return new MirrorQueue({
    migration: migration.name,
    direction: authoritative === 'old' ? 'old-to-new' : 'new-to-old',
    source: authoritative === 'old' ? migration.old : migration.new,
    target: authoritative === 'old' ? migration.new : migration.old,
    translate:
      authoritative === 'old'
        ? (record: Row, key: string) => migration.mapper.forward(record, { key, migration: migration.name })
        : (record: Row, key: string) => migration.mapper.backward(record, { key, migration: migration.name }),
    deadLetters: { write: (entries) => deadLetters.writeUnlessOpen(entries) },
    batchSize,
    lingerMs: 0,
    retry: { attempts: 3, baseDelayMs: 50, maxDelayMs: 400 },
    recheckDelayMs: false,
    logger,
    ...(migration.compare ? { compare: migration.compare } : {}),
  })
}

/** Hashes both copies, applies the authoritative state, checks again, hashes again. */
async function repairChunk(migration: Migration<any, any>, queue: MirrorQueue, chunk: readonly KeyValue[]): Promise<{ repairs: Repair[]; stillInconsistent: Inconsistency[] }> {
  const before = await hashes(migration, chunk)
  const outcomes = await applyIsolating(queue, chunk)
  await queue.drain()
  const { inconsistencies } = await inspectKeys(migration, chunk)
  const after = await hashes(migration, chunk)
  const open = new Map(inconsistencies.map((entry) => [entry.key, entry]))
  const repairs: Repair[] = []
  const stillInconsistent: Inconsistency[] = []
  for (const outcome of outcomes) {
    const still = open.get(outcome.key)
    if (still) stillInconsistent.push(still)
    repairs.push({
      key: outcome.key,
      before: before.get(outcome.key) as Repair['before'],
      after: after.get(outcome.key) as Repair['after'],
      outcome: outcome.status === 'dead-lettered' ? 'dead-lettered' : still ? 'still-inconsistent' : 'repaired',
      ...(outcome.status === 'dead-lettered' ? { reason: `${outcome.reasonCode}: ${outcome.reason}` } : {}),
    })
  }
  return { repairs, stillInconsistent }
}

/**
 * Applies the keys as one batch, recording nothing yet; the keys of a batch that failed are then
 * applied one at a time, each recording its own dead letter. So one key the target refuses fails
 * alone instead of dead-lettering every repair of its batch.
 */
async function applyIsolating(queue: MirrorQueue, keys: readonly KeyValue[]): Promise<ApplyOutcome[]> {
  const events = (batch: readonly KeyValue[]) => batch.map((key) => ({ key, op: 'upsert' as const }))
  if (keys.length === 1) return queue.apply(events(keys))
  const outcomes = await queue.apply(events(keys), { deadLetter: false })
  const byKey = new Map(keys.map((key) => [keyString(key), key]))
  const result: ApplyOutcome[] = []
  for (const outcome of outcomes) {
    if (outcome.status === 'applied') result.push(outcome)
    else result.push(...(await queue.apply(events([byKey.get(outcome.key) ?? outcome.key]))))
  }
  return result
}

/** Closes the quarantine entries and dead letters of the keys repaired. */
async function resolveRepaired(migration: string, repaired: readonly Repair[], letters: readonly StoredDeadLetter[], quarantine: QuarantineTable, deadLetters: DeadLetterTable): Promise<void> {
  await quarantine.resolve(migration, repaired.map((r) => r.key), 'reconciled')
  const repairedKeys = new Set(repaired.map((r) => r.key))
  await deadLetters.resolve(letters.filter((letter) => repairedKeys.has(letter.key)).map((letter) => letter.id), 'reconciled')
}

/** The phase in force for the fleet: the control table's override, else the env flags. */
export async function currentPhase(migration: string, control: Kysely<any>, env: Readonly<Record<string, string | undefined>> = process.env): Promise<Phase> {
  const row = await control.selectFrom('cutover.migration_state').select('phase').where('migration', '=', migration).executeTakeFirst()
  if (row && isPhase(row.phase)) return row.phase
  return readEnvFlags([migration], env, { rejectUnknownMigrations: false }).get(migration)?.phase ?? 'off'
}

function sideOf(phase: Phase): Side {
  return PHASE_BEHAVIOR[phase].authoritative
}

async function hashes(migration: Migration<any, any>, keys: readonly KeyValue[]): Promise<Map<string, Repair['before']>> {
  const [oldRows, newRows] = await Promise.all([migration.old.get(keys), migration.new.get(keys)])
  const result = new Map<string, Repair['before']>()
  for (const key of keys) {
    const id = keyString(key)
    const o = oldRows.get(id)
    const n = newRows.get(id)
    result.set(id, { old: o ? canonicalHash(o) : null, new: n ? canonicalHash(n) : null })
  }
  return result
}
