import { createHash } from 'node:crypto'
import { canonicalHash, type CanonicalOptions } from './canonical.js'
import { type KeyValue, keyString, type Row } from './store.js'

/**
 * A record's contribution to a checksum: the first 60 bits of its canonical hash as an unsigned
 * integer. Sixty bits so PostgreSQL can read them as a non-negative `bigint` (`bit(60)::bigint`)
 * and sum them exactly (`sum(bigint)` is `numeric`); a segment checksum is `(count, sum)`.
 */
export function rowDigest(record: unknown, options: CanonicalOptions = {}): bigint {
  return BigInt(`0x${canonicalHash(record, options).slice(0, 15)}`)
}

/** SQL computing `rowDigest` from an expression yielding the canonical text. */
export function rowDigestSql(canonicalTextSql: string): string {
  return `('x' || substr(encode(sha256(convert_to(${canonicalTextSql}, 'UTF8')), 'hex'), 1, 15))::bit(60)::bigint`
}

/**
 * The segment hash of a key: the first 32 bits of the MD5 of its text, unsigned. Segments are
 * ranges of this hash rather than of keys, so both stores agree on which segment a key is in
 * whatever their key order or collation (an ObjectId in MongoDB, text under `en_US` in PostgreSQL).
 * MD5 because it is fast in both places and nothing here is adversarial.
 */
export function keySegmentHash(key: KeyValue): number {
  return createHash('md5').update(keyString(key), 'utf8').digest().readUInt32BE(0)
}

/** SQL computing `keySegmentHash` from a key expression (cast to text). */
export function keySegmentHashSql(keySql: string): string {
  return `('x' || substr(md5((${keySql})::text), 1, 8))::bit(32)::bigint`
}

/** `record` reduced to `fields`: what the mapper produces is compared, not the new table's extras. */
export function projectOnto(record: Row, fields: readonly string[]): Row {
  const result: Row = {}
  for (const field of fields) result[field] = record[field]
  return result
}
