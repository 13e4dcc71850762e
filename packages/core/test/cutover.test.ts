import { sql } from 'kysely'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { z } from 'zod'
import {
  ConfigError,
  copy,
  createCutover,
  type Cutover,
  defineMigration,
  fieldMapper,
  PhaseTransitionError,
  rename,
  silentLogger,
  split,
  withCutoverContext,
  WriteRejectedError,
} from '../src/index.js'
import { parseArgs } from '../src/cli/args.js'
import { OPTION_TABLE } from '../src/cli/main.js'
import type { CommandContext } from '../src/cli/command.js'
import { phaseCommand } from '../src/cli/phase-command.js'
import { ProgressRenderer } from '../src/cli/progress-renderer.js'
import { createTestDatabase, type TestDatabase } from '../../../test/setup/services.js'
import { MemoryStore } from './memory-store.js'

const mapper = fieldMapper({
  old: z.object({ user_id: z.number(), full_name: z.string(), email: z.string() }),
  new: z.object({ id: z.number(), first_name: z.string(), last_name: z.string().nullable(), email: z.string() }),
  fields: [rename('user_id', 'id'), split('full_name', ['first_name', 'last_name']), copy('email')],
})

describe('Cutover runtime (control tables in PostgreSQL)', () => {
  let database: TestDatabase
  let oldStore: MemoryStore
  let newStore: MemoryStore
  let cutover: Cutover
  let random = 0

  const users = () =>
    defineMigration({
      name: 'users',
      gates: false,
      old: oldStore,
      new: newStore,
      mapper,
      key: { old: 'user_id', new: 'id' },
      compare: { sensitive: ['email'] },
      guards: { maxErrorRate: 0.2, minSamples: 20 },
      mirror: { retry: { attempts: 2, baseDelayMs: 1, maxDelayMs: 2 }, recheckDelayMs: false },
    })

  beforeAll(async () => {
    database = await createTestDatabase('cutover_runtime')
  })
  afterAll(async () => {
    await cutover?.close()
    await database?.drop()
  })
  beforeEach(async () => {
    await cutover?.close()
    await sql`drop schema if exists cutover cascade`.execute(database.db)
    oldStore = new MemoryStore('old', 'user_id')
    newStore = new MemoryStore('new', 'id')
    random = 0
    cutover = await createCutover({
      migrations: [users()],
      control: database.db,
      env: { CUTOVER_USERS_PHASE: 'shadow' },
      pollIntervalMs: false,
      logger: silentLogger,
      random: () => random,
    })
  })

  it('starts in the env-flag phase and creates its control tables', async () => {
    expect(cutover.migration('users').phase).toBe('shadow')
    const { rows } = await sql<{ table_name: string }>`select table_name from information_schema.tables where table_schema = 'cutover' order by 1`.execute(database.db)
    expect(rows.map((r) => r.table_name)).toEqual(expect.arrayContaining(['audit', 'dead_letters', 'migration_state']))
  })

  it('fails at start-up on bad flags, unknown migrations and a missing dead-letter home', async () => {
    await expect(createCutover({ migrations: [users()], control: database.db, env: { CUTOVER_USERS_PHASE: 'shaddow' }, pollIntervalMs: false })).rejects.toBeInstanceOf(ConfigError)
    await expect(createCutover({ migrations: [users(), users()], control: database.db, env: {}, pollIntervalMs: false })).rejects.toThrow(/defined twice/)
    await expect(createCutover({ migrations: [users()], env: {}, pollIntervalMs: false })).rejects.toThrow(/durable/)
    expect(() => cutover.migration('orders')).toThrow(ConfigError)
  })

  it('rejects an invalid migration definition naming the field', () => {
    let error: unknown
    try {
      defineMigration({ ...users(), name: '1users', guards: { maxErrorRate: 3 } })
    } catch (e) {
      error = e
    }
    expect(error).toBeInstanceOf(ConfigError)
    expect((error as Error).message).toContain('name')
    expect((error as Error).message).toContain('guards.maxErrorRate')
  })

  it('changes phase for the fleet through the control table, audited, and checks transitions', async () => {
    await cutover.setPhase('users', 'compare', { actor: 'alice', compareSample: 0.5, reason: 'mirror healthy for a day' })
    expect(cutover.migration('users').phase).toBe('compare')
    await expect(cutover.setPhase('users', 'complete', { actor: 'alice' })).rejects.toBeInstanceOf(PhaseTransitionError)

    // A second process sees it on refresh.
    const other = await createCutover({ migrations: [users()], control: database.db, env: { CUTOVER_USERS_PHASE: 'shadow' }, pollIntervalMs: false, logger: silentLogger })
    expect(other.migration('users').phase).toBe('compare')
    expect(other.migration('users').compareSample).toBe(0.5)
    await cutover.setPhase('users', 'ramp', { actor: 'alice', readPercent: 25 })
    expect(other.migration('users').phase).toBe('compare')
    await other.refresh()
    expect(other.migration('users').phase).toBe('ramp')
    expect(other.migration('users').readPercent).toBe(25)
    await other.close()

    const entries = await cutover.audit!.entries('users')
    expect(entries.map((e) => [e.actor, e.action, (e.details as any).before.phase, (e.details as any).after.phase])).toEqual([
      ['alice', 'phase_change', 'shadow', 'compare'],
      ['alice', 'phase_change', 'compare', 'ramp'],
    ])
    expect(await cutover.audit!.verify()).toMatchObject({ ok: true, entries: 2 })
  })

  it('setPhase refuses settings the env flags would refuse (NaN, 150, three decimals, a sample above 1), storing nothing', async () => {
    for (const change of [{ readPercent: Number.NaN }, { readPercent: 150 }, { readPercent: 5.555 }, { compareSample: 1.5 }]) {
      await expect(cutover.setPhase('users', 'compare', { actor: 'alice', ...change })).rejects.toBeInstanceOf(ConfigError)
    }
    await expect(cutover.setPhase('users', 'sideways' as never, { actor: 'alice' })).rejects.toBeInstanceOf(ConfigError)
    expect(await database.db.selectFrom('cutover.migration_state').selectAll().execute()).toEqual([])
    expect(cutover.migration('users').phase).toBe('shadow')
    await cutover.setPhase('users', 'compare', { actor: 'alice', readPercent: 5.55 })
    expect(cutover.migration('users').readPercent).toBe(5.55)
  })

  it('a control row another process would not accept is refused in this one: logged, counted, settings kept', async () => {
    await cutover.setPhase('users', 'compare', { actor: 'alice', compareSample: 0.5 })
    await sql`update cutover.migration_state set read_percent = 150`.execute(database.db)
    await cutover.refresh()
    expect(cutover.migration('users')).toMatchObject({ phase: 'compare', readPercent: 0, compareSample: 0.5 })
    await sql`update cutover.migration_state set read_percent = 'NaN', phase = 'ramp'`.execute(database.db)
    await cutover.refresh()
    expect(cutover.migration('users')).toMatchObject({ phase: 'compare', readPercent: 0 })
    expect(cutover.metrics.counter('control.setting_refused', { migration: 'users' })).toBe(2)
    await sql`update cutover.migration_state set read_percent = 12.5, phase = 'ramp'`.execute(database.db)
    await cutover.refresh()
    expect(cutover.migration('users')).toMatchObject({ phase: 'ramp', readPercent: 12.5 })
  })

  it('the CLI phase command refuses --read-percent 150 and hex or padded values before anything is written', async () => {
    const context = (...argv: string[]): CommandContext => {
      const stream = { isTTY: false, write: () => true } as unknown as NodeJS.WriteStream
      return {
        config: { migrations: [users()], control: database.db } as unknown as CommandContext['config'],
        args: parseArgs(['phase', 'users', ...argv], OPTION_TABLE),
        stdout: stream,
        stderr: stream,
        json: true,
        progress: new ProgressRenderer(stream, { json: true }),
        actor: 'cli-test',
        logger: silentLogger,
        signal: new AbortController().signal,
      }
    }
    await cutover.setPhase('users', 'compare', { actor: 't' })
    for (const argv of [['ramp', '--read-percent', '150'], ['ramp', '--compare-sample', '2'], ['ramp', '--read-percent', '5.555']]) {
      await expect(phaseCommand(context(...argv))).rejects.toThrow(/is not valid/)
    }
    // Not even a number: the option parser refuses it before the command runs.
    expect(() => context('ramp', '--read-percent', '0x10')).toThrow(/needs a number/)
    const [row] = await database.db.selectFrom('cutover.migration_state').selectAll().execute()
    expect(row).toMatchObject({ phase: 'compare' })
    expect(await phaseCommand(context('ramp', '--read-percent', '12.5'))).toBe(0)
  })

  it('detects a changed or deleted audit entry', async () => {
    await cutover.setPhase('users', 'compare', { actor: 'alice' })
    await cutover.setPhase('users', 'ramp', { actor: 'bob', readPercent: 5 })
    await cutover.setPhase('users', 'compare', { actor: 'carol' })
    await sql`update cutover.audit set actor = 'mallory' where actor = 'bob'`.execute(database.db)
    expect(await cutover.audit!.verify()).toMatchObject({ ok: false, problem: 'entry was changed' })
    await sql`update cutover.audit set actor = 'bob' where actor = 'mallory'`.execute(database.db)
    expect((await cutover.audit!.verify()).ok).toBe(true)
    await sql`delete from cutover.audit where actor = 'bob'`.execute(database.db)
    expect(await cutover.audit!.verify()).toMatchObject({ ok: false, problem: 'previous entry was changed or deleted' })
  })

  it('mirrors writes in the direction the phase says', async () => {
    const runtime = cutover.migration('users')
    oldStore.rows.set('1', { user_id: 1, full_name: 'Ada Lovelace', email: 'ada@x.io' })
    runtime.recordWrite('old', { key: 1, op: 'upsert' })
    runtime.recordWrite('new', { key: 1, op: 'upsert' }) // shadow: new is not authoritative, nothing flows back
    await cutover.drain()
    expect(newStore.rows.get('1')).toEqual({ id: 1, first_name: 'Ada', last_name: 'Lovelace', email: 'ada@x.io' })

    await cutover.setPhase('users', 'compare', { actor: 't' })
    await cutover.setPhase('users', 'ramp', { actor: 't' })
    await cutover.setPhase('users', 'cutover', { actor: 't' })
    newStore.rows.set('1', { id: 1, first_name: 'Ada', last_name: 'King', email: 'ada@x.io' })
    runtime.recordWrite('new', { key: 1, op: 'upsert' })
    await cutover.drain()
    expect(oldStore.rows.get('1')).toEqual({ user_id: 1, full_name: 'Ada King', email: 'ada@x.io' })

    // After cutover the old side is not authoritative: strict policy rejects writes there.
    expect(() => runtime.checkWrite('old', 'users', 1)).toThrow(WriteRejectedError)
    expect(() => runtime.checkWrite('new', 'users', 1)).not.toThrow()
  })

  it('off mirrors nothing', async () => {
    const off = await createCutover({ migrations: [users()], control: database.db, env: { CUTOVER_USERS_PHASE: 'off' }, pollIntervalMs: false, logger: silentLogger })
    await sql`delete from cutover.migration_state`.execute(database.db)
    await off.refresh()
    oldStore.rows.set('1', { user_id: 1, full_name: 'A B', email: 'a@x.io' })
    off.migration('users').recordWrite('old', { key: 1, op: 'upsert' })
    await off.drain()
    expect(newStore.rows.size).toBe(0)
    await off.close()
  })

  it('routes ramp reads by routing key and samples comparisons', async () => {
    await cutover.setPhase('users', 'compare', { actor: 't', compareSample: 0.5 })
    const runtime = cutover.migration('users')
    expect(runtime.readSide({ routingKey: 'u1' })).toBe('old')
    random = 0.4
    expect(runtime.sampleComparison()).toBe(true)
    random = 0.6
    expect(runtime.sampleComparison()).toBe(false)
    await cutover.setPhase('users', 'ramp', { actor: 't', readPercent: 50 })
    const sides = Array.from({ length: 1_000 }, (_, i) => runtime.readSide({ routingKey: `u${i}` }))
    const onNew = sides.filter((s) => s === 'new').length
    expect(onNew).toBeGreaterThan(430)
    expect(onNew).toBeLessThan(570)
    await withCutoverContext({ routingKey: 'u7' }, async () => {
      expect(runtime.readSide()).toBe(sides[7])
    })
  })

  it('compares a read by key through the mapper and redacts sensitive fields', () => {
    const runtime = cutover.migration('users')
    const result = runtime.compareRead(
      [
        { user_id: 1, full_name: 'Ada Lovelace', email: 'ada@x.io' },
        { user_id: 2, full_name: 'Grace Hopper', email: 'grace@x.io' },
        { user_id: 3, full_name: 'Alan Turing', email: 'alan@x.io' },
      ],
      [
        { id: 1, first_name: 'Ada', last_name: 'Lovelace', email: 'ada@x.io', created_at: new Date() },
        { id: 2, first_name: 'Grace', last_name: 'Hoper', email: 'g@x.io' },
        { id: 4, first_name: 'Extra', last_name: null, email: 'e@x.io' },
      ],
    )
    expect(result.equal).toBe(false)
    expect(result.missingInNew).toEqual(['3'])
    expect(result.missingInOld).toEqual(['4'])
    expect(result.different).toEqual([
      {
        key: '2',
        differences: [
          { path: 'email', kind: 'changed', redacted: true },
          { path: 'last_name', kind: 'changed', expected: 'Hopper', actual: 'Hoper' },
        ],
      },
    ])
    expect(JSON.stringify(result)).not.toContain('grace@x.io')
    expect(cutover.metrics.counter('compare.mismatch', { migration: 'users' })).toBe(1)
  })

  it('does not report a key whose mirrored change is queued or just applied: that is lag, not a mismatch', async () => {
    await cutover.setPhase('users', 'shadow', { actor: 't' })
    await cutover.setPhase('users', 'compare', { actor: 't' })
    const runtime = cutover.migration('users')
    await oldStore.upsert([{ user_id: 1, full_name: 'Ada Byron', email: 'ada@x.io' }], { kind: 'overwrite' })
    const stale = [{ id: 1, first_name: 'Ada', last_name: 'Lovelace', email: 'ada@x.io' }]
    const read = () => runtime.compareRead([{ user_id: 1, full_name: 'Ada Byron', email: 'ada@x.io' }], stale)

    runtime.recordWrite('old', { key: 1, op: 'upsert' }) // queued, not applied yet
    expect(read()).toMatchObject({ equal: true, different: [], settling: ['1'] })
    const readsBegan = performance.now()
    await cutover.drain() // applied after the reads began: one store may show it, the other not
    expect(runtime.compareRead([{ user_id: 1, full_name: 'Ada Byron', email: 'ada@x.io' }], stale, { since: readsBegan })).toMatchObject({ equal: true, settling: ['1'] })
    expect(read()).toMatchObject({ equal: true, settling: ['1'] }) // no start given: the last second
    expect(cutover.metrics.counter('compare.mismatch', { migration: 'users' })).toBe(0)
    expect(cutover.metrics.counter('compare.settling', { migration: 'users' })).toBe(3)
    // Reads that began after the apply should agree: the difference is real.
    const late = runtime.compareRead([{ user_id: 1, full_name: 'Ada Byron', email: 'ada@x.io' }], stale, { since: performance.now() })
    expect(late).toMatchObject({ equal: false, settling: [], different: [{ key: '1' }] })
    expect(cutover.metrics.counter('compare.mismatch', { migration: 'users' })).toBe(1)

    // A key with no change in flight is reported, however recently others were written.
    const other = runtime.compareRead([{ user_id: 2, full_name: 'Grace Hopper', email: 'g@x.io' }], [{ id: 2, first_name: 'Grace', last_name: 'Hoper', email: 'g@x.io' }])
    expect(other).toMatchObject({ equal: false, settling: [], different: [{ key: '2' }] })
    expect(cutover.metrics.counter('compare.mismatch', { migration: 'users' })).toBe(2)
  })

  it('compares counts, counting mismatches like row comparisons', () => {
    const runtime = cutover.migration('users')
    expect(runtime.compareCount(10, 10)).toBe(true)
    expect(runtime.compareCount(10, 9, { query: 'countDocuments({})' })).toBe(false)
    expect(cutover.metrics.counter('compare.equal', { migration: 'users' })).toBe(1)
    expect(cutover.metrics.counter('compare.mismatch', { migration: 'users' })).toBe(1)
  })

  it('rolls back by itself when the new store fails too often, and records it for the fleet', async () => {
    await cutover.setPhase('users', 'compare', { actor: 't' })
    await cutover.setPhase('users', 'ramp', { actor: 't', readPercent: 50 })
    const runtime = cutover.migration('users')
    for (let i = 0; i < 30; i++) runtime.recordRead('new', i % 3 !== 0, 2)
    expect(runtime.phase).toBe('rollback')
    await new Promise((resolve) => setTimeout(resolve, 100))
    const state = await database.db.selectFrom('cutover.migration_state').selectAll().executeTakeFirstOrThrow()
    expect(state.phase).toBe('rollback')
    expect(state.updated_by).toBe('cutover:guard')
    const entries = await cutover.audit!.entries('users')
    expect(entries.at(-1)).toMatchObject({ action: 'guard_rollback', actor: 'cutover:guard' })
    expect(String((entries.at(-1)!.details as any).reason)).toMatch(/error rate/)
  })

  it('does not trip below the minimum sample count or below the threshold', async () => {
    await cutover.setPhase('users', 'compare', { actor: 't' })
    await cutover.setPhase('users', 'ramp', { actor: 't', readPercent: 50 })
    const runtime = cutover.migration('users')
    // 19 observations, 4 failed (21%): above the threshold but below the minimum sample count.
    for (let i = 0; i < 15; i++) runtime.recordRead('new', true, 2)
    for (let i = 0; i < 4; i++) runtime.recordRead('new', false, 2)
    expect(runtime.phase).toBe('ramp')
    // 119 observations, 4 failed (3.4%): enough samples, below the threshold.
    for (let i = 0; i < 100; i++) runtime.recordRead('new', true, 2)
    expect(runtime.phase).toBe('ramp')
    // Old-store failures do not count against the new store.
    for (let i = 0; i < 100; i++) runtime.recordRead('old', false, 2)
    expect(runtime.phase).toBe('ramp')
  })

  it('dead-letters failed mirror writes durably and replays them to equality', async () => {
    const runtime = cutover.migration('users')
    for (let i = 1; i <= 20; i++) oldStore.rows.set(String(i), { user_id: i, full_name: `User ${i}`, email: `u${i}@x.io` })
    oldStore.rows.set('21', { user_id: 21, full_name: 42 as unknown as string, email: 'bad@x.io' })
    newStore.failing = new Error('connect ECONNREFUSED 127.0.0.1:5433')
    for (let i = 1; i <= 21; i++) runtime.recordWrite('old', { key: i, op: 'upsert' })
    await cutover.drain()
    expect(newStore.rows.size).toBe(0)
    expect(await cutover.deadLetters!.countOpen('users')).toBe(21)
    expect(await cutover.deadLetters!.countByReason('users')).toEqual({ STORE_FAILED: 20, MAPPER_REJECTED: 1 })
    const [bad] = (await cutover.deadLetters!.open('users')).filter((e) => e.reasonCode === 'MAPPER_REJECTED')
    expect(bad).toMatchObject({ key: '21', fields: ['full_name'], payload: { user_id: 21, full_name: 42, email: { $redacted: true } } }) // email is sensitive: left out at rest without CUTOVER_PAYLOAD_KEY

    newStore.failing = undefined
    const result = await cutover.replayDeadLetters('users', { actor: 'ops' })
    expect(result).toEqual({ replayed: 20, stillFailing: 1 })
    for (let i = 1; i <= 20; i++) expect(newStore.rows.get(String(i))).toEqual(mapper.forward(oldStore.rows.get(String(i))!))
    // The record the mapper rejects stays open (and was rejected again), never silently dropped.
    const open = await cutover.deadLetters!.open('users')
    expect(open.map((e) => [e.key, e.attempts])).toEqual([['21', 2]])
    const audit = await cutover.audit!.entries('users')
    expect(audit.at(-1)).toMatchObject({ action: 'dead_letter_replay', actor: 'ops', details: { replayed: 20, stillFailing: 1 } })
  })
})
