/**
 * The healthcare seed scenario: appointments in MongoDB whose start times were stored every which
 * way (ISO strings with and without offsets, epoch numbers, Dates; zones as IANA names or UTC
 * offsets), moving to PostgreSQL with one `timestamptz`. The mapper normalizes what it can resolve
 * and rejects the rest with a reason naming the field; rejected records land in the dead-letter
 * table, and the counts match what the fixture planted.
 */
import { createCutover, type Cutover, defineMapper, defineMigration, type Migration, silentLogger } from '@cutover/core'
import { KyselyTableStore } from '@cutover/kysely-plugin'
import { cutoverPlugin, MongooseModelStore } from '@cutover/mongoose-plugin'
import type { Kysely } from 'kysely'
import mongoose, { Schema } from 'mongoose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { expectStoresEqual } from '../packages/mongoose-plugin/test/harness.js'
import { createTestDatabase, createTestMongo, type TestDatabase, type TestMongo } from './setup/services.js'

type StartsAt = string | number | Date

/** `startsAt` + `timeZone` → an instant, or why not. */
export function normalizeStart(startsAt: StartsAt, timeZone: string | null | undefined): { ok: true; value: Date } | { ok: false; reason: string } {
  if (startsAt instanceof Date) return Number.isNaN(startsAt.getTime()) ? { ok: false, reason: 'invalid Date' } : { ok: true, value: startsAt }
  if (typeof startsAt === 'number') {
    if (!Number.isFinite(startsAt)) return { ok: false, reason: `malformed timestamp ${startsAt}` }
    return { ok: true, value: new Date(startsAt < 1e11 ? startsAt * 1000 : startsAt) } // epoch seconds or milliseconds
  }
  const match = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,3}))?)?(Z|[+-]\d{2}:?\d{2})?$/.exec(startsAt)
  if (!match) return { ok: false, reason: `malformed timestamp ${JSON.stringify(startsAt)}` }
  const [, y, mo, d, h, mi, s = '0', ms = '0', offset] = match
  const local = Date.UTC(+y!, +mo! - 1, +d!, +h!, +mi!, +s!, +ms!.padEnd(3, '0'))
  const check = new Date(local)
  if (check.getUTCMonth() !== +mo! - 1 || check.getUTCDate() !== +d! || +h! > 23 || +mi! > 59 || +s! > 59) {
    return { ok: false, reason: `malformed timestamp ${JSON.stringify(startsAt)} (no such date or time)` }
  }
  const zoneOffset = (instant: number): number | undefined => (timeZone ? offsetMinutes(timeZone, instant) : undefined)
  if (timeZone && zoneOffset(local) === undefined) return { ok: false, reason: `unknown time zone ${JSON.stringify(timeZone)}` }
  if (offset) {
    const own = offset === 'Z' ? 0 : parseOffset(offset)
    const instant = local - own * 60_000
    if (timeZone && zoneOffset(instant) !== own) {
      return { ok: false, reason: `mixed timezone formats: ${JSON.stringify(startsAt)} carries its own offset but timeZone ${JSON.stringify(timeZone)} disagrees` }
    }
    return { ok: true, value: new Date(instant) }
  }
  if (!timeZone) return { ok: false, reason: `local time ${JSON.stringify(startsAt)} without a time zone` }
  // Local wall time in a zone: find the instant whose offset maps back to it (two passes settle DST).
  let instant = local - (zoneOffset(local) as number) * 60_000
  instant = local - (zoneOffset(instant) as number) * 60_000
  return { ok: true, value: new Date(instant) }
}

function parseOffset(text: string): number {
  const m = /^([+-])(\d{2}):?(\d{2})$/.exec(text) as RegExpExecArray
  return (m[1] === '-' ? -1 : 1) * (+m[2]! * 60 + +m[3]!)
}

