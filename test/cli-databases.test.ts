/**
 * What the `cutover` command says when the databases or the environment are wrong: an unreachable
 * control database, old store or new store is a `DATABASE_UNREACHABLE` error naming which one,
 * its host and port and what to check (not a bare `connect ECONNREFUSED`), and the `CUTOVER_*`
 * env flags are checked as `createCutover` checks them, before any command runs.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import mongoose from 'mongoose'
import pg from 'pg'
import { DatabaseUnreachableError, networkFailure } from '../packages/core/src/cli/cli-errors.js'
import { main } from '../packages/core/src/cli/main.js'
import { createPeopleTables } from './fixtures/people.js'
import { createTestDatabase, type TestDatabase } from './setup/services.js'

let oldDb: TestDatabase
let newDb: TestDatabase
/** A TCP port where nothing listens: connecting is refused at once. */
const NOWHERE = 'postgres://postgres@127.0.0.1:1/nowhere'

beforeAll(async () => {
  ;[oldDb, newDb] = await Promise.all([createTestDatabase('cutover_clidb_old'), createTestDatabase('cutover_clidb_new')])
  await createPeopleTables(oldDb.db, newDb.db, 10)
})
afterAll(async () => {
  await Promise.all([oldDb?.drop(), newDb?.drop()])
})
const saved = { ...process.env }
afterEach(() => {
  for (const name of Object.keys(process.env)) if (!(name in saved)) delete process.env[name]
  Object.assign(process.env, saved)
})

async function cutover(env: Record<string, string>, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  Object.assign(process.env, { CUTOVER_CLI_CONTROL_URL: newDb.url, CUTOVER_CLI_OLD_URL: oldDb.url, CUTOVER_CLI_NEW_URL: newDb.url }, env)
  let stdout = ''
  let stderr = ''
  const stream = (append: (s: string) => void) => ({ isTTY: false, write: (chunk: string) => (append(chunk), true) }) as unknown as NodeJS.WriteStream
  const code = await main([...args, '--config', 'test/fixtures/cli-stores.config.ts'], { stdout: stream((s) => (stdout += s)), stderr: stream((s) => (stderr += s)) })
  return { code, stdout, stderr }
}

describe('an unreachable database is named', () => {
  it('the control database, with host, port and what to check', async () => {
    const { code, stderr } = await cutover({ CUTOVER_CLI_CONTROL_URL: NOWHERE }, 'status')
    expect(code).toBe(1)
    expect(stderr).toContain('cannot reach the control database (config.control) at 127.0.0.1:1 (ECONNREFUSED): nothing is listening there')
    expect(stderr).toContain('[DATABASE_UNREACHABLE]')
  })

  it.each([
    ['old', 'CUTOVER_CLI_OLD_URL', 'postgres:public.people'],
    ['new', 'CUTOVER_CLI_NEW_URL', 'postgres:public.people_v2'],
  ])('the %s store of the migration, before a job starts', async (side, variable, store) => {
    for (const command of ['backfill', 'verify']) {
      const { code, stderr } = await cutover({ [variable]: NOWHERE }, command, 'people')
      expect(code, stderr).toBe(1)
      expect(stderr).toContain(`cannot reach the ${side} store of migration "people" (${store}) at 127.0.0.1:1 (ECONNREFUSED)`)
    }
  })

  it('with every database reachable the same commands run', async () => {
    const { code, stderr } = await cutover({}, 'backfill', 'people')
    expect(code, stderr).toBe(0)
  })
})

describe('network failures are recognised from real drivers', () => {
  it('pg: a refused connection, with its address and port', async () => {
    const client = new pg.Client({ connectionString: NOWHERE })
    const error = await client.connect().then(() => undefined, (e: unknown) => e)
    expect(networkFailure(error)).toEqual({ reason: 'ECONNREFUSED', host: '127.0.0.1', port: 1 })
  })

  it('MongoDB: server selection, with the address from the message', async () => {
    const client = new mongoose.mongo.MongoClient('mongodb://127.0.0.1:1/x', { serverSelectionTimeoutMS: 200 })
    const error = await client.connect().then(() => undefined, (e: unknown) => e)
    await client.close()
    expect(networkFailure(error)).toEqual({ reason: 'SERVER_SELECTION', host: '127.0.0.1', port: 1 })
  })

  it("Mongoose: a model's operation timing out while its connection never connected", async () => {
    const connection = mongoose.createConnection('mongodb://127.0.0.1:1/x', { serverSelectionTimeoutMS: 200 })
    connection.on('error', () => undefined)
    const model = connection.model('Unreached', new mongoose.Schema({ a: String }, { bufferTimeoutMS: 200 }))
    const error = await model.findOne().exec().then(() => undefined, (e: unknown) => e)
    await connection.close().catch(() => undefined)
    const failure = networkFailure(error)
    expect(failure?.reason).toMatch(/^(NOT_CONNECTED|SERVER_SELECTION)$/)
    expect(new DatabaseUnreachableError({ role: 'old store', migration: 'm', store: 'mongodb:unreached' }, {}, failure!.reason, error).message).toMatch(
      /^cannot reach the old store of migration "m" \(mongodb:unreached\): .*(never connected|no MongoDB server answered)/,
    )
  })

  it('other errors are not network failures', () => {
    expect(networkFailure(new Error('relation "people" does not exist'))).toBeUndefined()
  })
})

describe('env flags are validated as createCutover validates them', () => {
  it.each([
    [{ CUTOVER_PEOPLE_PHASE: 'shaddow' }, 'CUTOVER_PEOPLE_PHASE'],
    [{ CUTOVER_PEOPEL_PHASE: 'shadow' }, 'CUTOVER_PEOPEL_PHASE'],
    [{ CUTOVER_READ_PERCENT: '150' }, 'CUTOVER_READ_PERCENT'],
  ])('%j stops every command, naming the variable', async (env, variable) => {
    for (const command of ['status', 'backfill']) {
      const { code, stderr } = await cutover(env, command, 'people')
      expect(code).toBe(1)
      expect(stderr).toContain(variable)
      expect(stderr).toContain('CONFIG_INVALID')
    }
  })
})
