/**
 * `pnpm demo`: the users example end to end on the PostgreSQL of DATABASE_URL. Old
 * `users(user_id, full_name, email)` moves to new `users(id, first_name, last_name, email,
 * legacy_full_name)` while an application keeps using its Kysely, through shadow → compare →
 * ramp → cutover. Creates two databases and drops them at the end.
 */
import {
  backfill,
  copy,
  copyForward,
  createCutover,
  defineMigration,
  fieldMapper,
  rampReadSide,
  rename,
  silentLogger,
  split,
  verifyExhaustive,
  withCutoverContext,
} from '@cutover/core'
import { KyselyTableStore, withCutover } from '@cutover/kysely-plugin'
import { Kysely, PostgresDialect, sql } from 'kysely'
import pg from 'pg'
import { z } from 'zod'

const base = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres'
const urlOf = (database: string) => Object.assign(new URL(base), { pathname: `/${database}` }).toString()
const names = { old: `users_demo_old_${process.pid}`, new: `users_demo_new_${process.pid}` }
const say = (text: string) => console.log(text)
const admin = new pg.Client({ connectionString: base })
await admin.connect()
for (const name of Object.values(names)) await admin.query(`create database "${name}"`)
const pool = (name: string) => new pg.Pool({ connectionString: urlOf(name), max: 5 })
const oldDb = new Kysely<any>({ dialect: new PostgresDialect({ pool: pool(names.old) }) })
const newDb = new Kysely<any>({ dialect: new PostgresDialect({ pool: pool(names.new) }) })

