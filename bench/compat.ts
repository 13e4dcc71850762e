/**
 * The compatibility layer's own cost, in process (no network, no database: handlers in memory),
 * as CPU time per request from `process.cpuUsage`, each v1 figure against the same request in v2
 * (HEAD) measured in the same run, rounds interleaved so drift hits both alike.
 */
import { createCompatApi, type CompatRequest, type ResourceHandlers } from '@cutover/http'
import { UserV2, usersChain } from '../test/fixtures/compat-users-api.js'

const ROUNDS = 5
const PER_ROUND = 4_000

function memoryHandlers(): ResourceHandlers {
  const rows = new Map<string, Record<string, unknown>>()
  for (let id = 1; id <= 100; id++) rows.set(String(id), { id, first_name: 'Ada', last_name: `Lovelace ${id}`, email: `ada${id}@example.com`, status: 'active' })
  return {
    list: async ({ limit }) => [...rows.values()].slice(0, limit),
    get: async (key) => rows.get(key),
    create: async (record) => record,
    replace: async (_key, record) => record,
    remove: async () => true,
    newKey: async () => 1_000,
  }
}

const request = (method: string, url: string, body?: unknown): CompatRequest => ({ method, url, header: () => undefined, body })
const v1Body = { id: 7, full_name: 'Ada King Lovelace', email: 'ada@example.com', active: true }
const v2Body = { id: 7, first_name: 'Ada', last_name: 'King Lovelace', email: 'ada@example.com', status: 'active' }

async function cpuMicrosPerOp(run: () => Promise<unknown> | unknown, count: number): Promise<number> {
  const start = process.cpuUsage()
  for (let i = 0; i < count; i++) await run()
  const used = process.cpuUsage(start)
  return (used.user + used.system) / count
}

export async function benchmark(): Promise<string> {
  const chain = usersChain()
  const api = createCompatApi({ resources: [{ chain, handlers: memoryHandlers() }] })
  const pairs: [string, () => unknown, () => unknown][] = [
    ['GET item', () => api.handle(request('GET', '/v2/users/7')), () => api.handle(request('GET', '/v1/users/7'))],
    ['GET list (100)', () => api.handle(request('GET', '/v2/users')), () => api.handle(request('GET', '/v1/users'))],
    ['POST', () => api.handle(request('POST', '/v2/users', v2Body)), () => api.handle(request('POST', '/v1/users', v1Body))],
    ['POST to HEAD, v1 body detected', () => api.handle(request('POST', '/v2/users', v2Body)), () => api.handle(request('POST', '/users', v1Body))],
    ['PATCH', () => api.handle(request('PATCH', '/v2/users/7', { status: 'disabled' })), () => api.handle(request('PATCH', '/v1/users/7', { active: false }))],
    ['convert one record (zod parse v2 vs toV1)', () => UserV2.parse(v2Body), () => chain.toV1(v2Body)],
  ]
  const totals = new Map<string, { head: number; v1: number }>()
  for (const [name, head, v1] of pairs) {
    await cpuMicrosPerOp(head, 500) // warm up both paths before measuring
    await cpuMicrosPerOp(v1, 500)
    totals.set(name, { head: 0, v1: 0 })
  }
  for (let round = 0; round < ROUNDS; round++) {
    for (const [name, head, v1] of pairs) {
      const total = totals.get(name) as { head: number; v1: number }
      total.head += (await cpuMicrosPerOp(head, PER_ROUND)) / ROUNDS
      total.v1 += (await cpuMicrosPerOp(v1, PER_ROUND)) / ROUNDS
    }
  }
  const rows = [...totals].map(([name, t]) => `| ${name} | ${t.head.toFixed(1)} µs | ${t.v1.toFixed(1)} µs | ${(t.v1 / t.head).toFixed(2)}× |`)
  return `## Compatibility layer (@cutover/http)

CPU time per request through \`CompatApi.handle\` with in-memory handlers (${ROUNDS} interleaved rounds of
${PER_ROUND.toLocaleString('en')} requests each): what a v1 client costs over the same request in v2. No
network or database, so these are the layer's own costs; a real request adds both.

| request | v2 (HEAD) | v1 | ratio |
|---|---:|---:|---:|
${rows.join('\n')}
`
}
