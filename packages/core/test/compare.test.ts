import { createHash } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { canonicalHash, canonicalText, canonicalize, compareRecords, normalizeDecimal } from '../src/index.js'

// Stand-ins shaped like the BSON driver's values (the core must not depend on bson).
const objectId = (hex: string) => ({ _bsontype: 'ObjectId', toHexString: () => hex, toString: () => hex })
const decimal128 = (text: string) => ({ _bsontype: 'Decimal128', toString: () => text })
const uuidBinary = (hex: string) => ({ _bsontype: 'Binary', sub_type: 4, buffer: Buffer.from(hex, 'hex') })

describe('canonical form', () => {
  it('ignores key order', () => {
    expect(canonicalHash({ a: 1, b: { c: 2, d: 3 } })).toBe(canonicalHash({ b: { d: 3, c: 2 }, a: 1 }))
  })

  it('writes the documented canonical text', () => {
    const text = canonicalText(
      canonicalize({ z: 'x', a: [1.50, true, null], when: new Date('2024-05-01T09:30:00.123Z'), id: objectId('65f0c0ffee0000000000abcd'), big: 12345678901234567890n, gone: null }),
    )
    expect(text).toBe('{"a":[1.5,true,null],"big":12345678901234567890,"id":"65f0c0ffee0000000000abcd","when":"2024-05-01T09:30:00.123Z","z":"x"}')
    expect(canonicalHash({ z: 'x' })).toBe(createHash('sha256').update('{"z":"x"}').digest('hex'))
  })

  it('normalizes decimals', () => {
    expect(normalizeDecimal('+0012.50')).toBe('12.5')
    expect(normalizeDecimal('-0.000')).toBe('0')
    expect(normalizeDecimal('1e21')).toBe('1000000000000000000000')
    expect(normalizeDecimal('1.5e-3')).toBe('0.0015')
    expect(normalizeDecimal('-12.340e1')).toBe('-123.4')
    expect(normalizeDecimal('12abc')).toBeUndefined()
    expect(normalizeDecimal('.')).toBeUndefined()
  })
})

