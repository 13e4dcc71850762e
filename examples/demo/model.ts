/**
 * The demo application's data and its two migrations:
 * - `users(user_id, full_name, email)` → `users(id, first_name, last_name, email)`: a field map
 *   (rename, split, copy), lossless, with a SQL form;
 * - `appointments(id, user_id, starts_at text, note)` → `appointments(id, user_id, starts_at
 *   timestamptz, note)`: the old column holds whatever the forms let through over the years; the
 *   mapper reads the formats it knows and rejects the rest with a reason, which is what ends in the
 *   quarantine (backfill) or the dead letters (mirror).
 */
import { copy, defineMapper, fieldMapper, rename, split } from '@cutover/core'
import { type Kysely, sql } from 'kysely'
import { z } from 'zod'

/** The one rule both the storage migration and the v1 API use: a full name becomes two fields. */
export const splitFullName = split('full_name', ['first_name', 'last_name'])

export const usersMapper = fieldMapper({
  old: z.object({ user_id: z.number().int(), full_name: z.string().min(1), email: z.string() }),
  new: z.object({ id: z.number().int(), first_name: z.string().min(1), last_name: z.string().nullable(), email: z.string() }),
  fields: [rename('user_id', 'id'), splitFullName, copy('email')],
})

/** The v1 API's users: the old shape, with the key named as the API always named it. */
export const usersApiV1Mapper = fieldMapper({
  old: z.object({ id: z.number().int(), full_name: z.string().min(1), email: z.string().includes('@') }),
  new: z.object({ id: z.number().int(), first_name: z.string().min(1), last_name: z.string().nullable(), email: z.string().includes('@') }),
  fields: [copy('id'), splitFullName, copy('email')],
})

const OldAppointment = z.object({ id: z.number().int(), user_id: z.number().int(), starts_at: z.string(), note: z.string().nullable() })
const NewAppointment = z.object({ id: z.number().int(), user_id: z.number().int(), starts_at: z.date(), note: z.string().nullable() })

/** `2024-03-05T14:00:00Z`, `2024-03-05 14:00` (UTC), `05/03/2024 14:00` (day first, UTC). */
export function parseMessyTimestamp(text: string): Date {
  const trimmed = text.trim()
  const iso = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?(\.\d+)?(Z|[+-]\d{2}:\d{2})$/.test(trimmed) ? new Date(trimmed) : undefined
  const plain = /^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2})$/.exec(trimmed)
  const dayFirst = /^(\d{2})\/(\d{2})\/(\d{4}) (\d{2}):(\d{2})$/.exec(trimmed)
  const date =
    iso ??
    (plain ? new Date(Date.UTC(+plain[1]!, +plain[2]! - 1, +plain[3]!, +plain[4]!, +plain[5]!)) : undefined) ??
    (dayFirst ? new Date(Date.UTC(+dayFirst[3]!, +dayFirst[2]! - 1, +dayFirst[1]!, +dayFirst[4]!, +dayFirst[5]!)) : undefined)
  if (!date || Number.isNaN(date.getTime())) throw new Error(`starts_at ${JSON.stringify(text)} is in no known format`)
  return date
}

export const appointmentsMapper = defineMapper({
  old: OldAppointment,
  new: NewAppointment,
  forward: (a) => ({ ...a, starts_at: parseMessyTimestamp(a.starts_at) }),
  backward: (a) => ({ ...a, starts_at: a.starts_at.toISOString() }),
})

const MESSY = ['2024-03-05 14:00', '05/03/2024 09:30', '2024-03-05T16:15:00Z', 'next tuesday', '', '2024-13-45 25:00']

export async function createTables(oldDb: Kysely<any>, newDb: Kysely<any>, users: number): Promise<void> {
  await sql`create table users (user_id integer primary key, full_name text not null, email text not null)`.execute(oldDb)
  await sql`create table appointments (id integer primary key, user_id integer not null, starts_at text not null, note text)`.execute(oldDb)
  await sql`insert into users select i, 'User' || i || ' Example', 'u' || i || '@example.com' from generate_series(1, ${users}::int) i`.execute(oldDb)
  const rows = Array.from({ length: users }, (_, i) => ({ id: i + 1, user_id: i + 1, starts_at: MESSY[i % 7 === 3 ? 3 + (i % 3) : i % 3] as string, note: i % 5 === 0 ? null : 'check-up' }))
  for (let i = 0; i < rows.length; i += 500) await oldDb.insertInto('appointments').values(rows.slice(i, i + 500)).execute()
  await sql`create table users (id integer primary key, first_name text not null, last_name text, email text not null)`.execute(newDb)
  await sql`create table appointments (id integer primary key, user_id integer not null, starts_at timestamptz not null, note text)`.execute(newDb)
}

/** A timestamp the application writes later: mostly well-formed, now and then not. */
export function messyTimestamp(n: number): string {
  return n % 29 === 0 ? 'soon' : `2025-0${1 + (n % 9)}-1${n % 10} 1${n % 10}:${(n * 7) % 60 < 10 ? '0' : ''}${(n * 7) % 60}`
}
