/** The `users` example: old `users(user_id, full_name, email)` → new `users(id, first_name, last_name, email, legacy_full_name)`. */
import { copy, copyForward, fieldMapper, type GuardThresholds, type MigrationDefinition, rename, split } from '@cutover/core'
import type { Kysely } from 'kysely'
import { z } from 'zod'
import { KyselyTableStore } from '../src/index.js'
import type { HarnessOptions } from './harness.js'

export const usersMapper = fieldMapper({
  old: z.object({ user_id: z.number().int(), full_name: z.string(), email: z.string() }),
  new: z.object({
    id: z.number().int(),
    first_name: z.string(),
    last_name: z.string().nullable(),
    email: z.string(),
    legacy_full_name: z.string().nullable(),
  }),
  fields: [rename('user_id', 'id'), split('full_name', ['first_name', 'last_name']), copy('email'), copyForward('full_name', 'legacy_full_name')],
})

export const OLD_USERS_DDL = 'create table users (user_id integer primary key, full_name text not null, email text not null)'
export const NEW_USERS_DDL =
  'create table users (id integer primary key, first_name text not null, last_name text, email text not null, legacy_full_name text, created_at timestamptz not null default now())'

export function usersHarness(
  prefix: string,
  extra: Partial<MigrationDefinition> & { guards?: GuardThresholds } = {},
  newStore: (neu: Kysely<any>, url: string) => KyselyTableStore = (neu) => new KyselyTableStore(neu, 'users', 'id'),
  random?: () => number,
): HarnessOptions {
  return {
    prefix,
    oldDdl: [OLD_USERS_DDL],
    newDdl: [NEW_USERS_DDL],
    migrations: (old, neu, urls) => [
      {
        name: 'users',
        old: new KyselyTableStore(old, 'users', 'user_id'),
        new: newStore(neu, urls.neu),
        mapper: usersMapper,
        key: { old: 'user_id', new: 'id' },
        mirror: { recheckDelayMs: false, retry: { attempts: 2, baseDelayMs: 5, maxDelayMs: 10 } },
        ...extra,
      },
    ],
    oldTables: { users: { migration: 'users', side: 'old' } },
    newTables: { users: { migration: 'users', side: 'new' } },
    ...(random ? { random } : {}),
  }
}
