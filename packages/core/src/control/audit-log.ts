import { createHash, createHmac, timingSafeEqual } from 'node:crypto'
import { type Kysely, sql } from 'kysely'
import { canonicalText, canonicalize } from '../model/canonical.js'
import { ConfigError } from '../model/errors.js'
import type { Logger } from '../observe/logger.js'
import { findKey, type KeyRing, keyRingFromEnv } from './secret-keys.js'

export type AuditAction =
  | 'phase_change'
  /** A tenant's own phase set or cleared (`details.tenant`); kept apart so the migration's timeline stays its own. */
  | 'tenant_phase_change'
  | 'dead_letter_replay'
  | 'backfill'
  | 'verification'
  | 'reconciliation'
  | 'quarantine'
  | 'guard_rollback'
  | 'job_control'
  | 'safety_net_release'
  | 'barrier'

export interface AuditEntry {
  readonly actor: string
  readonly migration: string
  readonly action: AuditAction
  /** Counts, checksums, before/after values of the change. */
  readonly details: Readonly<Record<string, unknown>>
}

export interface StoredAuditEntry extends AuditEntry {
  readonly id: string
  /** 1, 2, 3, … without gaps: a deleted entry leaves a hole. */
  readonly seq: number
  readonly at: Date
  readonly prevHash: string
  readonly hash: string
  /** The id of the key that authenticated the entry; undefined for an entry written without a key. */
  readonly keyId: string | undefined
  readonly mac: string | undefined
}

/** The last entry of the chain, to be kept outside the database and handed back to `verify`. */
export interface AuditHead {
  readonly seq: number
  readonly hash: string
}

export type AuditVerification =
  | { readonly ok: true; readonly entries: number; readonly head: AuditHead; readonly authenticated: boolean }
  | { readonly ok: false; readonly entryId: string; readonly seq: number; readonly problem: string; readonly head: AuditHead }

/** The hash of the chain before its first entry. */
export const AUDIT_GENESIS = '0'.repeat(64)

/** Environment variables holding the audit key ring (see `keyRingFromEnv`). */
export const AUDIT_KEY_ENV = { current: 'CUTOVER_AUDIT_KEY', retired: 'CUTOVER_AUDIT_RETIRED_KEYS' } as const

export interface AuditLogOptions {
  /** Default: read from `process.env` (`CUTOVER_AUDIT_KEY`, `CUTOVER_AUDIT_RETIRED_KEYS`). `null`: no key. */
  readonly keys?: KeyRing | null
  /** Receives the `audit head` line of every append: the anchor outside the table. */
  readonly logger?: Logger
}

/**
 * The append-only audit table `cutover.audit`. Each entry is chained to the previous one, numbered
 * without gaps, and authenticated with an HMAC whose key the database never holds:
 *
 *     hash = sha256_hex(prev_hash || "\n" || canonical_text({ actor, migration, action, details, at }))
 *     mac  = hmac_sha256_hex(key, "cutover.audit.v2\n" || seq || "\n" || key_id || "\n" || hash)
 *
 * so that whoever can write to the database cannot change, insert or append an entry that
 * verifies. Truncating the tail leaves a valid shorter chain: only a head kept elsewhere (the
 * `audit head` log line of each append, the head in each verification result) shows it, when given
 * to `verify({ head })`.
 */
export class AuditLog {
  readonly #keys: KeyRing | undefined
  readonly #logger: Logger | undefined

  constructor(
    readonly db: Kysely<any>,
    options: AuditLogOptions = {},
  ) {
    this.#keys = options.keys === null ? undefined : (options.keys ?? keyRingFromEnv(process.env, AUDIT_KEY_ENV))
    this.#logger = options.logger
  }

  /** Whether new entries are authenticated (a key is configured). */
  get authenticated(): boolean {
    return this.#keys !== undefined
  }

  async append(entry: AuditEntry): Promise<StoredAuditEntry> {
    const stored = await this.db.transaction().execute(async (trx) => {
      // Serializes appends so that each sees the previous hash and number; audit volume is low.
      await sql`select pg_advisory_xact_lock(hashtext('cutover.audit'))`.execute(trx)
      const last = await trx.selectFrom('cutover.audit').select(['hash', 'seq']).orderBy('seq', 'desc').limit(1).executeTakeFirst()
      const seq = last ? Number(last.seq) + 1 : 1
      const prevHash: string = last?.hash ?? AUDIT_GENESIS
      const at = new Date()
      const hash = auditHash(prevHash, { ...entry, at })
      const key = this.#keys?.current
      const mac = key ? auditMac(key.secret, seq, key.id, hash) : undefined
      const row = await trx
        .insertInto('cutover.audit')
        .values({
          seq,
          actor: entry.actor,
          migration: entry.migration,
          action: entry.action,
          details: JSON.stringify(entry.details),
          at,
          prev_hash: prevHash,
          hash,
          key_id: key?.id ?? null,
          mac: mac ?? null,
        })
        .returning(['id'])
        .executeTakeFirstOrThrow()
      return { ...entry, id: String(row.id), seq, at, prevHash, hash, keyId: key?.id, mac }
    })
    this.#logger?.info('audit head', { audit: { seq: stored.seq, hash: stored.hash, keyId: stored.keyId ?? null, action: stored.action, migration: stored.migration } })
    return stored
  }

