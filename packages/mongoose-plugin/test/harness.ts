/**
 * Helpers for the plugin's tests that read both stores whole and compare them under the core's
 * comparator. Databases come from test/setup/services.ts (`createTestMongo(prefix, {
 * monitorCommands: true })`, `createTestDatabase`, `kyselyFor`).
 */
import {
  compareRecords,
  createCutover,
  type Cutover,
  defineMapper,
  defineMigration,
  envName,
  type KeyValue,
  keyString,
  type Migration,
  type Row,
  silentLogger,
  type Store,
  storeRecordKey,
} from '@cutover/core'
import type { Kysely } from 'kysely'
import type { Model } from 'mongoose'
import { z } from 'zod'
import { MongooseModelStore } from '../src/index.js'
import { expect } from 'vitest'

export async function readAll(store: Store): Promise<Row[]> {
  const rows: Row[] = []
  let after: KeyValue | undefined
  for (;;) {
    const page = await store.scan({ ...(after === undefined ? {} : { after }), limit: 500 })
    if (page.length === 0) return rows
    rows.push(...page)
    after = storeRecordKey(store, store.keyField, page.at(-1))
  }
}

/** Every old record mapped forward equals the new record with its key, and no key is on one side only. */
export async function expectStoresEqual(migration: Migration<any, any>, options: { skipRejected?: boolean } = {}): Promise<number> {
  const oldRows = await readAll(migration.old)
  const newRows = new Map((await readAll(migration.new)).map((row) => [keyString(row[migration.key.new] as KeyValue), row]))
  const problems: unknown[] = []
  let compared = 0
  for (const row of oldRows) {
    const key = keyString(row[migration.key.old] as KeyValue)
    let expected: Row
    try {
      expected = migration.mapper.forward(row, { key, migration: migration.name })
    } catch (error) {
      if (options.skipRejected) {
        newRows.delete(key)
        continue
      }
      throw error
    }
    const actual = newRows.get(key)
    newRows.delete(key)
    if (!actual) {
      problems.push({ key, missingInNew: true })
      continue
    }
    const projected = Object.fromEntries(Object.keys(expected).map((field) => [field, actual[field]]))
    const comparison = compareRecords(expected, projected, migration.compare)
    if (!comparison.equal) problems.push({ key, differences: comparison.differences })
    compared++
  }
  for (const key of newRows.keys()) problems.push({ key, missingInOld: true })
  expect(problems).toEqual([])
  return compared
}

const titled = z.object({ _id: z.string(), title: z.string() })

/** An engine in `shadow` mirroring `{ title }` documents of one model into another, unchanged. */
export function shadowCopyCutover(name: string, old: Model<any>, copy: Model<any>, control: Kysely<any>): Promise<Cutover> {
  return createCutover({
    migrations: [
      defineMigration({
        name,
        old: new MongooseModelStore(old),
        new: new MongooseModelStore(copy),
        mapper: defineMapper({ old: titled, new: titled, forward: (r) => r, backward: (r) => r }),
        mirror: { recheckDelayMs: false },
      }),
    ],
    control,
    env: { [`CUTOVER_${envName(name)}_PHASE`]: 'shadow' },
    pollIntervalMs: false,
    logger: silentLogger,
  })
}
