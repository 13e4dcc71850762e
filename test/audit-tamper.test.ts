/**
 * The audit chain against someone who can write to the control database but does not hold the HMAC
 * key: each kind of tampering is done with plain SQL, recomputing whatever a hash chain alone would
 * let them recompute, and `verify` must name it.
 */
import { createHash, randomBytes } from 'node:crypto'
import { sql } from 'kysely'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { AUDIT_GENESIS, AuditLog, formatAuditHead, type AuditHead } from '../packages/core/src/control/audit-log.js'
import { ensureSchema } from '../packages/core/src/control/control-schema.js'
import type { KeyRing } from '../packages/core/src/control/secret-keys.js'
import { canonicalText, canonicalize } from '../packages/core/src/model/canonical.js'
import { main } from '../packages/core/src/cli/main.js'
import { createTestDatabase, type TestDatabase } from './setup/services.js'

const key = (id: string) => ({ id, secret: randomBytes(32) })
const K1 = key('k1')
const K2 = key('k2')
const ring: KeyRing = { current: K1, retired: [] }

let database: TestDatabase
let audit: AuditLog
let head: AuditHead

beforeAll(async () => {
  database = await createTestDatabase('cutover_audit_tamper')
})
afterAll(async () => {
  await database?.drop()
})
beforeEach(async () => {
  await sql`drop schema if exists cutover cascade`.execute(database.db)
  await ensureSchema(database.db)
  audit = new AuditLog(database.db, { keys: ring })
  for (const [actor, n] of [['alice', 1], ['bob', 2], ['carol', 3], ['dave', 4]] as const) {
    await audit.append({ actor, migration: 'users', action: 'phase_change', details: { n } })
  }
  const verified = await audit.verify()
  if (!verified.ok) throw new Error('chain should verify before tampering')
  head = verified.head
})

/** What an attacker without the key computes: the plain hash over the row as it now stands. */
function forgedHash(prevHash: string, row: { actor: string; migration: string; action: string; details: unknown; at: Date }): string {
  const body = canonicalText(canonicalize({ actor: row.actor, migration: row.migration, action: row.action, details: row.details, at: row.at }))
  return createHash('sha256').update(`${prevHash}\n${body}`, 'utf8').digest('hex')
}

/** Recomputes `prev_hash`/`hash` of every entry from `fromSeq` on, as a hash-chain-only attacker would. */
async function rechainFrom(fromSeq: number): Promise<void> {
  const rows = (await sql<any>`select * from cutover.audit order by seq`.execute(database.db)).rows
  let prev = AUDIT_GENESIS
  for (const row of rows) {
    if (Number(row.seq) >= fromSeq) {
      const hash = forgedHash(prev, row)
      await sql`update cutover.audit set prev_hash = ${prev}, hash = ${hash} where id = ${row.id}`.execute(database.db)
      prev = hash
    } else prev = row.hash
  }
}

