/**
 * The compatibility layer over real HTTP: Express, Fastify and Hono servers on loopback, backed by
 * a real PostgreSQL table in the new (v2) shape. A v1 client and a v2 client work on the same data.
 */
import type { AddressInfo } from 'node:net'
import type { Server } from 'node:http'
import { serve } from '@hono/node-server'
import { compatExpress, compatFastify, compatHono, type CompatApi } from '@cutover/http'
import express from 'express'
import Fastify from 'fastify'
import { Hono } from 'hono'
import { sql } from 'kysely'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { USERS_TABLE_SQL, usersApi, V1_LIFECYCLE } from './fixtures/compat-users-api.js'
import { createTestDatabase, type TestDatabase } from './setup/services.js'

let database: TestDatabase
let clock = new Date('2026-07-01T00:00:00Z')

beforeAll(async () => {
  database = await createTestDatabase('cutover_compat_http')
  await sql.raw(USERS_TABLE_SQL).execute(database.db)
})
afterAll(async () => {
  await database?.drop()
})

interface Running {
  readonly base: string
  close(): Promise<void>
}

/** Each framework serves `/api` (sunset → 410) and `/fwd` (sunset → fall forward), one API each. */
const FRAMEWORKS: Readonly<Record<string, (gone: CompatApi, forward: CompatApi) => Promise<Running>>> = {
  express: async (gone, forward) => {
    const app = express()
    app.use('/api', compatExpress(gone))
    app.use('/fwd', express.json(), compatExpress(forward))
    return listening(app.listen(0, '127.0.0.1'))
  },
  fastify: async (gone, forward) => {
    const app = Fastify()
    await app.register(compatFastify, { api: gone, prefix: '/api' })
    await app.register(compatFastify, { api: forward, prefix: '/fwd' })
    await app.listen({ port: 0, host: '127.0.0.1' })
    return { base: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`, close: () => app.close() }
  },
  hono: async (gone, forward) => {
    const app = new Hono()
    app.all('/api/*', compatHono(gone, { prefix: '/api' }))
    app.all('/fwd/*', compatHono(forward, { prefix: '/fwd' }))
    return listening(serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }) as Server)
  },
}

async function listening(server: Server): Promise<Running> {
  if (!server.listening) await new Promise((resolve) => server.once('listening', resolve))
  return {
    base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  }
}

describe.each(Object.keys(FRAMEWORKS))('compatibility layer on %s', (framework) => {
  let running: Running
  let api: CompatApi
  const call = async (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => {
    const response = await fetch(`${running.base}${path}`, {
      method,
      headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
      ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
    })
    const text = await response.text()
    return { status: response.status, headers: response.headers, body: text && response.headers.get('content-type')?.includes('json') ? JSON.parse(text) : text }
  }
  const stored = async () => (await sql<Record<string, unknown>>`select id, first_name, last_name, email, status from users order by id`.execute(database.db)).rows

  beforeAll(async () => {
    api = usersApi(database.db, { now: () => clock })
    running = await FRAMEWORKS[framework]!(api, usersApi(database.db, { now: () => clock, afterSunset: 'fall-forward' }))
  })
  afterAll(async () => running?.close())
  beforeEach(async () => {
    clock = new Date('2026-07-01T00:00:00Z')
    await sql`truncate users restart identity`.execute(database.db)
  })

  it('a v1 client creates, reads, lists, replaces, patches and deletes next to a v2 client on the same rows', async () => {
    const created = await call('POST', '/api/v1/users', { full_name: 'Ada Lovelace', email: 'ada@example.com', active: true }, { 'x-client-id': 'billing' })
    expect(created.status).toBe(201)
    expect(created.body).toEqual({ id: 1, full_name: 'Ada Lovelace', email: 'ada@example.com', active: true })
    expect(await stored()).toEqual([{ id: 1, first_name: 'Ada', last_name: 'Lovelace', email: 'ada@example.com', status: 'active' }])

    const asV2 = await call('GET', '/api/v2/users/1')
    expect(asV2).toMatchObject({ status: 200, body: { id: 1, first_name: 'Ada', last_name: 'Lovelace', status: 'active' } })
    const grace = await call('POST', '/api/v2/users', { first_name: 'Grace', last_name: 'Hopper', email: 'grace@example.com', status: 'disabled' })
    expect(grace).toMatchObject({ status: 201, body: { id: 2, first_name: 'Grace' } })

    const list = await call('GET', '/api/v1/users?limit=10')
    expect(list.body).toEqual({
      data: [
        { id: 1, full_name: 'Ada Lovelace', email: 'ada@example.com', active: true },
        { id: 2, full_name: 'Grace Hopper', email: 'grace@example.com', active: false },
      ],
      next: null,
    })
    const page = await call('GET', '/api/v1/users?limit=1')
    expect(page.body).toMatchObject({ data: [{ id: 1 }], next: '1' })
    expect((await call('GET', '/api/v1/users?limit=1&after=1')).body).toMatchObject({ data: [{ id: 2 }] })

    const replaced = await call('PUT', '/api/v1/users/1', { full_name: 'Ada King Lovelace', email: 'ada@example.com', active: false })
    expect(replaced).toMatchObject({ status: 200, body: { id: 1, full_name: 'Ada King Lovelace', active: false } })
    expect((await stored())[0]).toEqual({ id: 1, first_name: 'Ada', last_name: 'King Lovelace', email: 'ada@example.com', status: 'disabled' })

    const patched = await call('PATCH', '/api/v1/users/1', { full_name: 'Augusta Ada King' })
    expect(patched.body).toEqual({ id: 1, full_name: 'Augusta Ada King', email: 'ada@example.com', active: false })
    await call('PATCH', '/api/v2/users/1', { status: 'active' })
    expect((await stored())[0]).toEqual({ id: 1, first_name: 'Augusta', last_name: 'Ada King', email: 'ada@example.com', status: 'active' })

    expect((await call('DELETE', '/api/v1/users/2')).status).toBe(204)
    const gone = await call('GET', '/api/v1/users/2')
    expect(gone).toMatchObject({ status: 404, body: { error: { code: 'NOT_FOUND' } } })
    expect((await stored()).map((r) => r.id)).toEqual([1])
  })

  it('the version comes from the path, else the header, else the version pinned for the client, else HEAD', async () => {
    await call('POST', '/api/users', { first_name: 'Ada', last_name: 'Lovelace', email: 'ada@example.com', status: 'active' })
    const v1 = { id: 1, full_name: 'Ada Lovelace', email: 'ada@example.com', active: true }
    const v2 = { id: 1, first_name: 'Ada', last_name: 'Lovelace', email: 'ada@example.com', status: 'active' }
    expect((await call('GET', '/api/users/1', undefined, { 'api-version': '1' })).body).toEqual(v1)
    expect((await call('GET', '/api/users/1', undefined, { 'x-client-id': 'legacy-app' })).body).toEqual(v1)
    expect((await call('GET', '/api/v2/users/1', undefined, { 'x-client-id': 'legacy-app' })).body).toEqual(v2)
    expect((await call('GET', '/api/users/1', undefined, { 'x-client-id': 'legacy-app', 'api-version': '2' })).body).toEqual(v2)
    const head = await call('GET', '/api/users/1')
    expect(head.body).toEqual(v2)
    expect(head.headers.get('api-version')).toBe('2')
    expect(await call('GET', '/api/v7/users/1')).toMatchObject({ status: 400, body: { error: { code: 'VERSION_UNKNOWN' } } })
  })

  it('an invalid body is refused with 400 listing every bad field by its path in the client\'s version', async () => {
    const v1 = await call('POST', '/api/v1/users', { full_name: 5, email: 'not-an-email' })
    expect(v1.status).toBe(400)
    expect(v1.body.error.code).toBe('BODY_INVALID')
    expect(v1.body.error.fields.map((f: { path: string }) => f.path).sort()).toEqual(['active', 'email', 'full_name'])
    const v2 = await call('POST', '/api/v2/users', { first_name: '', last_name: null, email: 'x', status: 'sleeping' })
    expect(v2.body.error.fields.map((f: { path: string }) => f.path).sort()).toEqual(['email', 'first_name', 'status'])
    const notJson = await call('POST', '/api/v1/users', '{"full_name": ')
    expect(notJson).toMatchObject({ status: 400, body: { error: { code: 'BODY_INVALID' } } })
    expect(await stored()).toEqual([])
  })

  it('errors raised in the new shape reach a v1 client with v1 field paths', async () => {
    const v1 = await call('POST', '/api/v1/users', { full_name: 'root Admin', email: 'root@example.com', active: true })
    expect(v1).toMatchObject({ status: 422, body: { error: { code: 'NAME_RESERVED', fields: [{ path: 'full_name', message: 'is reserved' }] } } })
    const v2 = await call('POST', '/api/v2/users', { first_name: 'root', last_name: null, email: 'root@example.com', status: 'active' })
    expect(v2.body.error.fields).toEqual([{ path: 'first_name', message: 'is reserved' }])
    await call('POST', '/api/v1/users', { full_name: 'Ada', email: 'ada@example.com', active: true })
    const taken = await call('POST', '/api/v1/users', { full_name: 'Ada Two', email: 'ada@example.com', active: true })
    expect(taken).toMatchObject({ status: 409, body: { error: { code: 'EMAIL_TAKEN', fields: [{ path: 'email' }] } } })
  })

  it('during the transition HEAD\'s endpoint takes a body in either shape, stores the new shape and counts old-shape use per client', async () => {
    const metricBefore = api.usage.metrics.counter('compat.old_shape', { resource: 'users', version: '1' })
    const old = await call('POST', '/api/users', { full_name: 'Ada Lovelace', email: 'ada@example.com', active: true }, { 'x-client-id': 'crm' })
    expect(old).toMatchObject({ status: 201, body: { id: 1, first_name: 'Ada', last_name: 'Lovelace', status: 'active' } })
    expect(old.headers.get('api-body-version')).toBe('1')
    const patched = await call('PATCH', '/api/users/1', { full_name: 'Ada King' }, { 'x-client-id': 'crm' })
    expect(patched.body).toMatchObject({ first_name: 'Ada', last_name: 'King' })
    const both = await call('POST', '/api/users', { full_name: 'A B', first_name: 'A', last_name: 'B', email: 'ab@example.com', active: true, status: 'active' })
    expect(both).toMatchObject({ status: 400, body: { error: { code: 'BODY_AMBIGUOUS' } } })
    await call('GET', '/api/v1/users/1', undefined, { 'x-client-id': 'warehouse' })
    await call('GET', '/api/v2/users/1', undefined, { 'x-client-id': 'warehouse' })
    await call('GET', '/api/v1/users', undefined, { 'x-client-id': 'crm' })
    expect(api.usage.count('crm', '1')).toBe(3)
    expect(api.usage.count('warehouse', '1')).toBe(1)
    const heaviest = api.usage.heaviest({ version: '1' }).filter((u) => ['crm', 'warehouse'].includes(u.client))
    expect(heaviest.map((u) => [u.client, u.requests])).toEqual([['crm', 3], ['warehouse', 1]])
    expect(api.usage.metrics.counter('compat.old_shape', { resource: 'users', version: '1' })).toBe(metricBefore + 4)
    expect(await stored()).toEqual([{ id: 1, first_name: 'Ada', last_name: 'King', email: 'ada@example.com', status: 'active' }])
  })

  it('a v1 response carries Deprecation, Sunset and Link; after the sunset /api answers 410 and /fwd falls forward with a header saying so', async () => {
    await call('POST', '/api/v2/users', { first_name: 'Ada', last_name: null, email: 'ada@example.com', status: 'active' })
    const before = await call('GET', '/api/v1/users/1')
    expect(before.headers.get('deprecation')).toBe(`@${Date.parse(V1_LIFECYCLE.deprecation as string) / 1000}`)
    expect(before.headers.get('sunset')).toBe('Mon, 01 Mar 2027 00:00:00 GMT')
    expect(before.headers.get('link')).toBe('<https://example.com/api/v2-migration>; rel="deprecation"; type="text/html"')
    expect((await call('GET', '/api/v2/users/1')).headers.get('deprecation')).toBeNull()

    clock = new Date('2027-03-01T00:00:00Z')
    const retired = await call('GET', '/api/v1/users/1')
    expect(retired).toMatchObject({ status: 410, body: { error: { code: 'VERSION_SUNSET' } } })
    expect(retired.headers.get('sunset')).toBe('Mon, 01 Mar 2027 00:00:00 GMT')
    const forward = await call('GET', '/fwd/v1/users/1')
    expect(forward).toMatchObject({ status: 200, body: { id: 1, first_name: 'Ada' } })
    expect(forward.headers.get('api-version')).toBe('2')
    expect(forward.headers.get('api-version-fallback')).toBe('1; served=2')
  })

  it('serves the changelog generated from the steps as JSON and as a page', async () => {
    const json = await call('GET', '/api/changelog')
    expect(json.body).toEqual({
      versions: [
        { version: '2', changes: [{ resource: 'users', description: 'full_name is split into first_name and last_name; active becomes status' }] },
        { version: '1', changes: [], deprecation: '2026-06-01T00:00:00.000Z', sunset: '2027-03-01T00:00:00.000Z', link: 'https://example.com/api/v2-migration' },
      ],
    })
    const page = await call('GET', '/api/changelog.html')
    expect(page.headers.get('content-type')).toMatch(/^text\/html/)
    expect(page.body).toContain('<h2>Version 2</h2>')
    expect(page.body).toContain('full_name is split into first_name and last_name')
  })
})
