/**
 * A control database that stops answering (a black-holed link: connections accepted, nothing
 * returned, as a network partition looks to a client without timeouts). The fleet member's round
 * must not wait forever: its writes are refused by the lease, the stuck round is counted and
 * abandoned, the instance follows the control table again as soon as the link comes back, and
 * leaving the fleet finishes.
 */
import { createCutover, copy, defineMigration, fieldMapper, silentLogger, WriteFencedError } from '@cutover/core'
import { Kysely, PostgresDialect, sql } from 'kysely'
import pg from 'pg'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { z } from 'zod'
import { MemoryStore } from '../packages/core/test/memory-store.js'
import { TcpProxy } from '../packages/kysely-plugin/test/tcp-proxy.js'
import { createTestDatabase, type TestDatabase } from './setup/services.js'

const schema = z.object({ id: z.number(), name: z.string() })
const migration = () => defineMigration({ name: 'people', gates: false, old: new MemoryStore('old'), new: new MemoryStore('new'), mapper: fieldMapper({ old: schema, new: schema, fields: [copy('id'), copy('name')] }) })

let database: TestDatabase
let proxy: TcpProxy

beforeAll(async () => {
  database = await createTestDatabase('cutover_control_lost')
  const url = new URL(database.url)
  proxy = await TcpProxy.start({ host: url.hostname, port: Number(url.port || 5432) })
})

afterAll(async () => {
  await proxy.close()
  await database.drop()
})

it('a black-holed control database: writes refused by the lease, the stuck round abandoned, recovery when the link returns, and a stop that finishes', async () => {
  const url = new URL(database.url)
  url.port = String(proxy.port)
  const pool = new pg.Pool({ connectionString: url.toString(), max: 2 })
  // As node-postgres asks of an application: a checked-out client whose socket dies emits 'error'
  // on the client, which pg-pool listens for only while the client is idle.
  pool.on('error', () => {})
  pool.on('connect', (client) => client.on('error', () => {}))
  const control = new Kysely<any>({ dialect: new PostgresDialect({ pool }) })
  database.track(control)
  const cutover = await createCutover({ migrations: [migration()], control, env: { CUTOVER_PHASE: 'ramp', CUTOVER_READ_PERCENT: '50' }, fleet: { heartbeatMs: 50, leaseMs: 400, name: 'partitioned' }, logger: silentLogger })
  const fleet = cutover.fleet!
  await waitFor(async () => (await sql<{ n: string }>`select count(*) as n from cutover.instances`.execute(database.db)).rows[0]?.n === '1')
  expect(() => fleet.assertWritable('people', 'ramp', 'people', '1')).not.toThrow()

  proxy.cut()
  // The lease runs out while every round hangs on a connection that never answers.
  await waitFor(() => {
    try {
      fleet.assertWritable('people', 'ramp', 'people', '1')
      return false
    } catch (error) {
      return error instanceof WriteFencedError && error.reason === 'lease'
    }
  })
  // The hanging round is given up and counted, not awaited for good.
  await waitFor(() => cutover.metrics.counter('control.refresh_failed') > 0)

  proxy.restore()
  // A later round reaches the database again: the lease is renewed and writes are accepted.
  await waitFor(() => {
    try {
      fleet.assertWritable('people', 'ramp', 'people', '1')
      return true
    } catch {
      return false
    }
  }, 10_000)

  proxy.cut()
  const stopped = await Promise.race([fleet.stop().then(() => 'stopped' as const), pause(5_000).then(() => 'hung' as const)])
  expect(stopped).toBe('stopped')
  proxy.restore()
  await cutover.close({ timeoutMs: 500 })
}, 30_000)

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs = 5_000): Promise<void> {
  const until = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`condition not met within ${timeoutMs} ms`)
    await pause(20)
  }
}
