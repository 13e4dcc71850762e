/**
 * The wrapper's contract with Kysely, against a recording fake driver (no database): what SQL
 * reaches the driver in each phase, what the caller gets back, and that every optional driver
 * method, `streamQuery` and extra arguments pass through.
 */
import { ConfigError, copy, createCutover, type Cutover, defineMigration, fieldMapper, silentLogger, WriteRejectedError } from '@cutover/core'
import {
  CamelCasePlugin,
  CompiledQuery,
  type DatabaseConnection,
  type Dialect,
  type Driver,
  Kysely,
  PostgresAdapter,
  PostgresIntrospector,
  PostgresQueryCompiler,
  type QueryResult,
  sql,
  SqliteQueryCompiler,
} from 'kysely'
import { beforeEach, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { MemoryStore } from '../../core/test/memory-store.js'
import { asStoreQuery, withCutover } from '../src/index.js'
import { classifyRawStatement } from '../src/write/raw-statement.js'
import { TransactionBuffer } from '../src/write/transaction-buffer.js'

/** What the catalog says of a plain table with an `integer` key: statement keys may stand for RETURNING. */
const INTEGER_KEY = { type: 'int4', deterministic: true, relkind: 'r', children: false, rules: false, rewriting_triggers: false }

class RecordingConnection implements DatabaseConnection {
  readonly queries: { sql: string; extra: unknown[] }[] = []
  /** The wrapper's key column lookups (kept apart from the application's queries), with their parameters. */
  readonly lookups: unknown[][] = []
  rows: Record<string, unknown>[] = []
  /** The lookup's answer; none (a table not found) keeps RETURNING. */
  keyColumn: Record<string, unknown> | undefined

  async executeQuery<R>(query: CompiledQuery, ...extra: unknown[]): Promise<QueryResult<R>> {
    if (query.sql.includes('cutover: key column')) {
      this.lookups.push([...query.parameters])
      // The catalog answers one row per key column asked for.
      return { rows: (this.keyColumn ? [{ column: 'user_id', ...this.keyColumn }] : []) as R[] }
    }
    this.queries.push({ sql: query.sql, extra })
    return { rows: this.rows as R[], numAffectedRows: BigInt(this.rows.length) }
  }

  async *streamQuery<R>(query: CompiledQuery, chunkSize?: number): AsyncIterableIterator<QueryResult<R>> {
    this.queries.push({ sql: `stream(${chunkSize}) ${query.sql}`, extra: [] })
    yield { rows: [{ n: 1 }] as R[] }
    yield { rows: [{ n: 2 }] as R[] }
  }
}

function recordingDialect(connection: RecordingConnection, savepoints: boolean): Dialect {
  const driver: Driver = {
    init: async () => {},
    acquireConnection: async () => connection,
    beginTransaction: async (conn) => void (await conn.executeQuery(CompiledQuery.raw('begin'))),
    commitTransaction: async (conn) => void (await conn.executeQuery(CompiledQuery.raw('commit'))),
    rollbackTransaction: async (conn) => void (await conn.executeQuery(CompiledQuery.raw('rollback'))),
    releaseConnection: async () => {},
    destroy: async () => {},
    ...(savepoints
      ? {
          savepoint: async (conn: DatabaseConnection, name: string) => void (await conn.executeQuery(CompiledQuery.raw(`savepoint ${name}`))),
          rollbackToSavepoint: async (conn: DatabaseConnection, name: string) => void (await conn.executeQuery(CompiledQuery.raw(`rollback to ${name}`))),
          releaseSavepoint: async (conn: DatabaseConnection, name: string) => void (await conn.executeQuery(CompiledQuery.raw(`release ${name}`))),
        }
      : {}),
  }
  return {
    createDriver: () => driver,
    createQueryCompiler: () => new PostgresQueryCompiler(),
    createAdapter: () => new PostgresAdapter(),
    createIntrospector: (db) => new PostgresIntrospector(db),
  }
}

const mapper = fieldMapper({
  old: z.object({ user_id: z.number(), name: z.string() }),
  new: z.object({ user_id: z.number(), name: z.string() }),
  fields: [copy('user_id'), copy('name')],
})

/** A Cutover on memory stores and a Kysely whose `users` table is wrapped over a recording driver. */
async function recordingSetup(): Promise<{ cutover: Cutover; connection: RecordingConnection; db: Kysely<any> }> {
  const cutover = await createCutover({
    migrations: [defineMigration({ name: 'users', old: new MemoryStore('old', 'user_id'), new: new MemoryStore('new', 'user_id'), mapper, mirror: { recheckDelayMs: false } })],
    deadLetters: { write: async () => {} },
    env: {},
    pollIntervalMs: false,
    logger: silentLogger,
  })
  const connection = new RecordingConnection()
  const db = new Kysely<any>({ dialect: withCutover(recordingDialect(connection, true), { cutover, tables: { users: { migration: 'users', side: 'old' } } }) })
  return { cutover, connection, db }
}

describe('withCutover against a recording driver', () => {
  let cutover: Cutover
  let connection: RecordingConnection
  let db: Kysely<any>
  const enqueued = () => cutover.metrics.counter('mirror.enqueued', { migration: 'users', direction: 'old-to-new' })

  beforeEach(async () => {
    ;({ cutover, connection, db } = await recordingSetup())
  })

  const sqlOf = () => connection.queries.map((q) => q.sql)

  it('sends the query untouched in `off`, and leaves other tables alone in every phase', async () => {
    await db.updateTable('users').set({ name: 'x' }).where('user_id', '=', 1).execute()
    await cutover.setPhase('users', 'shadow', { actor: 'test' })
    await db.updateTable('orders').set({ name: 'x' }).execute()
    expect(sqlOf()).toEqual(['update "users" set "name" = $1 where "user_id" = $2', 'update "orders" set "name" = $1'])
    expect(enqueued()).toBe(0)
  })

  it('adds RETURNING of the key in `shadow` and gives the caller its own result', async () => {
    await cutover.setPhase('users', 'shadow', { actor: 'test' })
    connection.rows = [{ __cutover_key: 7 }]
    const update = await db.updateTable('users as u').set({ name: 'x' }).where('u.user_id', '=', 7).executeTakeFirst()
    expect(update.numUpdatedRows).toBe(1n)
    connection.rows = [{ name: 'x', __cutover_key: 7 }]
    const returned = await db.deleteFrom('users').where('user_id', '=', 7).returning('name').execute()
    expect(returned).toEqual([{ name: 'x' }])
    connection.rows = [{ user_id: 8, name: 'y', __cutover_key: 8 }]
    const inserted = await db.insertInto('users').values({ user_id: 8, name: 'y' }).returningAll().execute()
    expect(inserted).toEqual([{ user_id: 8, name: 'y' }])
    expect(sqlOf()).toEqual([
      'update "users" as "u" set "name" = $1 where "u"."user_id" = $2 returning "u"."user_id" as "__cutover_key"',
      'delete from "users" where "user_id" = $1 returning "name", "users"."user_id" as "__cutover_key"',
      'insert into "users" ("user_id", "name") values ($1, $2) returning *, "user_id" as "__cutover_key"',
    ])
    expect(enqueued()).toBe(3)
    await cutover.close()
  })

  it('works under the application’s own Kysely plugins (CamelCasePlugin)', async () => {
    await cutover.setPhase('users', 'shadow', { actor: 'test' })
    const camel = db.withPlugin(new CamelCasePlugin())
    connection.rows = [{ user_id: 8, full_name: 'y', __cutover_key: 8 }]
    const inserted = await camel.insertInto('users').values({ userId: 8, fullName: 'y' }).returningAll().execute()
    expect(inserted).toEqual([{ userId: 8, fullName: 'y' }])
    expect(sqlOf()).toEqual(['insert into "users" ("user_id", "full_name") values ($1, $2) returning *, "user_id" as "__cutover_key"'])
    expect(enqueued()).toBe(1)
    await cutover.close()
  })

  it('reports an update of the key column: the old keys cannot be attributed', async () => {
    await cutover.setPhase('users', 'shadow', { actor: 'test' })
    connection.rows = [{ __cutover_key: 70 }]
    await db.updateTable('users').set({ user_id: 70 }).where('user_id', '=', 7).execute()
    expect(enqueued()).toBe(1) // the new key
    expect(cutover.metrics.counter('write.unmirrored', { migration: 'users', target: 'users' })).toBe(1)
    await cutover.close()
  })

  it('passes extra arguments (a cancellation signal) through to the real connection', async () => {
    await cutover.setPhase('users', 'shadow', { actor: 'test' })
    const signal = new AbortController().signal
    await db.connection().execute(async (conn) => {
      const wrapped = await (conn.getExecutor() as any).provideConnection(async (c: DatabaseConnection) => c)
      await (wrapped.executeQuery as (q: CompiledQuery, ...extra: unknown[]) => Promise<unknown>)(CompiledQuery.raw('select 1'), signal)
    })
    expect(connection.queries.at(-1)).toEqual({ sql: 'select 1', extra: [signal] })
  })

  it('streams through the real connection; a streamed write on a migrated table is reported as unmirrored', async () => {
    const chunks: unknown[] = []
    for await (const row of db.selectFrom('users').selectAll().stream(10)) chunks.push(row)
    expect(chunks).toEqual([{ n: 1 }, { n: 2 }])
    expect(sqlOf()).toEqual(['stream(10) select * from "users"'])
    await cutover.setPhase('users', 'shadow', { actor: 'test' })
    const streamed = db.insertInto('users').values({ user_id: 1, name: 'x' }).returning('user_id')
    for await (const _ of (db.getExecutor() as any).stream(streamed.compile(), 5)) void _
    expect(cutover.metrics.counter('write.unmirrored', { migration: 'users', target: 'users' })).toBe(1)
  })

  it('offers savepoints exactly when the real driver does', async () => {
    await cutover.setPhase('users', 'shadow', { actor: 'test' })
    const trx = await db.startTransaction().execute()
    const sp = await trx.savepoint('a').execute()
    await sp.rollbackToSavepoint('a').execute()
    await trx.commit().execute()
    expect(sqlOf()).toEqual(['begin', 'savepoint a', 'rollback to a', 'commit'])

    const plainDb = new Kysely<any>({ dialect: withCutover(recordingDialect(new RecordingConnection(), false), { cutover, tables: {} }) })
    const plainTrx = await plainDb.startTransaction().execute()
    await expect(plainTrx.savepoint('a').execute()).rejects.toThrow(/savepoint` method is not supported/)
    await plainTrx.rollback().execute()
  })

  it('lets Cutover’s own store queries through untouched, even where the application would be refused', async () => {
    for (const phase of ['shadow', 'compare', 'ramp', 'cutover'] as const) await cutover.setPhase('users', phase, { actor: 'test' })
    await expect(db.updateTable('users').set({ name: 'x' }).execute()).rejects.toBeInstanceOf(WriteRejectedError)
    await asStoreQuery(() => db.updateTable('users').set({ name: 'mirrored back' }).where('user_id', '=', 1).execute())
    expect(sqlOf()).toEqual(['update "users" set "name" = $1 where "user_id" = $2'])
  })

  it('records transactions of a driver that drives them through its own API, not SQL, and calls it on the real connection', async () => {
    class NativeConnection extends RecordingConnection {
      readonly calls: string[] = []
      #open = false // a private field: a method called on anything but the real object throws
      begin(): void {
        this.#open = true
        this.calls.push('begin')
      }
      commit(): void {
        if (!this.#open) throw new Error('no transaction')
        this.calls.push('commit')
      }
    }
    const native = new NativeConnection()
    const base = recordingDialect(native, false)
    const inner = base.createDriver()
    const dialect: Dialect = {
      ...base,
      createDriver: () => ({
        ...inner,
        beginTransaction: async (conn) => (conn as NativeConnection).begin(),
        commitTransaction: async (conn) => (conn as NativeConnection).commit(),
        rollbackTransaction: async () => {},
      }),
    }
    const wrapped = new Kysely<any>({ dialect: withCutover(dialect, { cutover, tables: { users: { migration: 'users', side: 'old' } } }) })
    await cutover.setPhase('users', 'shadow', { actor: 'test' })
    await wrapped.transaction().execute(async (trx) => {
      native.rows = [{ __cutover_key: 3 }]
      await trx.updateTable('users').set({ name: 'x' }).where('name', '=', 'y').execute()
      expect(enqueued()).toBe(0) // held until COMMIT
    })
    expect(native.calls).toEqual(['begin', 'commit'])
    expect(enqueued()).toBe(1)
    await cutover.close()
  })

  it('checks its configuration at start-up', () => {
    expect(() => withCutover(recordingDialect(connection, true), { cutover, tables: { users: { migration: 'userz', side: 'old' } } })).toThrow(ConfigError)
    expect(() => withCutover(recordingDialect(connection, true), { cutover, tables: { 'a.b.c': { migration: 'users', side: 'old' } } })).toThrow(/schema\.name/)
    expect(() => withCutover(recordingDialect(connection, true), { cutover, tables: { users: { migration: 'users', side: 'both' as never } } })).toThrow(/side/)
  })
})

describe('withCutover: keys a write names stand for RETURNING once the key column allows it', () => {
  let cutover: Cutover
  let connection: RecordingConnection
  let db: Kysely<any>
  const enqueued = () => cutover.metrics.counter('mirror.enqueued', { migration: 'users', direction: 'old-to-new' })
  const sqlOf = () => connection.queries.map((q) => q.sql)

  /** One write to start the lookup (it goes with RETURNING), then the lookup's answer is in. */
  async function learn(keyColumn: Record<string, unknown>): Promise<void> {
    connection.keyColumn = keyColumn
    connection.rows = [{ __cutover_key: 0 }]
    await db.updateTable('users').set({ name: 'x' }).where('user_id', '=', 0).execute()
    await new Promise((resolve) => setTimeout(resolve, 0))
    expect(connection.lookups).toEqual([['public', 'users', ['user_id']]])
    connection.queries.length = 0
  }

  beforeEach(async () => {
    ;({ cutover, connection, db } = await recordingSetup())
    await cutover.setPhase('users', 'shadow', { actor: 'test' })
  })

  it('runs updates, deletes and inserts that name their keys as they are, and records those keys', async () => {
    await learn(INTEGER_KEY)
    const before = enqueued()
    connection.rows = [{ name: 'x' }]
    expect(await db.updateTable('users as u').set({ name: 'x' }).where('u.user_id', '=', 7).where('name', '<>', 'x').returning('name').execute()).toEqual([{ name: 'x' }])
    connection.rows = [{}, {}]
    await db.deleteFrom('users').where((eb) => eb.and([eb('name', '=', 'x'), eb('user_id', 'in', [8, 9])])).execute()
    await db.insertInto('users').values([{ user_id: 10, name: 'a' }, { user_id: '11', name: 'b' }]).execute()
    await db.insertInto('users').values({ user_id: 12, name: 'c' }).onConflict((oc) => oc.column('user_id').doUpdateSet({ name: 'c' })).execute()
    await db.insertInto('users').values({ user_id: 13, name: 'd' }).onConflict((oc) => oc.doNothing()).execute()
    expect(sqlOf()).toEqual([
      'update "users" as "u" set "name" = $1 where "u"."user_id" = $2 and "name" <> $3 returning "name"',
      'delete from "users" where ("name" = $1 and "user_id" in ($2, $3))',
      'insert into "users" ("user_id", "name") values ($1, $2), ($3, $4)',
      'insert into "users" ("user_id", "name") values ($1, $2) on conflict ("user_id") do update set "name" = $3',
      'insert into "users" ("user_id", "name") values ($1, $2) on conflict do nothing',
    ])
    expect(enqueued() - before).toBe(7)
    await cutover.close()
  })

  it('records nothing for a write that touched no row', async () => {
    await learn(INTEGER_KEY)
    const before = enqueued()
    connection.rows = []
    await db.updateTable('users').set({ name: 'x' }).where('user_id', '=', 7).execute()
    expect(sqlOf()).toEqual(['update "users" set "name" = $1 where "user_id" = $2'])
    expect(enqueued()).toBe(before)
  })

  it('keeps RETURNING where the named keys could miss a row the write touched', async () => {
    await learn(INTEGER_KEY)
    connection.rows = [{ __cutover_key: 1 }]
    await db.updateTable('users').set({ name: 'x' }).where((eb) => eb.or([eb('user_id', '=', 1), eb('name', '=', 'y')])).execute()
    await db.updateTable('users').set({ name: 'x' }).from('orders').where('user_id', '=', 1).execute() // unqualified: maybe orders.user_id
    await db.updateTable('users as u').set({ name: 'x' }).from('users').where('users.user_id', '=', 1).execute() // the FROM side's key
    await db.updateTable('users').set({ user_id: 2 }).where('user_id', '=', 1).execute() // moves the row to another key
    await db.deleteFrom('users').where('user_id', '>', 1).execute()
    await db.deleteFrom('users').where('user_id', '=', sql<number>`1`).execute()
    await db.insertInto('users').values({ name: 'serial' }).execute()
    await db.insertInto('users').values({ user_id: 3, name: 'c' }).onConflict((oc) => oc.column('name').doUpdateSet({ name: 'c' })).execute()
    await db.insertInto('users').values({ user_id: 3, name: 'c' }).onConflict((oc) => oc.column('user_id').doUpdateSet({ user_id: 4 })).execute()
    await db.insertInto('users').columns(['user_id', 'name']).expression(db.selectFrom('orders').select(['user_id', 'name'])).execute()
    await db.insertInto('users').values({ user_id: '03', name: 'not the form the column returns' }).execute()
    await db.with('k', (w) => w.selectFrom('orders').select('user_id')).updateTable('users').set({ name: 'x' }).where('user_id', '=', 1).modifyEnd(sql`or true`).execute()
    expect(sqlOf().filter((text) => !text.includes('as "__cutover_key"'))).toEqual([])
    expect(sqlOf()).toHaveLength(12)
  })

  it('looks nothing up on a database that is not PostgreSQL', async () => {
    const sqlite = new Kysely<any>({
      dialect: withCutover({ ...recordingDialect(connection, true), createQueryCompiler: () => new SqliteQueryCompiler() }, { cutover, tables: { users: { migration: 'users', side: 'old' } } }),
    })
    connection.keyColumn = INTEGER_KEY
    connection.rows = [{ __cutover_key: 1 }]
    for (let i = 0; i < 2; i++) {
      await sqlite.deleteFrom('users').where('user_id', '=', 1).execute()
      await new Promise((resolve) => setTimeout(resolve, 0))
    }
    expect(connection.lookups).toEqual([])
    expect(sqlOf()).toEqual(Array(2).fill('delete from "users" where "user_id" = ? returning "users"."user_id" as "__cutover_key"'))
  })

  it('keeps RETURNING when the table can rewrite keys, or the column returns values in another form', async () => {
    await learn({ ...INTEGER_KEY, rewriting_triggers: true })
    connection.rows = [{ __cutover_key: 1 }]
    await db.insertInto('users').values({ user_id: 1, name: 'a' }).execute()
    expect(sqlOf()).toEqual(['insert into "users" ("user_id", "name") values ($1, $2) returning "user_id" as "__cutover_key"'])

    connection = new RecordingConnection()
    db = new Kysely<any>({ dialect: withCutover(recordingDialect(connection, true), { cutover, tables: { users: { migration: 'users', side: 'old' } } }) })
    await learn({ ...INTEGER_KEY, type: 'uuid' })
    const uuid = 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'
    connection.rows = [{ __cutover_key: uuid }]
    await db.deleteFrom('users').where('user_id', '=', uuid.toUpperCase()).execute() // PostgreSQL answers in lowercase
    await db.deleteFrom('users').where('user_id', '=', uuid).execute()
    expect(sqlOf()).toEqual([
      'delete from "users" where "user_id" = $1 returning "users"."user_id" as "__cutover_key"',
      'delete from "users" where "user_id" = $1',
    ])
  })
})

describe('classifyRawStatement', () => {
  it('recognizes transaction control and savepoints', () => {
    expect(classifyRawStatement('BEGIN')).toEqual({ kind: 'begin' })
    expect(classifyRawStatement('start transaction isolation level serializable')).toEqual({ kind: 'begin' })
    expect(classifyRawStatement('commit')).toEqual({ kind: 'commit' })
    expect(classifyRawStatement('END')).toEqual({ kind: 'commit' })
    expect(classifyRawStatement('rollback')).toEqual({ kind: 'rollback' })
    expect(classifyRawStatement('ROLLBACK TO SAVEPOINT "Sp 1"')).toEqual({ kind: 'rollback-to', name: 'Sp 1' })
    expect(classifyRawStatement('rollback to s2')).toEqual({ kind: 'rollback-to', name: 's2' })
    expect(classifyRawStatement('savepoint S3')).toEqual({ kind: 'savepoint', name: 's3' })
    expect(classifyRawStatement('release savepoint s3')).toEqual({ kind: 'release', name: 's3' })
    expect(classifyRawStatement('commit prepared \'x\'')).toBeUndefined()
  })

  it('names the tables raw writes touch', () => {
    expect(classifyRawStatement('insert into users (a) values (1)')).toEqual({ kind: 'write', tables: ['users'] })
    expect(classifyRawStatement('UPDATE "App"."Users" SET x = 1')).toEqual({ kind: 'write', tables: ['App.Users'] })
    expect(classifyRawStatement('with d as (delete from only public.users returning *) insert into archive select * from d')).toEqual({
      kind: 'write',
      tables: ['public.users', 'archive'],
    })
    expect(classifyRawStatement('truncate table users')).toEqual({ kind: 'write', tables: ['users'] })
    expect(classifyRawStatement('select * from users for update')).toBeUndefined()
  })
})

describe('TransactionBuffer', () => {
  const write = (key: number) => ({ kind: 'write' as const, table: {} as never, event: { key, op: 'upsert' as const } })
  const keys = (buffer: TransactionBuffer) => buffer.writes.map((w) => (w.kind === 'write' ? w.event.key : undefined))

  it('trims to a savepoint, keeps it for another rollback, and forgets released ones', () => {
    const buffer = new TransactionBuffer()
    buffer.add(write(1))
    buffer.savepoint('a')
    buffer.add(write(2))
    buffer.savepoint('b')
    buffer.add(write(3))
    buffer.rollbackTo('a')
    expect(keys(buffer)).toEqual([1])
    buffer.add(write(4))
    buffer.rollbackTo('a') // still there after a rollback to it
    expect(keys(buffer)).toEqual([1])
    buffer.rollbackTo('b') // gone with the rollback to a
    expect(keys(buffer)).toEqual([1])
    buffer.savepoint('c')
    buffer.add(write(5))
    buffer.release('c')
    buffer.rollbackTo('c') // released: nothing to roll back to
    expect(keys(buffer)).toEqual([1, 5])
  })
})
