import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { canonicalHash, canonicalRecordText, canonicalText, canonicalize, compareRecords, normalizeDecimal } from '../src/index.js'

/** Rebuilds an object with its keys in another order, recursively. */
function shuffleKeys(value: unknown, seed: number): unknown {
  if (Array.isArray(value)) return value.map((v, i) => shuffleKeys(v, seed + i))
  if (value && typeof value === 'object' && !(value instanceof Date)) {
    const entries = Object.entries(value)
    entries.sort(([a], [b]) => ((a.length * 31 + seed) % 7) - ((b.length * 31 + seed) % 7) || (seed % 2 ? a.localeCompare(b) : b.localeCompare(a)))
    return Object.fromEntries(entries.map(([k, v]) => [k, shuffleKeys(v, seed + 1)]))
  }
  return value
}

const record = fc.dictionary(
  fc.string({ minLength: 1, maxLength: 6 }),
  fc.oneof(
    fc.string(),
    fc.double({ noNaN: true }),
    fc.integer(),
    fc.boolean(),
    fc.constant(null),
    fc.date({ noInvalidDate: true }),
    fc.array(fc.oneof(fc.integer(), fc.string()), { maxLength: 4 }),
    fc.dictionary(fc.string({ minLength: 1, maxLength: 3 }), fc.integer(), { maxKeys: 3 }),
  ),
  { maxKeys: 8 },
)

/** Also values whose text does not survive a JSON round trip (bigint, NaN, bytes, invalid dates). */
const wideRecord = fc.dictionary(
  fc.string({ minLength: 1, maxLength: 6 }),
  fc.oneof(
    record,
    fc.constant(undefined),
    fc.bigInt(),
    fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, -0, 1e21, 1.5e-7, 2 ** 60),
    fc.date(),
    fc.uint8Array({ maxLength: 4 }),
    fc.array(fc.oneof(fc.constant(null), fc.double(), record), { maxLength: 3 }),
  ),
  { maxKeys: 8 },
)

describe('canonical form (property-based)', () => {
  it('hash and comparison ignore key order', () => {
    fc.assert(
      fc.property(record, fc.integer({ min: 0, max: 100 }), (r, seed) => {
        const shuffled = shuffleKeys(r, seed)
        expect(canonicalHash(shuffled)).toBe(canonicalHash(r))
        expect(compareRecords(r, shuffled).equal).toBe(true)
      }),
      { numRuns: 500 },
    )
  })

  it('the direct canonical text of a record is the text of its canonical value', () => {
    fc.assert(
      fc.property(wideRecord, fc.constantFrom<'s' | 'ms' | 'us'>('s', 'ms', 'us'), fc.boolean(), (r, timestampPrecision, nullEqualsMissing) => {
        const options = { timestampPrecision, nullEqualsMissing }
        expect(canonicalRecordText(r, options)).toBe(canonicalText(canonicalize(r, options)))
        expect(canonicalRecordText([r, [r]], options)).toBe(canonicalText(canonicalize([r, [r]], options)))
      }),
      { numRuns: 1_000 },
    )
  })

  it('canonical text is valid JSON that re-canonicalizes to itself', () => {
    fc.assert(
      fc.property(record, (r) => {
        const text = canonicalText(canonicalize(r))
        expect(canonicalText(canonicalize(JSON.parse(text)))).toBe(text)
      }),
      { numRuns: 500 },
    )
  })

  it('a record equals itself and differs from any record with one changed field', () => {
    fc.assert(
      fc.property(record, fc.string({ minLength: 1, maxLength: 6 }), fc.string({ minLength: 1 }), (r, field, value) => {
        expect(compareRecords(r, r).equal).toBe(true)
        const changed = { ...r, [field]: `${value}\u0001` }
        const result = compareRecords(r, changed)
        expect(result.equal).toBe(false)
        expect(result.differences.map((d) => d.path)).toContain(field)
        expect(canonicalHash(changed)).not.toBe(canonicalHash(r))
      }),
      { numRuns: 500 },
    )
  })

  it('normalizes a number and its decimal text to the same canonical number', () => {
    fc.assert(
      fc.property(fc.double({ noNaN: true, noDefaultInfinity: true }), (n) => {
        expect(Number(normalizeDecimal(String(n)))).toBe(Object.is(n, -0) ? 0 : n)
        expect(canonicalHash({ n })).toBe(canonicalHash({ n: String(n) }, { numeric: ['n'] }))
      }),
      { numRuns: 1_000 },
    )
  })
})