/** Minutes east of UTC of a zone (IANA name or `±hh:mm`) at an instant; undefined for an unknown zone. */
function offsetMinutes(zone: string, instant: number): number | undefined {
  if (/^[+-]\d{2}:?\d{2}$/.test(zone)) return parseOffset(zone)
  if (zone === 'UTC' || zone === 'Z') return 0
  try {
    const parts = Object.fromEntries(
      new Intl.DateTimeFormat('en-US', { timeZone: zone, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric', second: 'numeric' })
        .formatToParts(new Date(instant))
        .map((p) => [p.type, p.value]),
    )
    const asUtc = Date.UTC(+parts.year!, +parts.month! - 1, +parts.day!, +parts.hour!, +parts.minute!, +parts.second!)
    return Math.round((asUtc - Math.floor(instant / 1000) * 1000) / 60_000)
  } catch {
    return undefined
  }
}

/** Latin-1 bytes of UTF-8 text read as Latin-1: "José" stored as "JosÃ©". */
const MOJIBAKE = /Ã[\u0080-\u00BF]|Â[\u0080-\u00BF]/

const oldAppointment = z
  .object({
    _id: z.string(),
    patientName: z.string().nullable(),
    doctor: z.string(),
    startsAt: z.union([z.string(), z.number(), z.date()]),
    timeZone: z.string().nullish(),
  })
  .superRefine((record, ctx) => {
    const start = normalizeStart(record.startsAt, record.timeZone)
    if (!start.ok) ctx.addIssue({ code: 'custom', path: ['startsAt'], message: start.reason })
    if (record.patientName && MOJIBAKE.test(record.patientName)) {
      ctx.addIssue({ code: 'custom', path: ['patientName'], message: `Latin-1 mojibake in ${JSON.stringify(record.patientName)} (UTF-8 read as Latin-1)` })
    }
  })

const newAppointment = z.object({ id: z.string(), patient_name: z.string(), doctor: z.string(), starts_at: z.date(), time_zone: z.string().nullable() })

const mapper = defineMapper({
  old: oldAppointment,
  new: newAppointment,
  forward: (r) => ({
    id: r._id,
    patient_name: r.patientName as string,
    doctor: r.doctor,
    starts_at: (normalizeStart(r.startsAt, r.timeZone) as { value: Date }).value,
    time_zone: r.timeZone ?? null,
  }),
  backward: (n) => ({ _id: n.id, patientName: n.patient_name, doctor: n.doctor, startsAt: n.starts_at, timeZone: n.time_zone }),
})

interface AppointmentDoc {
  patientName: string | null
  doctor: string
  startsAt: StartsAt
  timeZone?: string
}

describe('appointments: MongoDB with mixed timestamps → PostgreSQL timestamptz', () => {
  let pg: TestDatabase
  let db: Kysely<any>
  let mongo: TestMongo
  let cutover: Cutover
  let migration: Migration<any, any>
  let Appointment: mongoose.Model<AppointmentDoc>

  beforeAll(async () => {
    pg = await createTestDatabase('cutover_appointments')
    db = pg.db
    mongo = await createTestMongo('cutover_appointments', { monitorCommands: true })
    await db.schema
      .createTable('appointments')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('patient_name', 'text', (c) => c.notNull())
      .addColumn('doctor', 'text', (c) => c.notNull())
      .addColumn('starts_at', 'timestamptz', (c) => c.notNull())
      .addColumn('time_zone', 'text')
      .execute()
    const engine: { cutover?: Cutover } = {}
    const schema = new Schema<AppointmentDoc>({ patientName: String, doctor: String, startsAt: Schema.Types.Mixed, timeZone: String }, { versionKey: false })
    schema.plugin(cutoverPlugin, { cutover: () => engine.cutover as Cutover, migration: 'appointments' })
    Appointment = mongo.connection.model<AppointmentDoc>('Appointment', schema)
    migration = defineMigration({
      name: 'appointments',
      old: new MongooseModelStore(Appointment),
      new: new KyselyTableStore(db, 'appointments', 'id'),
      mapper,
      mirror: { recheckDelayMs: false },
    })
    cutover = await createCutover({ migrations: [migration], control: db, env: { CUTOVER_APPOINTMENTS_PHASE: 'shadow' }, pollIntervalMs: false, logger: silentLogger })
    engine.cutover = cutover
  })
  afterAll(async () => {
    await cutover?.close()
    await mongo?.drop()
    await pg?.drop()
  })

  it('normalizes the resolvable timestamps and dead-letters the rest with reasons naming the field', async () => {
    const good: AppointmentDoc[] = [
      ...Array.from({ length: 5 }, (_, i) => ({ patientName: `iso-z-${i}`, doctor: 'House', startsAt: `2024-05-0${i + 1}T09:30:00.000Z` })),
      ...Array.from({ length: 5 }, (_, i) => ({ patientName: `iso-offset-${i}`, doctor: 'Grey', startsAt: `2024-05-0${i + 1}T09:30:00+02:00`, ...(i % 2 ? { timeZone: '+02:00' } : {}) })),
      ...Array.from({ length: 5 }, (_, i) => ({ patientName: `local-ny-${i}`, doctor: 'Quinn', startsAt: `2024-07-0${i + 1}T09:00:00`, timeZone: 'America/New_York' })),
      ...Array.from({ length: 5 }, (_, i) => ({ patientName: `local-offset-${i}`, doctor: 'Who', startsAt: `2024-01-0${i + 1} 08:15`, timeZone: '-05:00' })),
      ...Array.from({ length: 5 }, (_, i) => ({ patientName: `epoch-${i}`, doctor: 'Strange', startsAt: Date.UTC(2024, 2, i + 1, 12) })),
      ...Array.from({ length: 5 }, (_, i) => ({ patientName: `date-${i}`, doctor: 'Zhivago', startsAt: new Date(Date.UTC(2024, 3, i + 1, 8)) })),
      { patientName: 'José', doctor: 'House', startsAt: '2024-12-24T18:00:00+01:00', timeZone: 'Europe/Paris' }, // offset agrees with the zone
    ]
    const planted = {
      malformed: [
        { patientName: 'bad-1', doctor: 'House', startsAt: '2024-02-30T10:00:00Z' },
        { patientName: 'bad-2', doctor: 'House', startsAt: 'yesterday afternoon' },
        { patientName: 'bad-3', doctor: 'House', startsAt: '2024-05-01T25:61:00Z' },
      ],
      mixedZones: [
        { patientName: 'mix-1', doctor: 'Grey', startsAt: '2024-05-01T09:30:00+02:00', timeZone: 'America/New_York' },
        { patientName: 'mix-2', doctor: 'Grey', startsAt: '2024-05-01T09:30:00', timeZone: 'Mars/Olympus_Mons' },
        { patientName: 'mix-3', doctor: 'Grey', startsAt: '2024-05-01T09:30:00' },
      ],
      nullRequired: [
        { patientName: null, doctor: 'Quinn', startsAt: '2024-05-01T09:30:00Z' },
        { patientName: null, doctor: 'Quinn', startsAt: 1714555800000 },
      ],
      mojibake: [
        { patientName: 'JosÃ©', doctor: 'Who', startsAt: '2024-05-01T09:30:00Z' },
        { patientName: 'FranÃ§ois', doctor: 'Who', startsAt: '2024-05-01T09:30:00Z' },
      ],
    }
    const bad = Object.values(planted).flat() as AppointmentDoc[]
    // The application writes through Mongoose as it always has: every write succeeds.
    const inserted = await Appointment.insertMany([...good, ...bad].sort(() => Math.random() - 0.5))
    expect(inserted).toHaveLength(good.length + bad.length)
    await cutover.drain()

    const rows = await db.selectFrom('appointments').selectAll().execute()
    expect(rows).toHaveLength(good.length)
    await expectStoresEqual(migration, { skipRejected: true })
    const byName = new Map(rows.map((row) => [row.patient_name as string, row]))
    expect((byName.get('local-ny-0')?.starts_at as Date).toISOString()).toBe('2024-07-01T13:00:00.000Z')
    expect((byName.get('local-offset-0')?.starts_at as Date).toISOString()).toBe('2024-01-01T13:15:00.000Z')
    expect((byName.get('iso-offset-0')?.starts_at as Date).toISOString()).toBe('2024-05-01T07:30:00.000Z')
    expect((byName.get('epoch-0')?.starts_at as Date).toISOString()).toBe('2024-03-01T12:00:00.000Z')
    expect(byName.get('José')?.time_zone).toBe('Europe/Paris')

    expect(await cutover.deadLetters!.countByReason('appointments')).toEqual({ MAPPER_REJECTED: bad.length })
    const letters = await cutover.deadLetters!.open('appointments')
    const reasonsFor = (names: readonly (string | null)[]) =>
      letters.filter((l) => names.includes((l.payload as { patientName: string | null }).patientName))
    const fieldsOf = (group: keyof typeof planted) => reasonsFor(planted[group].map((p) => p.patientName)).map((l) => l.fields)
    expect(fieldsOf('malformed')).toEqual([['startsAt'], ['startsAt'], ['startsAt']])
    expect(fieldsOf('mixedZones')).toEqual([['startsAt'], ['startsAt'], ['startsAt']])
    expect(fieldsOf('nullRequired')).toEqual([['patient_name'], ['patient_name']])
    expect(fieldsOf('mojibake')).toEqual([['patientName'], ['patientName']])
    for (const letter of letters) {
      expect(letter.key).toMatch(/^[0-9a-f]{24}$/)
      expect(letter.reason).toContain(letter.key)
      expect(letter.direction).toBe('old-to-new')
    }
    const reasons = letters.map((l) => l.reason).join('\n')
    expect(reasons).toContain('malformed timestamp "yesterday afternoon"')
    expect(reasons).toContain('mixed timezone formats')
    expect(reasons).toContain('unknown time zone "Mars/Olympus_Mons"')
    expect(reasons).toContain('without a time zone')
    expect(reasons).toContain('Latin-1 mojibake in "JosÃ©"')

    // A fixed record leaves the dead letters through an ordinary write, and replay resolves its entry.
    const fixed = await Appointment.findOneAndUpdate({ patientName: 'JosÃ©' }, { $set: { patientName: 'José' } }, { new: true })
    await cutover.drain()
    expect(await db.selectFrom('appointments').select('patient_name').where('id', '=', fixed!._id.toHexString()).executeTakeFirst()).toEqual({ patient_name: 'José' })
    const replay = await cutover.replayDeadLetters('appointments')
    expect(replay.replayed).toBe(1)
    expect(replay.stillFailing).toBe(bad.length - 1)
  })
})