describe('compareRecords rules', () => {
  it('reports equal records as equal', () => {
    expect(compareRecords({ id: 1, name: 'a' }, { name: 'a', id: 1 })).toEqual({ equal: true, differences: [] })
  })

  it('names the differing field, its kind and both values', () => {
    const result = compareRecords({ id: 1, name: 'Ada', email: 'a@x' }, { id: 1, name: 'Ade', phone: '1' })
    expect(result.equal).toBe(false)
    expect(result.differences).toEqual([
      { path: 'email', kind: 'missing', expected: 'a@x' },
      { path: 'name', kind: 'changed', expected: 'Ada', actual: 'Ade' },
      { path: 'phone', kind: 'unexpected', actual: '1' },
    ])
  })

  it('compares timestamps in UTC at the configured precision', () => {
    const a = new Date('2024-05-01T09:30:00.123Z')
    const b = new Date('2024-05-01T11:30:00.999+02:00')
    expect(compareRecords({ t: a }, { t: b }).equal).toBe(false)
    expect(compareRecords({ t: a }, { t: b }, { timestampPrecision: 's' }).equal).toBe(true)
    expect(compareRecords({ t: a }, { t: '2024-05-01T09:30:00.123Z' }).equal).toBe(true)
    expect(compareRecords({ t: a }, { t: new Date('2024-05-01T09:30:01.123Z') }, { timestampPrecision: 's' }).equal).toBe(false)
  })

  it('compares numbers and decimals by value, and numeric strings only where declared', () => {
    expect(compareRecords({ n: 1.5 }, { n: decimal128('1.50') }).equal).toBe(true)
    expect(compareRecords({ n: 10 }, { n: 10n }).equal).toBe(true)
    expect(compareRecords({ price: 12.5 }, { price: '12.50' }).equal).toBe(false)
    expect(compareRecords({ price: 12.5 }, { price: '12.50' }, { numeric: ['price'] }).equal).toBe(true)
    // A zip code is a string, not a number: leading zeros matter unless declared numeric.
    expect(compareRecords({ zip: '01234' }, { zip: '1234' }).equal).toBe(false)
  })

  it('compares ObjectIds and UUIDs as their lowercase strings', () => {
    expect(compareRecords({ id: objectId('65f0c0ffee0000000000abcd') }, { id: '65f0c0ffee0000000000abcd' }).equal).toBe(true)
    expect(compareRecords({ u: uuidBinary('0123456789abcdef0123456789abcdef') }, { u: '01234567-89ab-cdef-0123-456789abcdef' }).equal).toBe(true)
    expect(compareRecords({ id: objectId('65f0c0ffee0000000000abcd') }, { id: '65f0c0ffee0000000000abce' }).equal).toBe(false)
  })

  it('treats null as missing by default, and not when told otherwise', () => {
    expect(compareRecords({ a: 1, b: null }, { a: 1 }).equal).toBe(true)
    expect(compareRecords({ a: 1, b: undefined }, { a: 1, b: null }).equal).toBe(true)
    const strict = compareRecords({ a: 1, b: null }, { a: 1 }, { nullEqualsMissing: false })
    expect(strict.differences).toEqual([{ path: 'b', kind: 'missing', expected: null }])
  })

  it('keeps array order unless the path is declared unordered', () => {
    expect(compareRecords({ tags: ['a', 'b'] }, { tags: ['b', 'a'] }).equal).toBe(false)
    expect(compareRecords({ tags: ['a', 'b'] }, { tags: ['b', 'a'] }, { unordered: ['tags'] }).equal).toBe(true)
    expect(compareRecords({ tags: ['a', 'b', 'b'] }, { tags: ['b', 'a', 'a'] }, { unordered: ['tags'] }).equal).toBe(false)
    expect(compareRecords({ items: [{ t: ['x', 'y'] }] }, { items: [{ t: ['y', 'x'] }] }, { unordered: ['items.*.t'] }).equal).toBe(true)
  })

  it('reports array element differences by index', () => {
    const result = compareRecords({ items: [{ qty: 1 }, { qty: 2 }] }, { items: [{ qty: 1 }, { qty: 3 }, { qty: 4 }] })
    expect(result.differences).toEqual([
      { path: 'items.1.qty', kind: 'changed', expected: 2, actual: 3 },
      { path: 'items.2', kind: 'unexpected', actual: { qty: 4 } },
    ])
  })

  it('ignores the paths it is told to ignore, with wildcards', () => {
    expect(compareRecords({ id: 1, updated_at: 1 }, { id: 1, updated_at: 2 }, { ignore: ['updated_at'] }).equal).toBe(true)
    expect(compareRecords({ items: [{ id: 1, etag: 'a' }] }, { items: [{ id: 1, etag: 'b' }] }, { ignore: ['items.*.etag'] }).equal).toBe(true)
    expect(compareRecords({ items: [{ id: 1, etag: 'a' }] }, { items: [{ id: 2, etag: 'b' }] }, { ignore: ['items.*.etag'] }).equal).toBe(false)
  })

  it('applies numeric tolerance per path', () => {
    expect(compareRecords({ total: 10.0 }, { total: 10.004 }, { tolerance: { total: 0.005 } }).equal).toBe(true)
    expect(compareRecords({ total: 10.0 }, { total: 10.006 }, { tolerance: { total: 0.005 } }).equal).toBe(false)
    expect(compareRecords({ other: 10.0 }, { other: 10.004 }, { tolerance: { total: 0.005 } }).equal).toBe(false)
  })

  it('never prints values of sensitive fields, even nested ones', () => {
    const result = compareRecords(
      { id: 1, ssn: '123-45-6789', card: { number: '4111111111111111', brand: 'visa' } },
      { id: 1, ssn: '987-65-4321', card: { number: '4000000000000002', brand: 'amex' } },
      { sensitive: ['ssn', 'card.number'] },
    )
    expect(result.differences).toEqual([
      { path: 'card.brand', kind: 'changed', expected: 'visa', actual: 'amex' },
      { path: 'card.number', kind: 'changed', redacted: true },
      { path: 'ssn', kind: 'changed', redacted: true },
    ])
    const report = JSON.stringify(result)
    for (const secret of ['123-45-6789', '987-65-4321', '4111111111111111', '4000000000000002']) expect(report).not.toContain(secret)
  })

  it('hashes equal canonical forms equally and different ones differently', () => {
    const mongoSide = { _id: objectId('65f0c0ffee0000000000abcd'), total: decimal128('10.50'), at: new Date('2024-01-01T00:00:00Z'), note: null }
    const pgSide = { at: new Date('2024-01-01T00:00:00.000Z'), total: 10.5, _id: '65f0c0ffee0000000000abcd' }
    expect(canonicalHash(mongoSide)).toBe(canonicalHash(pgSide))
    expect(canonicalHash({ ...pgSide, total: 10.51 })).not.toBe(canonicalHash(pgSide))
  })
})
