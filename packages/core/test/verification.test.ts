import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import {
  AuditLog,
  copy,
  defineMigration,
  ensureSchema,
  fieldMapper,
  formatReport,
  type Row,
  routingBucket,
  split,
  VerificationReports,
  verifyExhaustive,
  verifySample,
} from '../src/index.js'
import { createTestDatabase, type TestDatabase } from '../../../test/setup/services.js'
import { MemoryStore } from './memory-store.js'

const mapper = fieldMapper({
  old: z.object({ id: z.number().int(), full_name: z.string(), ssn: z.string() }),
  new: z.object({ id: z.number().int(), first_name: z.string(), last_name: z.string().nullable(), ssn: z.string() }),
  fields: [copy('id'), split('full_name', ['first_name', 'last_name']), copy('ssn')],
})

let control: TestDatabase
let counter = 0
beforeAll(async () => {
  control = await createTestDatabase('cutover_verify')
  await ensureSchema(control.db)
})
afterAll(async () => {
  await control?.drop()
})

function pair(n: number) {
  const oldRows: Row[] = Array.from({ length: n }, (_, i) => ({ id: i + 1, full_name: `Grace${i + 1} Hopper`, ssn: `ssn-${i + 1}` }))
  const old = new MemoryStore('old', 'id', oldRows)
  const target = new MemoryStore('new', 'id', oldRows.map((row) => mapper.forward(row)))
  const migration = defineMigration({ name: `verify${++counter}`, old, new: target, mapper, compare: { sensitive: ['ssn'] } })
  return { old, new: target, migration }
}

describe('exhaustive verification', () => {
  it('finds every planted difference and nothing else, bisecting segments down to the rows', async () => {
    const { old, new: target, migration } = pair(3_000)
    target.rows.delete('17')
    target.rows.delete('2999')
    old.rows.delete('500')
    target.rows.set('5000', { id: 5000, first_name: 'Only', last_name: 'New', ssn: 'x' })
    target.rows.set('42', { ...(target.rows.get('42') as Row), last_name: 'Changed' })
    target.rows.set('43', { ...(target.rows.get('43') as Row), ssn: 'leaked?' })
    target.rows.set('44', { ...(target.rows.get('44') as Row), extra_column: 'ignored: not produced by the mapper' })

    const report = await verifyExhaustive({ migration, control: control.db, initialBits: 4, leafRows: 20, recheck: { delayMs: 1, attempts: 1 } })
    expect(report.consistent).toBe(false)
    expect(report.inconsistencies.map((e) => [e.key, e.kind])).toEqual([
      ['17', 'MISSING_IN_NEW'],
      ['2999', 'MISSING_IN_NEW'],
      ['42', 'DIFFERENT'],
      ['43', 'DIFFERENT'],
      ['500', 'MISSING_IN_OLD'],
      ['5000', 'MISSING_IN_OLD'],
    ])
    expect(report.inconsistencies.find((e) => e.key === '42')?.differences).toEqual([{ path: 'last_name', kind: 'changed', expected: 'Hopper', actual: 'Changed' }])
    expect(report.inconsistencies.find((e) => e.key === '43')?.differences).toEqual([{ path: 'ssn', kind: 'changed', redacted: true }])
    expect(report.counts).toMatchObject({ oldRecords: 2_999, newRecords: 2_999, segments: 16, missingInNew: 2, missingInOld: 2, different: 2 })
    // Bisection: far fewer keys compared row by row than records.
    expect(report.counts.keysCompared).toBeLessThan(200)
    expect(formatReport(report)).toContain('DIFFERENT      43  ssn (redacted)')
    expect(formatReport(report)).not.toContain('leaked?')

    const stored = await new VerificationReports(control.db).load(migration.name)
    expect(stored?.inconsistencies).toHaveLength(6)
    expect(stored?.id).toBe(report.id)
    const audit = await new AuditLog(control.db).entries(migration.name)
    expect(audit.at(-1)).toMatchObject({ action: 'verification', details: { reportId: report.id, consistent: false } })
  })

  it('reports equal stores as consistent without comparing any row', async () => {
    const { migration } = pair(2_000)
    const report = await verifyExhaustive({ migration })
    expect(report).toMatchObject({ consistent: true, inconsistencies: [] })
    expect(report.counts.keysCompared).toBe(0)
    expect(report.checksums.old).toBe(report.checksums.new)
  })

  it('re-checks a key that differs while the mirror is still writing it, instead of reporting it', async () => {
    const { old, new: target, migration } = pair(500)
    old.rows.set('7', { id: 7, full_name: 'Grace7 Brewster', ssn: 'ssn-7' })
    setTimeout(() => target.rows.set('7', { id: 7, first_name: 'Grace7', last_name: 'Brewster', ssn: 'ssn-7' }), 30)
    const report = await verifyExhaustive({ migration, recheck: { delayMs: 60, attempts: 2 } })
    expect(report.consistent).toBe(true)
    expect(report.counts.settledOnRecheck).toBe(1)
  })

  it('reports a record whose old copy the mapper rejects', async () => {
    const { old, new: target, migration } = pair(100)
    old.rows.set('9', { id: 9, full_name: null, ssn: 'ssn-9' })
    target.rows.delete('9')
    const report = await verifyExhaustive({ migration, recheck: { attempts: 0 } })
    expect(report.inconsistencies).toEqual([{ key: '9', kind: 'MISSING_IN_NEW', differences: [], detail: expect.stringContaining('mapper rejects') }])
  })
})

describe('sampled verification', () => {
  it('compares exactly the keys whose routing bucket is below the threshold, on both sides', async () => {
    const { old, new: target, migration } = pair(2_000)
    const inSample = [...old.rows.keys()].filter((k) => routingBucket(k) < 1_000)
    const outOfSample = [...old.rows.keys()].find((k) => routingBucket(k) >= 1_000) as string
    const changed = inSample[3] as string
    target.rows.set(changed, { ...(target.rows.get(changed) as Row), first_name: 'X' })
    target.rows.set(outOfSample, { ...(target.rows.get(outOfSample) as Row), first_name: 'Y' })
    const report = await verifySample({ migration, buckets: 1_000, recheck: { attempts: 0 } })
    expect(report.counts.keysCompared).toBe(inSample.length)
    expect(report.inconsistencies.map((e) => e.key)).toEqual([changed])
    const again = await verifySample({ migration, buckets: 1_000, recheck: { attempts: 0 } })
    expect(again.counts.keysCompared).toBe(report.counts.keysCompared)
  })
})