try {
  await sql`create table users (user_id integer primary key, full_name text not null, email text not null)`.execute(oldDb)
  await sql`create table users (id integer primary key, first_name text not null, last_name text, email text not null, legacy_full_name text)`.execute(newDb)
  await oldDb.insertInto('users').values(Array.from({ length: 1_000 }, (_, i) => ({ user_id: i + 1, full_name: `User ${i + 1} Example`, email: `u${i + 1}@example.com` }))).execute()
  say('1,000 users in the old table. The new table splits full_name into first_name / last_name.')

  const users = defineMigration({
    name: 'users',
    gates: false,
    old: new KyselyTableStore(oldDb, 'users', 'user_id'),
    new: new KyselyTableStore(newDb, 'users', 'id'),
    key: { old: 'user_id', new: 'id' },
    mapper: fieldMapper({
      old: z.object({ user_id: z.number().int(), full_name: z.string(), email: z.string() }),
      new: z.object({ id: z.number().int(), first_name: z.string(), last_name: z.string().nullable(), email: z.string(), legacy_full_name: z.string().nullable() }),
      fields: [rename('user_id', 'id'), split('full_name', ['first_name', 'last_name']), copy('email'), copyForward('full_name', 'legacy_full_name')],
    }),
  })
  const cutover = await createCutover({ migrations: [users], control: oldDb, env: {}, pollIntervalMs: false, logger: silentLogger })
  // The application's own Kysely instances, wrapped: its query code does not change.
  const app = new Kysely<any>({ dialect: withCutover(new PostgresDialect({ pool: pool(names.old) }), { cutover, tables: { users: { migration: 'users', side: 'old' } } }) })
  const appV2 = new Kysely<any>({ dialect: withCutover(new PostgresDialect({ pool: pool(names.new) }), { cutover, tables: { users: { migration: 'users', side: 'new' } } }) })
  const count = (name: string, labels: Record<string, string> = {}) => cutover.metrics.counter(name, { migration: 'users', ...labels })
  const settle = async () => {
    await new Promise((resolve) => setTimeout(resolve, 50)) // comparisons run after the caller's read
    await cutover.drain()
  }

  await cutover.setPhase('users', 'shadow', { actor: 'demo' })
  say('\n[shadow] every committed write through the app is mirrored to the new table.')
  // History: keyset batches, insert-if-absent (never over a mirrored row), checkpointed, verified per batch.
  const filled = await backfill({ migration: users, control: oldDb, actor: 'demo' })
  for (let id = 1; id <= 100; id++) await app.updateTable('users').set({ full_name: `Renamed ${id} Person` }).where('user_id', '=', id).execute()
  await app.transaction().execute(async (trx) => {
    await trx.insertInto('users').values({ user_id: 1001, full_name: 'Ada Lovelace', email: 'ada@example.com' }).execute()
    await trx.deleteFrom('users').where('user_id', '=', 1000).execute()
  })
  await settle()
  const ada = await newDb.selectFrom('users').selectAll().where('id', '=', 1001).executeTakeFirst()
  say(`  backfilled ${filled.counts.written} rows in ${filled.batches} verified batch(es); mirrored ${count('mirror.applied', { direction: 'old-to-new' })} committed writes (100 updates, 1 insert, 1 delete).`)
  say(`  new row 1001: first_name=${ada?.first_name}, last_name=${ada?.last_name}, legacy_full_name=${ada?.legacy_full_name}`)

  const verified = await verifyExhaustive({ migration: users })
  say(`  exhaustive verification: ${verified.consistent ? 'consistent' : 'INCONSISTENT'} (${verified.counts.oldRecords} old, ${verified.counts.newRecords} new records)`)

  await cutover.setPhase('users', 'compare', { actor: 'demo', compareSample: 1 })
  say('\n[compare] reads are served from old; each is also run on new, off the request path, and compared.')
  for (let id = 1; id <= 200; id++) await app.selectFrom('users').selectAll().where('user_id', '=', id).execute()
  await sql`update users set email = 'drifted@example.com' where id = 7`.execute(newDb) // simulate a bug on the new side
  await app.selectFrom('users').select(['user_id', 'email']).where('user_id', '=', 7).execute()
  await settle()
  say(`  ${count('compare.equal')} reads equal, ${count('compare.mismatch')} mismatch (key 7, field email, reported by key and field).`)
  await sql`update users set email = 'u7@example.com' where id = 7`.execute(newDb)

  await cutover.setPhase('users', 'ramp', { actor: 'demo', readPercent: 25, compareSample: 0 })
  say('\n[ramp 25%] reads for a quarter of the routing keys are served from new, translated back to the old shape.')
  const okNew = count('read.ok', { side: 'new' })
  const okOld = count('read.ok', { side: 'old' })
  for (let user = 1; user <= 400; user++) {
    await withCutoverContext({ routingKey: user }, () => app.selectFrom('users').select(['user_id', 'full_name']).where('user_id', '=', user).executeTakeFirst())
  }
  say(`  400 reads: ${count('read.ok', { side: 'new' }) - okNew} from new, ${count('read.ok', { side: 'old' }) - okOld} from old; the same user always reads the same side.`)
  const onNew = Array.from({ length: 100 }, (_, i) => i + 1).find((user) => rampReadSide(25, { routingKey: user }) === 'new')
  const split1 = await withCutoverContext({ routingKey: onNew }, () => app.selectFrom('users').select('user_id').where('full_name', '=', 'Ada Lovelace').execute())
  say(`  a filter on the split column cannot be translated: served from old (${split1.length} row), counted as read.untranslatable=${count('read.untranslatable')}.`)

  await cutover.setPhase('users', 'cutover', { actor: 'demo' })
  say('\n[cutover] reads from new; the v2 code writes the new table, mirrored back to old as the rollback net.')
  await appV2.updateTable('users').set({ last_name: 'King-Lovelace' }).where('id', '=', 1001).execute()
  await appV2.insertInto('users').values({ id: 1002, first_name: 'Alan', last_name: 'Turing', email: 'alan@example.com', legacy_full_name: null }).execute()
  await settle()
  const back = await oldDb.selectFrom('users').select(['user_id', 'full_name']).where('user_id', 'in', [1001, 1002]).orderBy('user_id').execute()
  say(`  mirrored back ${count('mirror.applied', { direction: 'new-to-old' })} writes; old table now: ${back.map((r) => `${r.user_id}=${r.full_name}`).join(', ')}`)
  const v1 = await app.selectFrom('users').selectAll().where('user_id', '=', 1001).executeTakeFirst()
  say(`  a v1 read of 1001, served from new: ${JSON.stringify(v1)}`)
  await app.updateTable('users').set({ email: 'x@example.com' }).where('user_id', '=', 1).execute().catch((error: Error & { code?: string }) => {
    say(`  a v1 write to the old table is refused: ${error.code}`)
  })
  say(`\nDead letters: ${await cutover.deadLetters?.countOpen('users')}. Done.`)
  await cutover.close()
  await app.destroy()
  await appV2.destroy()
} finally {
  await oldDb.destroy()
  await newDb.destroy()
  await new Promise((resolve) => setTimeout(resolve, 250))
  for (const name of Object.values(names)) await admin.query(`drop database if exists "${name}" with (force)`)
  await admin.end()
}
