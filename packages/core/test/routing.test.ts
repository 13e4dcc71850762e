import { createHash } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { sql } from 'kysely'
import { BUCKETS, bucketInPercent, currentCutoverContext, rampReadSide, routingBucket, withCutoverContext } from '../src/index.js'
import { createTestDatabase, type TestDatabase } from '../../../test/setup/services.js'

describe('routing buckets', () => {
  it('follows the documented formula: first 6 bytes of sha256(utf8(key)) mod 10000', () => {
    for (const key of ['user-1', 'tenant:acme', 'Zoë', '42', '']) {
      const expected = Number(BigInt(`0x${createHash('sha256').update(Buffer.from(key, 'utf8')).digest('hex').slice(0, 12)}`) % 10000n)
      expect(routingBucket(key)).toBe(expected)
    }
  })

  it('treats numeric and string forms of a key alike', () => {
    expect(routingBucket(12345)).toBe(routingBucket('12345'))
    expect(routingBucket(12345n)).toBe(routingBucket('12345'))
  })

  it('is uniform over 100k sequential keys (chi-square over 100 bands)', () => {
    const bands = new Array<number>(100).fill(0)
    const n = 100_000
    for (let i = 0; i < n; i++) {
      const bucket = routingBucket(`user-${i}`)
      expect(bucket).toBeGreaterThanOrEqual(0)
      expect(bucket).toBeLessThan(BUCKETS)
      bands[Math.floor(bucket / 100)]!++
    }
    const expected = n / 100
    const chiSquare = bands.reduce((sum, observed) => sum + (observed - expected) ** 2 / expected, 0)
    // 99 degrees of freedom: the 99.9th percentile of chi-square is about 148.2.
    expect(chiSquare).toBeLessThan(148.2)
    // And a percentage routes about that share of keys.
    const routed = Array.from({ length: n }, (_, i) => routingBucket(`user-${i}`)).filter((b) => bucketInPercent(b, 10)).length
    expect(routed / n).toBeGreaterThan(0.095)
    expect(routed / n).toBeLessThan(0.105)
  })

  it('maps percentages to bucket thresholds with two decimals', () => {
    expect(bucketInPercent(0, 0)).toBe(false)
    expect(bucketInPercent(0, 0.01)).toBe(true)
    expect(bucketInPercent(1, 0.01)).toBe(false)
    expect(bucketInPercent(999, 10)).toBe(true)
    expect(bucketInPercent(1000, 10)).toBe(false)
    expect(bucketInPercent(9999, 100)).toBe(true)
  })

  it('grows monotonically: a key on the new store stays there as the percentage rises', () => {
    for (let i = 0; i < 2_000; i++) {
      const key = `k${i}`
      let seenNew = false
      for (const percent of [0, 1, 5, 10, 25, 50, 75, 100]) {
        const side = rampReadSide(percent, { routingKey: key })
        if (seenNew) expect(side).toBe('new')
        if (side === 'new') seenNew = true
      }
      expect(seenNew).toBe(true)
    }
  })
})

describe('the routing formula in PostgreSQL', () => {
  let database: TestDatabase
  beforeAll(async () => {
    database = await createTestDatabase('cutover_routing')
  })
  afterAll(async () => database?.drop())

  it('gives the same bucket as the documented SQL expression', async () => {
    const keys = Array.from({ length: 200 }, (_, i) => `tenant-${i}-Zoë`)
    const { rows } = await sql<{ key: string; bucket: string }>`
      select key, (('x' || substr(encode(sha256(convert_to(key, 'UTF8')), 'hex'), 1, 12))::bit(48)::bigint % 10000) as bucket
      from unnest(${keys}::text[]) as key`.execute(database.db)
    expect(rows).toHaveLength(keys.length)
    for (const row of rows) expect(Number(row.bucket)).toBe(routingBucket(row.key))
  })
})

describe('ramp read side and request context', () => {
  it('keeps one key on one side at a given percentage', () => {
    for (let i = 0; i < 500; i++) {
      const first = rampReadSide(30, { routingKey: `u${i}` })
      for (let j = 0; j < 5; j++) expect(rampReadSide(30, { routingKey: `u${i}` })).toBe(first)
    }
  })

  it('keeps reads without a routing key on the old store', () => {
    expect(rampReadSide(100, {})).toBe('old')
  })

  it('honours tenant overrides before buckets', () => {
    const tenants = { onNew: ['acme'], onOld: ['initech'] }
    expect(rampReadSide(0, { tenant: 'acme', routingKey: 'u1' }, tenants)).toBe('new')
    expect(rampReadSide(100, { tenant: 'initech', routingKey: 'u1' }, tenants)).toBe('old')
    expect(rampReadSide(100, { tenant: 'other' }, tenants)).toBe('new')
  })

  it('carries routing key, tenant and actor through async calls and nests', async () => {
    expect(currentCutoverContext()).toEqual({})
    await withCutoverContext({ routingKey: 'u1', tenant: 't1', actor: 'alice' }, async () => {
      await new Promise((resolve) => setTimeout(resolve, 1))
      expect(currentCutoverContext()).toEqual({ routingKey: 'u1', tenant: 't1', actor: 'alice' })
      await withCutoverContext({ routingKey: 'u2' }, async () => {
        await Promise.resolve()
        expect(currentCutoverContext()).toEqual({ routingKey: 'u2', tenant: 't1', actor: 'alice' })
      })
      expect(currentCutoverContext().routingKey).toBe('u1')
    })
    expect(currentCutoverContext()).toEqual({})
  })
})
