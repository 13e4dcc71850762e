/**
 * Long commands show progress with a total (issue 14): a backfill without `estimateTotal` takes the
 * old store's own estimate, and verify reports segments done of the total, both sides.
 */
import { MongooseModelStore } from '@cutover/mongoose-plugin'
import { KyselyTableStore } from '@cutover/kysely-plugin'
import { sql } from 'kysely'
import { Schema } from 'mongoose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { main } from '../packages/core/src/cli/main.js'
import { createPeopleTables } from './fixtures/people.js'
import { createTestDatabase, createTestMongo, type TestDatabase, type TestMongo } from './setup/services.js'

const ROWS = 4_000
let oldDb: TestDatabase
let newDb: TestDatabase
let mongo: TestMongo

beforeAll(async () => {
  ;[oldDb, newDb, mongo] = await Promise.all([createTestDatabase('cutover_progress_old'), createTestDatabase('cutover_progress_new'), createTestMongo('cutover_progress')])
  await createPeopleTables(oldDb.db, newDb.db, ROWS)
  await sql`analyze people`.execute(oldDb.db)
  process.env.CUTOVER_TEST_OLD_URL = oldDb.url
  process.env.CUTOVER_TEST_NEW_URL = newDb.url
}, 60_000)
afterAll(async () => {
  await Promise.all([oldDb?.drop(), newDb?.drop(), mongo?.drop()])
})

async function cutover(...args: string[]): Promise<{ code: number; lines: any[]; stderr: string }> {
  let out = ''
  let err = ''
  const stream = (append: (s: string) => void) => ({ isTTY: false, write: (chunk: string) => (append(chunk), true) }) as unknown as NodeJS.WriteStream
  const code = await main([...args, '--config', 'test/fixtures/people-estimate.config.ts'], { stdout: stream((s) => (out += s)), stderr: stream((s) => (err += s)) })
  return { code, lines: out.split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line)), stderr: err }
}

describe('progress of long commands', () => {
  it('a backfill without estimateTotal shows the store estimate as its total, and verify shows segments done of total', { timeout: 120_000 }, async () => {
    const backfill = await cutover('backfill', 'people')
    expect(backfill.code, backfill.stderr).toBe(0)
    const progress = backfill.lines.filter((l) => l.type === 'progress')
    expect(progress.length).toBeGreaterThan(0)
    expect(progress[0].total).toBeGreaterThan(ROWS * 0.9)
    expect(progress[0].total).toBeLessThan(ROWS * 1.1)
    expect(progress[0].etaSeconds).toEqual(expect.any(Number))

    const verify = await cutover('verify', 'people')
    expect(verify.code, verify.stderr).toBe(0)
    const stages = verify.lines.filter((l) => l.type === 'progress' && l.stage === 'checksums')
    expect(stages.length).toBeGreaterThan(0)
    expect(stages.every((l) => l.total === 2 * 1_024 && l.note.includes('segments'))).toBe(true)
    expect(stages.at(-1)).toMatchObject({ done: 2 * 1_024, total: 2 * 1_024 })
  })

  it('the stores estimate their size from metadata', { timeout: 60_000 }, async () => {
    expect(await new KyselyTableStore(oldDb.db, 'people', 'id').estimateCount()).toBe(ROWS)
    expect(await new KyselyTableStore(oldDb.db, 'no_such_table', 'id').estimateCount()).toBeUndefined()
    const Thing = mongo.connection.model('Thing', new Schema({ n: Number }, { collection: 'things' }))
    await Thing.collection.insertMany(Array.from({ length: 250 }, (_, n) => ({ n })))
    expect(await new MongooseModelStore(Thing).estimateCount()).toBe(250)
  })
})
