/**
 * `pnpm demo`: a live migration of a small application, end to end, in under a minute, with
 * nothing but Node (embedded PostgreSQL; `DATABASE_URL` for a server, `MONGODB_URL` or Go for the
 * MongoDB part). Users' `full_name` is split; appointments' free-text timestamps are typed, and the
 * ones no parser understands are quarantined with their reason. Traffic and a v1 API client run
 * throughout: shadow → backfill → verify → compare → ramp 5/15/40/75/100 → a fault on the new
 * store that the guard rolls back by itself → recovery → cutover with the reverse mirror →
 * complete. Every move passes the phase gates. It ends with the path of an HTML report.
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { resolve } from 'node:path'
import {
  backfill,
  type Cutover,
  createCutover,
  defineMigration,
  type GateOverrides,
  PhaseGateError,
  phasePlan,
  reconcile,
  silentLogger,
  verifyExhaustive,
} from '@cutover/core'
import { KyselyTableStore, withCutover } from '@cutover/kysely-plugin'
import { Kysely, sql } from 'kysely'
import { renderHtmlReport } from '../../packages/core/src/cli/html-report.js'
import { readReportData } from '../../packages/core/src/control/report-data.js'
import { openDatabases } from './databases.js'
import { runMongoPart } from './mongo.js'
import { appointmentsMapper, createTables, usersMapper } from './model.js'
import { PhaseReporter } from './phase-reporter.js'
import { Traffic } from './traffic.js'
import { startApi, v1ClientRound } from './v1-api.js'

const USERS = 2_000
/** The design source's dwell times are days; a demo has seconds. Thresholds stay as they are. */
const DEMO_GATES: GateOverrides = {
  shadow: { minDwellMs: 0, minMirroredWrites: 30 },
  compare: { minDwellMs: 0, minComparedReads: 100 },
  ramp: { minFullReadsMs: 0 },
  cutover: { minDwellMs: 0 },
  complete: { revertWindowMs: 0 },
}
const say = (line = '') => process.stdout.write(`${line}\n`)
const started = Date.now()

const dbs = await openDatabases()
say(`Cutover demo on ${dbs.where}.`)
await createTables(dbs.old.db, dbs.new.db, USERS)
say(`${USERS.toLocaleString('en')} users and as many appointments in the old schema; the new one splits full_name and types starts_at.`)

const users = defineMigration({
  name: 'users',
  old: new KyselyTableStore(dbs.old.db, 'users', 'user_id'),
  new: new KyselyTableStore(dbs.new.db, 'users', 'id'),
  key: { old: 'user_id', new: 'id' },
  mapper: usersMapper,
  gates: DEMO_GATES,
  guards: { maxErrorRate: 0.05, minSamples: 20, windowMs: 5_000 },
})
const appointments = defineMigration({
  name: 'appointments',
  old: new KyselyTableStore(dbs.old.db, 'appointments', 'id'),
  new: new KyselyTableStore(dbs.new.db, 'appointments', 'id'),
  mapper: appointmentsMapper,
  gates: DEMO_GATES,
})
const control = dbs.new.db
const cutover = await createCutover({ migrations: [users, appointments], control, env: {}, pollIntervalMs: false, signalIntervalMs: 1_000, logger: silentLogger })
const tables = { users: 'users', appointments: 'appointments' } as const
const app = new Kysely<any>({ dialect: withCutover(dbs.old.dialect(), { cutover, tables: Object.fromEntries(Object.entries(tables).map(([t, m]) => [t, { migration: m, side: 'old' as const }])) }) })
const appV2 = new Kysely<any>({ dialect: withCutover(dbs.new.dialect(), { cutover, tables: Object.fromEntries(Object.entries(tables).map(([t, m]) => [t, { migration: m, side: 'new' as const }])) }) })
const traffic = new Traffic(app, appV2, USERS)
const api = await startApi(app, appV2, () => traffic.writesNew)
const reporter = new PhaseReporter(cutover, control, say)
let v1Id = 900_000

