import { canonicalHash, type CanonicalOptions, canonicalRecordText, canonicalTextHash } from '../model/canonical.js'
import type { Row } from '../model/store.js'

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
  return BigInt(`0x${canonicalTextHash(canonicalText).slice(0, 15)}`)
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

/**
 * SQL for `rowHash`: the SHA-256 bytes of the canonical text (computed once per row), and the
 * segment and digest read from them byte by byte. `get_byte` and shifts cost a third of what hex
 * encoding the hash and casting substrings through `bit(n)` did, on every row of a verification.
 */
export const rowHashSql = {
  bytes: (canonicalTextSql: string) => `sha256(convert_to(${canonicalTextSql}, 'UTF8'))`,
  /** Bytes 0–3, big-endian: the first 32 bits. */
  segment: (bytes: string) => bigEndianBits(bytes, 0, 4, 0),
  /** Bytes 4–11 less the last nibble, big-endian: the next 60 bits. */
  digest: (bytes: string) => `(${bigEndianBits(bytes, 4, 8, 4)})`,
}

/**
 * A per-row hash computed in SQL from the canonical text: `value` once per row, then the segment
 * (unsigned 32 bits) and digest (unsigned 60 bits) read from it.
 */
export interface RowHashScheme {
  readonly name: 'sha256' | 'hashtextextended'
  /** `seed`: a 32-bit integer mixed into the built-in hash (SHA-256 has none). */
  value(canonicalTextSql: string, seed?: number): string
  segment(value: string): string
  digest(value: string): string
}

/** `rowHash` exactly: the documented canonical hash, reproducible anywhere. */
export const SHA256_ROW_HASH: RowHashScheme = {
  name: 'sha256',
  value: rowHashSql.bytes,
  segment: rowHashSql.segment,
  digest: rowHashSql.digest,
}

/**
 * PostgreSQL's built-in 64-bit text hash (`hashtextextended`, PostgreSQL 11+), several times
 * cheaper than SHA-256. Only comparable between two servers shown to compute it identically (a
 * probe of known inputs at the start of the run: it depends on the server's byte order, encoding
 * and build), and never with a streamed side, which computes SHA-256. The top 32 bits place the row
 * in a segment, the low 60 are summed: a changed row escapes only if all 64 bits of its hash equal
 * the old ones (2^-64), or if the changes in one segment cancel in the sum (about 2^-60 per
 * differing segment). Collation "C": deterministic byte hashing whatever the database's collation.
 */
export const BUILTIN_ROW_HASH: RowHashScheme = {
  name: 'hashtextextended',
  value: (text, seed = 0) => `hashtextextended((${text}) collate "C", ${seed})`,
  segment: (h) => `((${h} >> 32) & 4294967295)`,
  digest: (h) => `(${h} & 1152921504606846975)`,
}

/** Known inputs whose built-in hashes must agree between two servers: ASCII, multi-byte UTF-8, long. */
export const ROW_HASH_PROBE_SQL = `select string_agg(hashtextextended(v collate "C", 0)::text, ',' order by i) as probe
  from unnest(array['', '{"id":1}', '{"name":"Zoë Ünal – 東京 😀"}', repeat('{"x":"abc"}', 500), E'tab\tnew\nline']) with ordinality as p(v, i)`

/** `length` bytes of `bytes` from `from`, big-endian, as a bigint, shifted right by `drop` bits. */
function bigEndianBits(bytes: string, from: number, length: number, drop: number): string {
  const parts: string[] = []
  for (let i = 0; i < length; i++) {
    const shift = 8 * (length - 1 - i) - drop
    const byte = `get_byte(${bytes}, ${from + i})`
    parts.push(shift >= 0 ? `(${byte}::bigint << ${shift})` : `(${byte} >> ${-shift})`)
  }
  return parts.join(' | ')
}

/** `record` reduced to `fields`: what the mapper produces is compared, not the new table's extras. */
export function projectOnto(record: Row, fields: readonly string[]): Row {
  const result: Row = {}
  for (const field of fields) result[field] = record[field]
  return result
}
