import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import {
  AuditLog,
  backfill,
  canonicalHash,
  copy,
  DeadLetterTable,
  defineMigration,
  ensureSchema,
  fieldMapper,
  QuarantineTable,
  reconcile,
  type Row,
  split,
  verifyExhaustive,
} from '../src/index.js'
import { createTestDatabase, type TestDatabase } from '../../../test/setup/services.js'
import { MemoryStore } from './memory-store.js'

const mapper = fieldMapper({
  old: z.object({ id: z.number().int(), full_name: z.string() }),
  new: z.object({ id: z.number().int(), first_name: z.string(), last_name: z.string().nullable() }),
  fields: [copy('id'), split('full_name', ['first_name', 'last_name'])],
})

let control: TestDatabase
let counter = 0
beforeAll(async () => {
  control = await createTestDatabase('cutover_reconcile')
  await ensureSchema(control.db)
})
afterAll(async () => {
  await control?.drop()
})

function pair(n: number) {
  const rows: Row[] = Array.from({ length: n }, (_, i) => ({ id: i + 1, full_name: `Ada${i + 1} Lovelace` }))
  const old = new MemoryStore('old', 'id', rows)
  const target = new MemoryStore('new', 'id', rows.map((row) => mapper.forward(row)))
  const migration = defineMigration({ name: `reconcile${++counter}`, old, new: target, mapper })
  return { old, new: target, migration }
}

describe('reconcile', () => {
  it('repairs every inconsistency of the latest report from the authoritative old side and audits before/after hashes', async () => {
    const { old, new: target, migration } = pair(500)
    target.rows.delete('3')
    old.rows.delete('4')
    target.rows.set('5', { id: 5, first_name: 'Wrong', last_name: null })
    const report = await verifyExhaustive({ migration, control: control.db, recheck: { attempts: 0 } })
    expect(report.inconsistencies).toHaveLength(3)

    const result = await reconcile({ migration, control: control.db, env: {} })
    expect(result).toMatchObject({ authoritative: 'old', attempted: 3, repaired: 3, stillInconsistent: [] })
    expect(target.rows.get('3')).toEqual({ id: 3, first_name: 'Ada3', last_name: 'Lovelace' })
    expect(target.rows.has('4')).toBe(false)
    expect(target.rows.get('5')).toEqual({ id: 5, first_name: 'Ada5', last_name: 'Lovelace' })
    const repair5 = result.repairs.find((r) => r.key === '5')
    expect(repair5?.before.new).toBe(canonicalHash({ id: 5, first_name: 'Wrong', last_name: null }))
    expect(repair5?.after.new).toBe(canonicalHash({ id: 5, first_name: 'Ada5', last_name: 'Lovelace' }))
    expect(result.repairs.find((r) => r.key === '4')).toMatchObject({ before: { old: null }, after: { old: null, new: null }, outcome: 'repaired' })

    expect((await verifyExhaustive({ migration })).consistent).toBe(true)
    const audit = (await new AuditLog(control.db).entries(migration.name)).at(-1)
    expect(audit).toMatchObject({ action: 'reconciliation', details: { authoritative: 'old', repaired: 3, reportId: report.id } })
  })

  it('takes the new side as authoritative once the phase in the control table says cutover', async () => {
    const { old, new: target, migration } = pair(50)
    target.rows.set('9', { id: 9, first_name: 'Newer', last_name: 'Value' })
    await sql`insert into cutover.migration_state (migration, phase, updated_by) values (${migration.name}, 'cutover', 'test')`.execute(control.db)
    const result = await reconcile({ migration, control: control.db, keys: [9], env: {} })
    expect(result.authoritative).toBe('new')
    expect(old.rows.get('9')).toEqual({ id: 9, full_name: 'Newer Value' })
  })

  it('re-copies quarantined records once their data is fixed and resolves them; dead-letters the ones still bad', async () => {
    const { old, new: target, migration } = pair(20)
    target.rows.clear()
    old.rows.set('7', { id: 7, full_name: null })
    old.rows.set('8', { id: 8, full_name: null })
    const summary = await backfill({ migration, control: control.db })
    expect(summary.counts.quarantined).toBe(2)
    old.rows.set('7', { id: 7, full_name: 'Fixed Name' })
    const result = await reconcile({ migration, control: control.db, keys: [], includeQuarantine: true, env: {} })
    expect(result.repairs.map((r) => [r.key, r.outcome])).toEqual([
      ['7', 'repaired'],
      ['8', 'dead-lettered'],
    ])
    expect(target.rows.get('7')).toEqual({ id: 7, first_name: 'Fixed', last_name: 'Name' })
    expect((await new QuarantineTable(control.db).open(migration.name)).map((q) => q.key)).toEqual(['8'])
  })
})

describe('reconcile with dead letters', () => {
  it('replays open dead letters as keys to repair and resolves those it repaired', async () => {
    const { new: target, migration } = pair(30)
    target.rows.delete('12')
    const table = new DeadLetterTable(control.db)
    await table.write([{ migration: migration.name, direction: 'old-to-new', key: '12', op: 'upsert', reasonCode: 'STORE_FAILED', reason: 'connection refused', attempts: 5 }])
    const result = await reconcile({ migration, control: control.db, keys: [], includeDeadLetters: true, env: {} })
    expect(result).toMatchObject({ attempted: 1, repaired: 1 })
    expect(target.rows.get('12')).toEqual({ id: 12, first_name: 'Ada12', last_name: 'Lovelace' })
    expect(await table.countOpen(migration.name)).toBe(0)
  })
})

describe('audit verify', () => {
  it('detects a modified entry and a deleted entry', async () => {
    const audit = new AuditLog(control.db)
    const { migration } = pair(10)
    for (let i = 0; i < 3; i++) await audit.append({ actor: 'test', migration: migration.name, action: 'backfill', details: { i } })
    expect((await audit.verify()).ok).toBe(true)
    const [, second, third] = (await audit.entries(migration.name)) as [unknown, { id: string }, { id: string }]

    await sql`update cutover.audit set details = '{"i": 99}' where id = ${second.id}`.execute(control.db)
    expect(await audit.verify()).toMatchObject({ ok: false, entryId: second.id, problem: 'entry was changed' })
    await sql`update cutover.audit set details = '{"i": 1}' where id = ${second.id}`.execute(control.db)
    expect((await audit.verify()).ok).toBe(true)

    await sql`delete from cutover.audit where id = ${second.id}`.execute(control.db)
    expect(await audit.verify()).toMatchObject({ ok: false, entryId: third.id, problem: 'previous entry was changed or deleted' })
  })
})