try {
  await phase('shadow', 'every committed write is mirrored to the new schema, off the request path', async () => {
    await move('users', 'shadow')
    await move('appointments', 'shadow')
    await Promise.all([traffic.run(2_500), fillHistory()])
  })
  await operatorFixesAppointments()
  await verifyBoth()

  await phase('compare', 'reads are served from old and compared with new for every read', async () => {
    await move('users', 'compare', { compareSample: 1 })
    await traffic.run(1_500)
    await verifyBoth()
  })

  for (const percent of [5, 15, 40, 75, 100]) {
    await phase(`ramp ${percent} %`, `reads of ${percent} % of the users are served from new (the same user always reads the same side)`, async () => {
      await move('users', 'ramp', { readPercent: percent, compareSample: 0.2 })
      await traffic.run(1_000)
    })
  }

  await phase('fault', 'the new users table disappears; the guard rolls the migration back by itself', async () => {
    await sql`alter table users rename to users_lost`.execute(dbs.new.db)
    const deadline = Date.now() + 15_000
    while (cutover.migration('users').phase !== 'rollback' && Date.now() < deadline) await traffic.run(300)
    const tripped = (await control.selectFrom('cutover.audit').select(['actor', 'details']).where('action', '=', 'guard_rollback').orderBy('id', 'desc').limit(1).executeTakeFirst()) as
      | { actor: string; details: { reason?: string } }
      | undefined
    say(`  phase now ${cutover.migration('users').phase}, by ${tripped?.actor ?? '?'}: ${tripped?.details.reason ?? '(no audit entry)'}; application requests failed: ${traffic.counts.failed}`)
  })

  await phase('recovery', 'the table is back; dead letters replayed, verified, reads back at 100 %', async () => {
    await sql`alter table users_lost rename to users`.execute(dbs.new.db)
    const replayed = await cutover.replayDeadLetters('users', { actor: 'demo' })
    say(`  replayed ${replayed.replayed} dead letters (${replayed.stillFailing} still failing)`)
    await move('users', 'ramp', { readPercent: 100, compareSample: 0.2 })
    await traffic.run(1_000)
    await verifyBoth()
  })

  await phase('cutover', 'the new schema is authoritative; its writes are mirrored back to old as the rollback net', async () => {
    await move('users', 'cutover')
    traffic.writesNew = true
    await traffic.run(2_000)
    await verifyBoth()
  })

  await phase('complete', 'the old users table is the archive of the move: it refuses writes', async () => {
    await move('users', 'complete')
    const refused = await sql`update users set email = 'late@example.com' where user_id = 1`.execute(dbs.old.db).then(
      () => 'accepted (!)',
      (error: { code?: string }) => `refused (SQLSTATE ${error.code})`,
    )
    say(`  a direct write to the old users table: ${refused}`)
    await traffic.run(800)
  })

  const plan = await phasePlan(control, appointments, cutover.migration('appointments').phase)
  const waiting = plan.next?.gates.filter((g) => !g.met).map((g) => `${g.gate} (${g.measured}; needs ${g.required})`)
  say(`\nappointments stays in ${plan.phase}; its next move${plan.next ? ` (${plan.next.to})` : ''} waits on: ${waiting?.join('; ') || 'nothing'}.`)
  await runMongoPart(say)

  const report = resolve('.cache/demo-report.html')
  mkdirSync(resolve('.cache'), { recursive: true })
  await cutover.recordSignals()
  writeFileSync(report, renderHtmlReport(await readReportData(control, users, cutover.migration('users').phase, { total: USERS })))
  say(`\nDone in ${((Date.now() - started) / 1000).toFixed(1)} s. Report: ${report}`)
} finally {
  await api.close()
  await cutover.close().catch(() => undefined)
  await app.destroy().catch(() => undefined)
  await appV2.destroy().catch(() => undefined)
  await dbs.close()
}

/** A phase of the walk: its heading, what happens, the v1 client's round, and what it measured. */
async function phase(name: string, what: string, body: () => Promise<void>): Promise<void> {
  say(`\n[${name}] ${what}`)
  reporter.begin()
  await body()
  const v1 = await v1ClientRound(api, (v1Id += 2))
  await reporter.end(v1, api.oldShapeRequests())
}

/** A gated move: the gates are asked first, and a refusal is printed with what each gate measured. */
async function move(name: string, to: Parameters<Cutover['setPhase']>[1], settings: { readPercent?: number; compareSample?: number } = {}): Promise<void> {
  await cutover.recordSignals()
  try {
    await cutover.setPhase(name, to, { actor: 'demo', ...settings })
  } catch (error) {
    if (!(error instanceof PhaseGateError)) throw error
    say(`  gates refuse ${name} ${error.from} → ${error.to}: ${error.unmet.map((g) => `${g.gate} (${g.measured})`).join('; ')}`)
    throw error
  }
}

async function fillHistory(): Promise<void> {
  const [u, a] = await Promise.all([backfill({ migration: users, control, actor: 'demo' }), backfill({ migration: appointments, control, actor: 'demo' })])
  say(`  backfill: users ${u.counts.written} written; appointments ${a.counts.written} written, ${a.counts.quarantined} quarantined`)
}

/** The forms are fixed and the rejected rows corrected at the source; reconciliation repairs them. */
async function operatorFixesAppointments(): Promise<void> {
  traffic.formsFixed = true
  const rejected = await control.selectFrom('cutover.quarantine').select('key').where('migration', '=', 'appointments').where('resolved_at', 'is', null).execute()
  const dead = await control.selectFrom('cutover.dead_letters').select('key').where('migration', '=', 'appointments').where('resolved_at', 'is', null).execute()
  const keys = [...new Set([...rejected, ...dead].map((r) => Number(r.key)))]
  say(`\n[operator] ${keys.length} appointments had timestamps no parser knows; corrected at the source, then reconciled.`)
  if (keys.length > 0) await dbs.old.db.updateTable('appointments').set({ starts_at: '2024-01-01 09:00' }).where('id', 'in', keys).execute()
  const repaired = await reconcile({ migration: appointments, control, env: {}, keys, includeQuarantine: true, includeDeadLetters: true, actor: 'demo' })
  await cutover.replayDeadLetters('appointments', { actor: 'demo' })
  say(`  reconciled ${repaired.repaired} of ${repaired.attempted}; still inconsistent: ${repaired.stillInconsistent.length}`)
}

async function verifyBoth(): Promise<void> {
  await cutover.drain()
  for (const migration of [users, appointments]) {
    const report = await verifyExhaustive({ migration, control })
    say(`  verification of ${migration.name}: ${report.consistent ? 'consistent' : 'INCONSISTENT'} (${report.counts.oldRecords} old, ${report.counts.newRecords} new, ${report.counts.settledOnRecheck} settled on re-check)`)
  }
}