  async entries(migration?: string): Promise<StoredAuditEntry[]> {
    let query = this.db.selectFrom('cutover.audit').selectAll().orderBy('seq').orderBy('id')
    if (migration) query = query.where('migration', '=', migration)
    const rows = await query.execute()
    return rows.map((row) => ({
      id: String(row.id),
      seq: Number(row.seq),
      at: row.at,
      actor: row.actor,
      migration: row.migration,
      action: row.action,
      details: row.details,
      prevHash: row.prev_hash,
      hash: row.hash,
      keyId: row.key_id ?? undefined,
      mac: row.mac ?? undefined,
    }))
  }

  /**
   * Walks the whole chain and returns the first entry that does not hold, or `ok` with the head to
   * keep. With `head` (a value kept from an earlier append or verification), an entry with that
   * number and hash must still be in the chain: otherwise the tail was cut or rewritten. With a key
   * configured, every entry must carry a valid HMAC of a key in the ring, and no entry may use a
   * key older than one used before it (a leaked retired key cannot forge what came after rotation).
   */
  async verify(options: { head?: AuditHead } = {}): Promise<AuditVerification> {
    const entries = await this.entries()
    let prev: StoredAuditEntry | undefined
    let newestRank = Number.POSITIVE_INFINITY
    const fail = (entry: StoredAuditEntry, problem: string): AuditVerification => ({ ok: false, entryId: entry.id, seq: entry.seq, problem, head: headOf(prev) })
    for (const entry of entries) {
      if (entry.prevHash !== (prev?.hash ?? AUDIT_GENESIS)) return fail(entry, 'previous entry was changed or deleted')
      if (auditHash(entry.prevHash, entry) !== entry.hash) return fail(entry, 'entry was changed')
      if (entry.seq !== (prev?.seq ?? 0) + 1) return fail(entry, `sequence gap: expected entry ${(prev?.seq ?? 0) + 1}, found ${entry.seq}`)
      const problem = this.#authenticate(entry, newestRank)
      if (typeof problem === 'string') return fail(entry, problem)
      newestRank = problem
      if (options.head && entry.seq === options.head.seq && entry.hash !== options.head.hash) return fail(entry, 'entry differs from the anchored head')
      prev = entry
    }
    const head = headOf(prev)
    if (options.head && head.seq < options.head.seq) {
      return { ok: false, entryId: prev?.id ?? '0', seq: head.seq, problem: `chain ends at entry ${head.seq} but the anchored head is entry ${options.head.seq}: entries were deleted`, head }
    }
    const verification: AuditVerification = { ok: true, entries: entries.length, head, authenticated: this.#keys !== undefined }
    this.#logger?.info('audit head', { audit: { seq: head.seq, hash: head.hash, verified: true } })
    return verification
  }

  /** The entry's key rank (0 = current key), or what is wrong with its HMAC. */
  #authenticate(entry: StoredAuditEntry, newestRank: number): number | string {
    if (!this.#keys) return newestRank
    if (entry.keyId === undefined || entry.mac === undefined) return 'entry is not authenticated (no HMAC)'
    const found = findKey(this.#keys, entry.keyId)
    if (!found) return `entry is authenticated with unknown key "${entry.keyId}"`
    if (!macEquals(entry.mac, auditMac(found.key.secret, entry.seq, entry.keyId, entry.hash))) return 'entry HMAC does not match (forged or changed)'
    if (found.rank > newestRank) return `entry uses retired key "${entry.keyId}" after a newer key was in use`
    return found.rank
  }
}

/** `<seq>:<hash>`, the form `cutover audit verify --head` takes and prints. */
export function formatAuditHead(head: AuditHead): string {
  return `${head.seq}:${head.hash}`
}

export function parseAuditHead(text: string): AuditHead {
  const match = /^(\d+):([0-9a-f]{64})$/.exec(text.trim())
  if (!match) throw new ConfigError([{ source: '--head', value: text, message: 'an audit head is "<seq>:<64 hex digits>", as printed by `cutover audit verify`' }])
  return { seq: Number(match[1]), hash: match[2] as string }
}

function headOf(entry: StoredAuditEntry | undefined): AuditHead {
  return { seq: entry?.seq ?? 0, hash: entry?.hash ?? AUDIT_GENESIS }
}

function auditHash(prevHash: string, entry: AuditEntry & { at: Date }): string {
  const body = canonicalText(
    canonicalize({ actor: entry.actor, migration: entry.migration, action: entry.action, details: entry.details, at: entry.at }),
  )
  return createHash('sha256').update(`${prevHash}\n${body}`, 'utf8').digest('hex')
}

function auditMac(secret: Buffer, seq: number, keyId: string, hash: string): string {
  return createHmac('sha256', secret).update(`cutover.audit.v2\n${seq}\n${keyId}\n${hash}`, 'utf8').digest('hex')
}

function macEquals(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8')
  const y = Buffer.from(b, 'utf8')
  return x.length === y.length && timingSafeEqual(x, y)
}
