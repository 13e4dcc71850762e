import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { ConfigError, copy, createCutover, createJsonLogger, defineMigration, drop, fieldMapper, type Row, silentLogger, type StoreShape } from '../src/index.js'
import { createTestDatabase, type TestDatabase } from '../../../test/setup/services.js'
import { MemoryStore } from './memory-store.js'

/** A store that describes itself as told (the plugins' stores read their catalog). */
class DescribedStore extends MemoryStore {
  constructor(
    name: string,
    keyField: string,
    public shape: StoreShape | Error,
    rows: Row[] = [],
  ) {
    super(name, keyField, rows)
  }
  async describe(): Promise<StoreShape> {
    if (this.shape instanceof Error) throw this.shape
    return this.shape
  }
}

const mapper = fieldMapper({
  old: z.object({ id: z.number(), name: z.string(), legacy: z.string().optional() }),
  new: z.object({ id: z.number(), name: z.string() }),
  fields: [copy('id'), copy('name'), drop('legacy')],
})
const table = (fields: string[], overrides: Partial<StoreShape> = {}): StoreShape => ({ exists: true, keyExists: fields.includes('id'), keyUnique: true, fields, ...overrides })

async function start(oldShape: StoreShape | Error, newShape: StoreShape | Error, env: Record<string, string>, extra: { control?: TestDatabase['db']; droppedColumns?: string[] } = {}) {
  const migration = defineMigration({
    name: 'things',
    old: new DescribedStore('postgres:public.things', 'id', oldShape),
    new: new DescribedStore('postgres:v2.things', 'id', newShape),
    mapper,
    ...(extra.droppedColumns ? { droppedColumns: extra.droppedColumns } : {}),
  })
  return createCutover({
    migrations: [migration],
    ...(extra.control ? { control: extra.control } : { deadLetters: { write: async () => {} } }),
    env,
    pollIntervalMs: false,
    logger: silentLogger,
  })
}

async function configError(promise: Promise<unknown>): Promise<ConfigError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(error).toBeInstanceOf(ConfigError)
  return error as ConfigError
}

describe('store checks at start-up', () => {
  it('a wrong key column, a missing table and a column the old schema does not name are one ConfigError listing each', async () => {
    const error = await configError(
      start(table(['id', 'name', 'nickname']), { exists: false, keyExists: false, keyUnique: undefined, fields: [] }, { CUTOVER_PHASE: 'shadow' }),
    )
    expect(error.problems.map((p) => p.message)).toEqual([
      expect.stringMatching(/old store postgres:public.things: field "nickname" is not named by the old schema/),
      expect.stringMatching(/new store postgres:v2.things: the table or collection does not exist/),
    ])
    const keyed = await configError(start(table(['uid', 'name']), table(['id', 'name'], { keyUnique: false }), { CUTOVER_PHASE: 'shadow' }))
    expect(keyed.problems.map((p) => p.message)).toEqual([
      expect.stringMatching(/old store .*: key "id" is not a field of the store; fields: uid, name/),
      expect.stringMatching(/field "uid" is not named by the old schema/),
      expect.stringMatching(/new store .*: key "id" is not unique/),
    ])
  })

  it('a column declared dropped (droppedColumns, or a drop rule) is no error; nor a new store missing in off', async () => {
    const cutover = await start(table(['id', 'name', 'legacy', 'nickname']), { exists: false, keyExists: false, keyUnique: undefined, fields: [] }, {}, { droppedColumns: ['nickname'] })
    expect(cutover.migration('things').phase).toBe('off')
    await cutover.close()
  })

  it('the new store must hold every field the new schema writes', async () => {
    const error = await configError(start(table(['id', 'name']), table(['id']), { CUTOVER_PHASE: 'shadow' }))
    expect(error.message).toMatch(/new schema writes field "name", which the store does not have/)
  })

  it('a migration in off says once at start-up that nothing is mirrored yet', async () => {
    const lines: string[] = []
    const logger = createJsonLogger({ write: (line) => void lines.push(line) })
    const migration = defineMigration({ name: 'things', old: new MemoryStore('old', 'id'), new: new MemoryStore('new', 'id'), mapper })
    const off = await createCutover({ migrations: [migration], deadLetters: { write: async () => {} }, env: {}, pollIntervalMs: false, logger })
    expect(lines.filter((line) => line.includes('nothing is mirrored yet')).map((line) => JSON.parse(line).migration)).toEqual(['things'])
    await off.close()
    lines.length = 0
    const shadow = await createCutover({ migrations: [migration], deadLetters: { write: async () => {} }, env: { CUTOVER_PHASE: 'shadow' }, pollIntervalMs: false, logger })
    expect(lines.filter((line) => line.includes('nothing is mirrored yet'))).toEqual([])
    await shadow.close()
  })

  it('an unreachable store does not stop start-up: logged and counted', async () => {
    const cutover = await start(table(['id', 'name']), new Error('connect ECONNREFUSED'), { CUTOVER_PHASE: 'shadow' })
    expect(cutover.metrics.counter('store.describe_failed', { migration: 'things' })).toBe(1)
    await cutover.close()
  })
})

describe('store checks before a phase change', () => {
  let database: TestDatabase
  beforeAll(async () => {
    database = await createTestDatabase('cutover_store_checks')
  })
  afterAll(async () => {
    await database?.drop()
  })

  it('a phase change from the control table that the stores would fail is refused in this process, which keeps its phase', async () => {
    await sql`drop schema if exists cutover cascade`.execute(database.db)
    const newShape = { exists: false, keyExists: false, keyUnique: undefined, fields: [] } as StoreShape
    const cutover = await start(table(['id', 'name']), newShape, {}, { control: database.db })
    // Another process (its new table in place, say) moved the fleet to shadow.
    await database.db.insertInto('cutover.migration_state').values({ migration: 'things', phase: 'shadow', updated_by: 'elsewhere' }).execute()
    await cutover.refresh()
    expect(cutover.migration('things').phase).toBe('off')
    expect(cutover.metrics.counter('control.phase_refused', { migration: 'things', phase: 'shadow' })).toBe(1)
    // setPhase (and so the CLI) refuses it outright.
    await expect(cutover.setPhase('things', 'shadow', { actor: 'alice' })).rejects.toThrow(/does not exist/)
    // Once the table exists the change goes through on the next poll.
    ;(cutover.migration('things').migration.new as DescribedStore).shape = table(['id', 'name'])
    await cutover.refresh()
    expect(cutover.migration('things').phase).toBe('shadow')
    await cutover.close()
  })
})
