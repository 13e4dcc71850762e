import { hash } from 'node:crypto'
import { canonicalHash, type CanonicalOptions, canonicalRecordText } from './canonical.js'
import type { Row } from './store.js'

/**
 * A record's contribution to a batch checksum: the first 60 bits of its canonical hash as an
 * unsigned integer (sixty, so PostgreSQL can read them as a non-negative `bigint` and sum them
 * exactly, `sum(bigint)` being `numeric`).
 */
export function rowDigest(record: unknown, options: CanonicalOptions = {}): bigint {
  return textDigest(canonicalRecordText(record, options))
}

/** `rowDigest` of a record whose canonical text is already built. */
export function textDigest(canonicalText: string): bigint {
  return BigInt(`0x${hash('sha256', canonicalText, 'hex').slice(0, 15)}`)
}

/**
 * Where a record goes in an exhaustive verification, and what it adds there, from one SHA-256 of
 * its canonical text: the first 32 bits place it in a segment, the next 60 are summed. Segments
 * are ranges of this hash rather than of keys, so there is no key arithmetic and no dependence on
 * either store's key order or collation (an ObjectId in MongoDB, text under `en_US` in PostgreSQL).
 * Equal records land in the same segment on both sides; a record that differs lands in a different
 * segment on each side, so both segments differ and the row comparison finds it by key. The hashed
 * record must include its key, or two keys with equal contents could swap unnoticed.
 */
export interface RowHash {
  /** Unsigned 32-bit: the segment at `bits` is `segment >>> (32 - bits)`. */
  readonly segment: number
  readonly digest: bigint
}

export function rowHash(record: unknown, options: CanonicalOptions = {}): RowHash {
  const hex = canonicalHash(record, options)
  return { segment: Number.parseInt(hex.slice(0, 8), 16), digest: BigInt(`0x${hex.slice(8, 23)}`) }
}

/** SQL for `rowHash`, given the SQL of the hex SHA-256 of the canonical text (computed once). */
export const rowHashSql = {
  hex: (canonicalTextSql: string) => `encode(sha256(convert_to(${canonicalTextSql}, 'UTF8')), 'hex')`,
  segment: (hex: string) => `('x' || substr(${hex}, 1, 8))::bit(32)::bigint`,
  digest: (hex: string) => `('x' || substr(${hex}, 9, 15))::bit(60)::bigint`,
}

/** `record` reduced to `fields`: what the mapper produces is compared, not the new table's extras. */
export function projectOnto(record: Row, fields: readonly string[]): Row {
  const result: Row = {}
  for (const field of fields) result[field] = record[field]
  return result
}
