/**
 * Change-log capture: what the triggers cost the application, and what the worker does.
 *
 * 1. Write latency: 5,000 single-row inserts and 5,000 updates by primary key through plain Kysely
 *    on a table without capture (`plain`) and on an identical table with the change-log triggers
 *    (`change-log`), and through the Cutover-wrapped Kysely in `shadow` with change-log capture
 *    (`change-log + wrapper`, which then captures no keys itself). Variants alternate in blocks of
 *    500 in a rotated order; the worker drains the log between blocks, untimed.
 * 2. Worker throughput: 20,000 logged changes applied by one worker, then by two sharing the log
 *    (rows/s, state-based: read the old rows, map, upsert into the new table).
 * 3. Lag under sustained load: writers at a steady ~1,000 writes/s for 10 s while one worker runs;
 *    the lag of applied entries (commit → applied) and the largest log size seen.
 */
import { ChangeLogWorker, copy, createCutover, DeadLetterTable, defineMigration, fieldMapper, installCapture, Metrics, silentLogger, split } from '@cutover/core'
import { KyselyTableStore, withCutover } from '@cutover/kysely-plugin'
import { Kysely, PostgresDialect, sql } from 'kysely'
import pg from 'pg'
import { z } from 'zod'
import { addSample, latencyRows, quantile, rotated } from './latency-table.js'

const OPS = 5_000
const BLOCK = 500
const VARIANTS = ['plain', 'change-log', 'change-log-wrapper'] as const
type Variant = (typeof VARIANTS)[number]
const THROUGHPUT_ROWS = 20_000
const LOAD_SECONDS = 10
const LOAD_RATE = 1_000

const mapper = fieldMapper({
  old: z.object({ id: z.number().int(), full_name: z.string(), email: z.string() }),
  new: z.object({ id: z.number().int(), first_name: z.string(), last_name: z.string().nullable(), email: z.string() }),
  fields: [copy('id'), split('full_name', ['first_name', 'last_name']), copy('email')],
})

export async function benchmark(): Promise<string> {
  const baseUrl = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres'
  const name = `cutover_bench_capture_${process.pid}`
  const admin = new pg.Client({ connectionString: baseUrl })
  await admin.connect()
  const url = Object.assign(new URL(baseUrl), { pathname: `/${name}` }).toString()
  const closers: (() => Promise<void>)[] = []
  const kysely = (max = 10) => {
    const db = new Kysely<any>({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: url, max }) }) })
    closers.push(() => db.destroy())
    return db
  }
  try {
    await admin.query(`create database "${name}"`)
    const db = kysely()
    for (const table of ['users_plain', 'users']) await sql`create table ${sql.table(table)} (id integer primary key, full_name text not null, email text not null)`.execute(db)
    await sql`create table users_v2 (id integer primary key, first_name text not null, last_name text, email text not null)`.execute(db)
    const migration = defineMigration({
      name: 'users',
      old: new KyselyTableStore(db, 'users', 'id'),
      new: new KyselyTableStore(db, 'users_v2', 'id'),
      mapper,
      capture: { mode: 'change-log', workers: 0, sides: ['old'] },
    })
    await installCapture(migration, ['old'])
    const cutover = await createCutover({ migrations: [migration], control: db, env: { CUTOVER_USERS_PHASE: 'shadow' }, pollIntervalMs: false, logger: silentLogger })
    closers.unshift(async () => void (await cutover.close()))
    const wrapped = new Kysely<any>({ dialect: withCutover(new PostgresDialect({ pool: new pg.Pool({ connectionString: url, max: 10 }) }), { cutover, tables: { users: { migration: 'users', side: 'old' } } }) })
    closers.unshift(() => wrapped.destroy())
    const worker = (metrics = new Metrics(), batchSize = 500) =>
      new ChangeLogWorker({ migration, direction: 'old-to-new', deadLetters: new DeadLetterTable(db), phase: () => 'shadow', batchSize, pollIntervalMs: 5, metrics, logger: silentLogger })

    const latency = await measureLatency(db, wrapped, worker())
    const throughput = await measureThroughput(db, worker)
    const load = await measureLag(kysely(12), worker)
    return report(latency, throughput, load)
  } finally {
    for (const close of closers) await close().catch(() => {})
    await new Promise((resolve) => setTimeout(resolve, 250))
    await admin.query(`drop database if exists "${name}" with (force)`).catch(() => {})
    await admin.end()
  }
}

async function measureLatency(db: Kysely<any>, wrapped: Kysely<any>, worker: ChangeLogWorker): Promise<Map<string, number[]>> {
  const samples = new Map<string, number[]>()
  const target = (variant: Variant) => (variant === 'plain' ? { db, table: 'users_plain' } : { db: variant === 'change-log' ? db : wrapped, table: 'users' })
  const idOf = (variant: Variant, i: number) => VARIANTS.indexOf(variant) * 1_000_000 + i
  const run = async (op: 'insert' | 'update', variant: Variant, id: number) => {
    const { db: on, table } = target(variant)
    if (op === 'insert') await on.insertInto(table).values({ id, full_name: `Person ${id} Example`, email: `p${id}@example.com` }).execute()
    else await on.updateTable(table).set({ email: `q${id}@example.com` }).where('id', '=', id).execute()
  }
  for (let i = 0; i < 300; i++) for (const variant of VARIANTS) await run('insert', variant, 900_000 + i + VARIANTS.indexOf(variant) * 1_000_000)
  for (const op of ['insert', 'update'] as const) {
    for (let start = 0; start < OPS; start += BLOCK) {
      for (const variant of rotated(VARIANTS, start / BLOCK)) {
        await worker.drain()
        for (let i = start; i < start + BLOCK; i++) {
          const began = performance.now()
          await run(op, variant, idOf(variant, i))
          addSample(samples, variant, op, performance.now() - began)
        }
      }
    }
  }
  await worker.drain()
  return samples
}

