/**
 * The demo's public API: `/api/v2/users` in the new shape and, for clients that were never
 * updated, `/api/v1/users` in the old one, through `@cutover/http` on a real Express server on
 * loopback. Handlers speak HEAD's (the new) shape; before the write cutover they store through the
 * application's old-shape Kysely (so the write is mirrored like any other), after it through the
 * new one. The v1 client below is what an old integration does every few seconds.
 */
import type { AddressInfo } from 'node:net'
import type { Server } from 'node:http'
import type { Row } from '@cutover/core'
import { compatExpress, createCompatApi, defineVersionChain, HttpError, type ResourceHandlers, versionStep } from '@cutover/http'
import express from 'express'
import type { Kysely } from 'kysely'
import { usersApiV1Mapper, usersMapper } from './model.js'

export interface DemoApi {
  readonly url: string
  readonly oldShapeRequests: () => number
  close(): Promise<void>
}

export async function startApi(app: Kysely<any>, appV2: Kysely<any>, writesNew: () => boolean): Promise<DemoApi> {
  const users = defineVersionChain({
    resource: 'users',
    head: { version: '2' },
    steps: [versionStep({ version: '1', mapper: usersApiV1Mapper, description: 'full_name is split into first_name and last_name' })],
  })
  const api = createCompatApi({
    resources: [{ chain: users, handlers: usersHandlers(app, appV2, writesNew) }],
    versions: { '1': { deprecation: '2026-06-01', sunset: '2027-06-01', link: 'https://example.com/api/v2-migration' } },
  })
  const server = express().use(express.json()).use('/api', compatExpress(api))
  const listening: Server = await new Promise((resolve) => {
    const s = server.listen(0, '127.0.0.1', () => resolve(s))
  })
  return {
    url: `http://127.0.0.1:${(listening.address() as AddressInfo).port}/api`,
    oldShapeRequests: () => api.usage.count('legacy-crm', '1'),
    close: () => new Promise((resolve) => listening.close(() => resolve())),
  }
}

/** HEAD-shaped users over whichever schema the application writes now. */
function usersHandlers(app: Kysely<any>, appV2: Kysely<any>, writesNew: () => boolean): ResourceHandlers {
  const toHead = (row: Row | undefined) => (row ? usersMapper.forward(row) : undefined)
  const get = async (key: string): Promise<Row | undefined> =>
    writesNew()
      ? appV2.selectFrom('users').selectAll().where('id', '=', Number(key)).executeTakeFirst()
      : toHead(await app.selectFrom('users').selectAll().where('user_id', '=', Number(key)).executeTakeFirst())
  const write = async (record: Row, mode: 'insert' | 'update'): Promise<Row> => {
    if (writesNew()) {
      const { id, ...fields } = record
      if (mode === 'insert') await appV2.insertInto('users').values(record).execute()
      else await appV2.updateTable('users').set(fields).where('id', '=', id as number).execute()
    } else {
      // An update names the key only in its WHERE: setting the key column (even to itself) is a key
      // change, whose old key the plugin cannot attribute, and would be reported as unmirrored.
      const { user_id: key, ...fields } = usersMapper.backward(record)
      if (mode === 'insert') await app.insertInto('users').values({ user_id: key, ...fields }).execute()
      else await app.updateTable('users').set(fields).where('user_id', '=', key as number).execute()
    }
    return (await get(String(record.id))) ?? record
  }
  return {
    list: async (page) => {
      const after = page.after === undefined ? 0 : Number(page.after)
      const rows = writesNew()
        ? await appV2.selectFrom('users').selectAll().where('id', '>', after).orderBy('id').limit(page.limit).execute()
        : await app.selectFrom('users').selectAll().where('user_id', '>', after).orderBy('user_id').limit(page.limit).execute()
      return writesNew() ? rows : rows.map((row) => usersMapper.forward(row))
    },
    get,
    create: async (record) => {
      if (await get(String(record.id))) throw new HttpError(409, 'CONFLICT', `user ${String(record.id)} exists`, [{ path: 'id', message: 'already exists' }])
      return write(record, 'insert')
    },
    replace: (_key, record) => write(record, 'update'),
    remove: async (key) => {
      const result = writesNew()
        ? await appV2.deleteFrom('users').where('id', '=', Number(key)).executeTakeFirst()
        : await app.deleteFrom('users').where('user_id', '=', Number(key)).executeTakeFirst()
      return Number(result.numDeletedRows) > 0
    },
  }
}

/** What an old integration does: read a user, create one, rename it, send a bad body, delete it. */
export async function v1ClientRound(api: DemoApi, id: number): Promise<{ ok: number; failed: number; rejected: number; deprecation: string | null }> {
  let ok = 0
  let failed = 0
  let rejected = 0
  let deprecation: string | null = null
  const call = async (method: string, path: string, body?: unknown, expect = 200) => {
    const response = await fetch(`${api.url}/v1/users${path}`, {
      method,
      headers: { 'content-type': 'application/json', 'x-client-id': 'legacy-crm' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    })
    deprecation ??= response.headers.get('deprecation')
    await response.text()
    if (response.status === expect) ok++
    else failed++
    if (response.status === 400) rejected++
  }
  await call('GET', '/1')
  await call('POST', '', { id, full_name: 'Grace Brewster Hopper', email: `grace${id}@example.com` }, 201)
  await call('PATCH', `/${id}`, { full_name: 'Grace Hopper' })
  await call('POST', '', { id: id + 1, full_name: '', email: 'not-an-email' }, 400)
  await call('DELETE', `/${id}`, undefined, 204)
  return { ok, failed, rejected, deprecation }
}