describe('audit chain against a database writer without the key', () => {
  it('verifies an untouched chain, numbered 1..n without gaps, every entry with an HMAC', async () => {
    const entries = await audit.entries()
    expect(entries.map((e) => e.seq)).toEqual([1, 2, 3, 4])
    expect(entries.every((e) => e.keyId === 'k1' && /^[0-9a-f]{64}$/.test(e.mac ?? ''))).toBe(true)
    expect(await audit.verify({ head })).toMatchObject({ ok: true, entries: 4, authenticated: true, head: { seq: 4 } })
  })

  it('detects truncation of the last entries against the anchored head', async () => {
    await sql`delete from cutover.audit where seq >= 3`.execute(database.db)
    // The remaining chain is internally valid: only the head kept outside the table tells.
    expect((await audit.verify()).ok).toBe(true)
    expect(await audit.verify({ head })).toMatchObject({ ok: false, problem: expect.stringMatching(/chain ends at entry 2 .* anchored head is entry 4/) })
  })

  it('detects an appended entry whose hash was recomputed', async () => {
    const last = (await audit.entries()).at(-1)!
    const at = new Date()
    const row = { actor: 'mallory', migration: 'users', action: 'phase_change', details: { n: 5 }, at }
    await sql`insert into cutover.audit (seq, actor, migration, action, details, at, prev_hash, hash, key_id, mac)
      values (5, ${row.actor}, ${row.migration}, ${row.action}, ${JSON.stringify(row.details)}, ${at}, ${last.hash}, ${forgedHash(last.hash, row)}, 'k1', ${'ab'.repeat(32)})`.execute(database.db)
    expect(await audit.verify({ head })).toMatchObject({ ok: false, seq: 5, problem: 'entry HMAC does not match (forged or changed)' })
    // Leaving the HMAC out does not help either.
    await sql`update cutover.audit set key_id = null, mac = null where seq = 5`.execute(database.db)
    expect(await audit.verify()).toMatchObject({ ok: false, seq: 5, problem: 'entry is not authenticated (no HMAC)' })
  })

  it('detects a forged entry inserted in the middle with the chain and numbers recomputed after it', async () => {
    await sql`update cutover.audit set seq = seq + 1000 where seq >= 3`.execute(database.db)
    await sql`update cutover.audit set seq = seq - 999 where seq >= 1003`.execute(database.db)
    const at = new Date()
    await sql`insert into cutover.audit (seq, actor, migration, action, details, at, prev_hash, hash)
      values (3, 'mallory', 'users', 'phase_change', '{"n":99}', ${at}, 'x', 'x')`.execute(database.db)
    await rechainFrom(3)
    const result = await audit.verify({ head })
    expect(result).toMatchObject({ ok: false, seq: 3, problem: 'entry is not authenticated (no HMAC)' })
  })

  it('detects an edited entry with the chain recomputed after it, even copying HMACs', async () => {
    await sql`update cutover.audit set actor = 'mallory' where seq = 2`.execute(database.db)
    await rechainFrom(2)
    expect(await audit.verify()).toMatchObject({ ok: false, seq: 2, problem: 'entry HMAC does not match (forged or changed)' })
  })

  it('detects a deleted middle entry with the numbers and chain closed over the hole', async () => {
    await sql`delete from cutover.audit where seq = 2`.execute(database.db)
    await sql`update cutover.audit set seq = seq - 1 where seq > 2`.execute(database.db)
    await rechainFrom(2)
    // Renumbered entries keep the HMACs of their old numbers: none of them verifies.
    expect(await audit.verify()).toMatchObject({ ok: false, seq: 2, problem: 'entry HMAC does not match (forged or changed)' })
  })

  it('detects a gap in the numbers', async () => {
    await sql`delete from cutover.audit where seq = 4`.execute(database.db)
    await audit.append({ actor: 'erin', migration: 'users', action: 'phase_change', details: {} })
    await sql`update cutover.audit set seq = 7 where actor = 'erin'`.execute(database.db)
    expect(await audit.verify()).toMatchObject({ ok: false, problem: 'sequence gap: expected entry 4, found 7' })
  })

  it('detects a rewritten tail (different entries under the anchored head number)', async () => {
    await sql`delete from cutover.audit where seq = 4`.execute(database.db)
    await audit.append({ actor: 'erin', migration: 'users', action: 'phase_change', details: {} })
    expect(await audit.verify({ head })).toMatchObject({ ok: false, seq: 4, problem: 'entry differs from the anchored head' })
  })

  it('rotates keys: old entries verify with the retired key, and a retired key cannot sign after the newer one', async () => {
    const rotated = new AuditLog(database.db, { keys: { current: K2, retired: [K1] } })
    await rotated.append({ actor: 'frank', migration: 'users', action: 'phase_change', details: {} })
    expect(await rotated.verify({ head })).toMatchObject({ ok: true, entries: 5 })
    expect((await rotated.entries()).map((e) => e.keyId)).toEqual(['k1', 'k1', 'k1', 'k1', 'k2'])
    // Without the retired key, the first entries cannot be checked.
    expect(await new AuditLog(database.db, { keys: { current: K2, retired: [] } }).verify()).toMatchObject({ ok: false, seq: 1, problem: 'entry is authenticated with unknown key "k1"' })
    // Someone holding the leaked retired key appends an entry: refused, the chain had moved to k2.
    await new AuditLog(database.db, { keys: { current: K1, retired: [] } }).append({ actor: 'mallory', migration: 'users', action: 'phase_change', details: {} })
    expect(await rotated.verify()).toMatchObject({ ok: false, seq: 6, problem: 'entry uses retired key "k1" after a newer key was in use' })
  })

  it('anchors the head in a structured log line at each append', async () => {
    const lines: Record<string, any>[] = []
    const logger = { debug() {}, warn() {}, error() {}, info: (msg: string, fields?: Record<string, unknown>) => void lines.push({ msg, ...fields }) }
    const logged = await new AuditLog(database.db, { keys: ring, logger }).append({ actor: 'gina', migration: 'users', action: 'phase_change', details: {} })
    expect(lines).toEqual([{ msg: 'audit head', audit: { seq: 5, hash: logged.hash, keyId: 'k1', action: 'phase_change', migration: 'users' } }])
  })

  it('`cutover audit verify --head` takes the printed head, prints the new one, and exits 2 on truncation', async () => {
    process.env.CUTOVER_TEST_OLD_URL = database.url
    process.env.CUTOVER_TEST_NEW_URL = database.url
    process.env.CUTOVER_AUDIT_KEY = `k1:${K1.secret.toString('base64')}`
    try {
      const run = async (...args: string[]) => {
        let out = ''
        const stream = { isTTY: false, write: (chunk: string) => ((out += chunk), true) } as unknown as NodeJS.WriteStream
        const code = await main(['audit', 'verify', ...args, '--config', 'test/fixtures/people.config.ts', '--json'], { stdout: stream, stderr: stream })
        return { code, result: JSON.parse(out.trim().split('\n').at(-1) as string) }
      }
      const intact = await run('--head', formatAuditHead(head))
      expect(intact).toMatchObject({ code: 0, result: { ok: true, authenticated: true, headText: formatAuditHead(head) } })
      await sql`delete from cutover.audit where seq = 4`.execute(database.db)
      expect(await run('--head', formatAuditHead(head))).toMatchObject({ code: 2, result: { ok: false } })
    } finally {
      delete process.env.CUTOVER_AUDIT_KEY
    }
  })
})