async function measureThroughput(db: Kysely<any>, worker: (metrics?: Metrics, batch?: number) => ChangeLogWorker): Promise<{ one: number; two: number }> {
  const rate = async (count: number) => {
    // A new value each run: an update that changes nothing is not logged.
    await sql`update users set email = 'r' || id || '.' || ${count} || '@example.com' where id in (select id from users order by id limit ${THROUGHPUT_ROWS})`.execute(db)
    const workers = Array.from({ length: count }, () => worker())
    const began = performance.now()
    await Promise.all(workers.map((w) => w.drain()))
    return THROUGHPUT_ROWS / ((performance.now() - began) / 1000)
  }
  await sql`insert into users select 5000000 + i, 'Bulk ' || i || ' Row', 'b' || i || '@example.com' from generate_series(1, ${THROUGHPUT_ROWS}::int) i`.execute(db)
  await worker().drain()
  return { one: await rate(1), two: await rate(2) }
}

async function measureLag(db: Kysely<any>, worker: (metrics?: Metrics) => ChangeLogWorker): Promise<{ p50: number; p99: number; max: number; maxLog: number; writes: number }> {
  const metrics = new Metrics()
  const running = worker(metrics)
  running.start()
  let maxLog = 0
  let writes = 0
  const deadline = performance.now() + LOAD_SECONDS * 1000
  const writer = async (lane: number) => {
    // Ten lanes at ~100 writes/s each: a steady ~1,000 writes/s, not as fast as possible.
    for (let n = 0; performance.now() < deadline; n++) {
      const began = performance.now()
      const id = 7_000_000 + lane * 100_000 + (n % 2_000)
      await db.insertInto('users').values({ id, full_name: `Load ${n} Lane`, email: `l${n}@example.com` }).onConflict((oc) => oc.column('id').doUpdateSet({ email: `u${n}@example.com` })).execute()
      writes++
      const wait = 1000 / (LOAD_RATE / 10) - (performance.now() - began)
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait))
    }
  }
  const sampler = setInterval(() => {
    running.pending().then((n) => (maxLog = Math.max(maxLog, n)), () => undefined)
  }, 250)
  await Promise.all(Array.from({ length: 10 }, (_, lane) => writer(lane)))
  clearInterval(sampler)
  await running.drain()
  await running.stop()
  const lag = metrics.histogram('capture.lag_ms', { migration: 'users', direction: 'old-to-new' })
  return { p50: lag?.p50 ?? 0, p99: lag?.p99 ?? 0, max: lag?.max ?? 0, maxLog, writes }
}

function report(samples: Map<string, number[]>, throughput: { one: number; two: number }, load: { p50: number; p99: number; max: number; maxLog: number; writes: number }): string {
  const table = latencyRows(samples, ['insert', 'update'], VARIANTS, (v) => (v === 'plain' ? 'plain table' : v === 'change-log' ? 'change-log triggers, plain Kysely' : 'change-log triggers, Cutover wrapper (`shadow`)'))
  const worst = Math.max(...['insert', 'update'].map((op) => table.ratios.get(`change-log:${op}`) ?? Infinity))
  const worstWrapped = Math.max(...['insert', 'update'].map((op) => table.ratios.get(`change-log-wrapper:${op}`) ?? Infinity))
  const p99 = (variant: Variant, op: string) => quantile(samples.get(`${variant}:${op}`) ?? [], 0.99)
  return [
    '## Change-log capture',
    '',
    `${OPS.toLocaleString('en')} single-row inserts and updates by primary key per variant, in blocks of ${BLOCK} in a rotated order; the worker drains the log between blocks, untimed. Reproduce: \`pnpm bench capture\`.`,
    '',
    ...table.rows,
    '',
    `Target (median ratio, triggers vs plain) ≤ 1.10 — **${worst <= 1.1 ? 'met' : 'not met'}** (${worst.toFixed(3)}); through the wrapper ${worstWrapped.toFixed(3)}. p99 insert ${p99('plain', 'insert').toFixed(2)} → ${p99('change-log', 'insert').toFixed(2)} ms, update ${p99('plain', 'update').toFixed(2)} → ${p99('change-log', 'update').toFixed(2)} ms.`,
    '',
    `Worker throughput (${THROUGHPUT_ROWS.toLocaleString('en')} logged updates, batches of 500, state-based apply into a second table): one worker ${Math.round(throughput.one).toLocaleString('en')} rows/s, two sharing the log ${Math.round(throughput.two).toLocaleString('en')} rows/s.`,
    '',
    `Lag under a sustained ~${LOAD_RATE.toLocaleString('en')} writes/s for ${LOAD_SECONDS} s (${load.writes.toLocaleString('en')} writes, one worker): median ${load.p50.toFixed(0)} ms, p99 ${load.p99.toFixed(0)} ms, max ${load.max.toFixed(0)} ms; largest log seen ${load.maxLog.toLocaleString('en')} entries.`,
  ].join('\n')
}
