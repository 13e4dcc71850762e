import { hash } from 'node:crypto'

/**
 * The canonical form of a record: one representation per value, so that a MongoDB document, a
 * PostgreSQL row and a mapped record that mean the same compare (and hash) the same.
 *
 * Canonical text, the input of `canonicalHash`, is compact JSON built by these rules:
 *
 * | value                                   | canonical text                                        |
 * |-----------------------------------------|-------------------------------------------------------|
 * | null, undefined                         | `null`; inside objects the entry is dropped when       |
 * |                                         | `nullEqualsMissing` (the default)                      |
 * | boolean                                 | `true` / `false`                                       |
 * | number, bigint, Decimal128, Long, and   | the decimal in plain notation, no exponent, no        |
 * | strings at paths declared `numeric`     | leading `+` or zeros, no trailing fractional zeros,    |
 * |                                         | `-0` → `0` (e.g. `12.5`, `-0.001`, `1000000`);         |
 * |                                         | NaN / ±Infinity → `"NaN"`, `"Infinity"`, `"-Infinity"` |
 * | string                                  | JSON string (`JSON.stringify`)                         |
 * | Date                                    | JSON string, ISO 8601 in UTC truncated to the         |
 * |                                         | precision: `"2024-05-01T09:30:00.123Z"` (ms, default), |
 * |                                         | `"…:00Z"` (s), `"…:00.123000Z"` (us)                   |
 * | ObjectId                                | JSON string of its 24 lowercase hex digits             |
 * | UUID (BSON Binary subtype 4)            | JSON string, lowercase 8-4-4-4-12                      |
 * | Buffer, Uint8Array, other Binary        | JSON string `"\\x"` + lowercase hex (PostgreSQL bytea) |
 * | array                                   | `[a,b]`; arrays at paths declared `unordered` have     |
 * |                                         | their elements sorted by canonical text                |
 * | object                                  | `{"k":v}` with keys sorted by UTF-16 code units        |
 * |                                         | (byte order for ASCII names), paths in `ignore` removed|
 *
 * `canonicalHash` is the lowercase hex SHA-256 of the UTF-8 bytes of the canonical text.
 */
export interface CanonicalOptions {
  /** Precision timestamps are compared and hashed at. Default `ms`. */
  readonly timestampPrecision?: 's' | 'ms' | 'us'
  /** Whether a field set to null equals an absent field. Default `true`. */
  readonly nullEqualsMissing?: boolean
  /** Paths (dotted, `*` for any one segment) removed before comparing and hashing. */
  readonly ignore?: readonly string[]
  /** Paths of arrays whose order carries no meaning. */
  readonly unordered?: readonly string[]
  /** Paths whose string values are decimals (PostgreSQL `numeric`/`bigint` arrive as strings). */
  readonly numeric?: readonly string[]
}

/** A number in canonical decimal text. A class, so it can't be confused with a string value. */
export class CanonicalNumber {
  constructor(readonly text: string) {}
}

export type CanonicalValue =
  | null
  | boolean
  | string
  | CanonicalNumber
  | readonly CanonicalValue[]
  | { readonly [key: string]: CanonicalValue }

export type Path = readonly (string | number)[]

/** Converts any record or value to its canonical value (see the table above). */
export function canonicalize(value: unknown, options: CanonicalOptions = {}, path: Path = []): CanonicalValue {
  if (value === null || value === undefined) return null
  switch (typeof value) {
    case 'boolean':
      return value
    case 'number':
      return new CanonicalNumber(numberText(value))
    case 'bigint':
      return new CanonicalNumber(value.toString())
    case 'string':
      if (options.numeric && matchesAny(path, options.numeric)) {
        const text = normalizeDecimal(value)
        if (text !== undefined) return new CanonicalNumber(text)
      }
      return value
    case 'object':
      return canonicalizeObject(value as object, options, path)
    default:
      return String(value)
  }
}

function canonicalizeObject(value: object, options: CanonicalOptions, path: Path): CanonicalValue {
  if (value instanceof Date) return timestampText(value, options.timestampPrecision ?? 'ms')
  if (value instanceof Uint8Array) return `\\x${Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('hex')}`

  const bson = (value as { _bsontype?: string })._bsontype
  if (bson !== undefined) return canonicalizeBson(value, bson)

  // Mongoose documents: compare their data, not their internals.
  const maybeDocument = value as { $__?: unknown; toObject?: (o: object) => unknown }
  if (maybeDocument.$__ !== undefined && typeof maybeDocument.toObject === 'function') {
    return canonicalize(maybeDocument.toObject({ depopulate: true, virtuals: false, getters: false }), options, path)
  }

  if (Array.isArray(value)) {
    const items = value.map((item, index) => canonicalize(item, options, [...path, index]))
    if (options.unordered && matchesAny(path, options.unordered)) {
      return items
        .map((item) => [canonicalText(item), item] as const)
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([, item]) => item)
    }
    return items
  }

  const dropNulls = options.nullEqualsMissing ?? true
  const result: Record<string, CanonicalValue> = {}
  for (const key of Object.keys(value).sort()) {
    const childPath = [...path, key]
    if (options.ignore && matchesAny(childPath, options.ignore)) continue
    const child = canonicalize((value as Record<string, unknown>)[key], options, childPath)
    if (child === null && dropNulls) continue
    result[key] = child
  }
  return result
}

function canonicalizeBson(value: object, bsonType: string): CanonicalValue {
  const v = value as { toHexString?: () => string; toString(): string; sub_type?: number; buffer?: Uint8Array }
  switch (bsonType) {
    case 'ObjectId':
    case 'ObjectID':
      return v.toHexString ? v.toHexString().toLowerCase() : v.toString().toLowerCase()
    case 'Decimal128':
    case 'Long':
    case 'Int32':
    case 'Double':
      return new CanonicalNumber(normalizeDecimal(v.toString()) ?? v.toString())
    case 'Binary': {
      const hex = Buffer.from(v.buffer ?? new Uint8Array()).toString('hex')
      if (v.sub_type === 4 && hex.length === 32) {
        return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`
      }
      return `\\x${hex}`
    }
    default:
      return v.toString()
  }
}

/** Canonical text of a canonical value (see the table at the top of this file). */
export function canonicalText(value: CanonicalValue): string {
  if (value === null) return 'null'
  if (typeof value === 'boolean') return value ? 'true' : 'false'
  if (typeof value === 'string') return JSON.stringify(value)
  if (value instanceof CanonicalNumber) return numberCanonicalText(value.text)
  if (Array.isArray(value)) return `[${value.map(canonicalText).join(',')}]`
  const object = value as { readonly [key: string]: CanonicalValue }
  return `{${Object.keys(object)
    .sort()
    .map((key) => `${JSON.stringify(key)}:${canonicalText(object[key] as CanonicalValue)}`)
    .join(',')}}`
}

/** Lowercase hex SHA-256 of the canonical text of `record`. Equal records hash equal on any store. */
export function canonicalHash(record: unknown, options: CanonicalOptions = {}): string {
  return canonicalTextHash(canonicalRecordText(record, options))
}

/** `canonicalHash` of a record whose canonical text is already built. */
export function canonicalTextHash(canonicalText: string): string {
  // The one-shot `hash` costs a third of `createHash().update().digest()`: it runs per row.
  return hash('sha256', canonicalText, 'hex')
}

/**
 * `canonicalText(canonicalize(value, options))`, written directly when no rule needs a value's path
 * (`ignore`, `unordered`, `numeric`): no intermediate canonical value, no path arrays. Backfill
 * verification and exhaustive verification build this text for every row of both stores.
 */
export function canonicalRecordText(value: unknown, options: CanonicalOptions = {}): string {
  if (hasPathRules(options)) return canonicalText(canonicalize(value, options))
  return directText(value, options.timestampPrecision ?? 'ms', options.nullEqualsMissing ?? true)
}

/** Whether any rule depends on where a value sits (then the canonical value must be built). */
export function hasPathRules(options: CanonicalOptions): boolean {
  return Boolean(options.ignore?.length || options.unordered?.length || options.numeric?.length)
}

function directText(value: unknown, precision: 's' | 'ms' | 'us', dropNulls: boolean): string {
  if (value === null || value === undefined) return 'null'
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value)
    case 'number':
      return numberCanonicalText(numberText(value))
    case 'boolean':
      return value ? 'true' : 'false'
    case 'bigint':
      return value.toString()
    case 'object':
      break
    default:
      return JSON.stringify(String(value))
  }
  if (Array.isArray(value)) {
    let text = '['
    for (let i = 0; i < value.length; i++) text += (i === 0 ? '' : ',') + directText(value[i], precision, dropNulls)
    return `${text}]`
  }
  if (value instanceof Date) return JSON.stringify(timestampText(value, precision))
  if (value instanceof Uint8Array || (value as { _bsontype?: string })._bsontype !== undefined || (value as { $__?: unknown }).$__ !== undefined) {
    return canonicalText(canonicalize(value, { timestampPrecision: precision, nullEqualsMissing: dropNulls }))
  }
  const object = value as Record<string, unknown>
  const keys = Object.keys(object).sort()
  let text = '{'
  let first = true
  for (const key of keys) {
    const child = object[key]
    if (dropNulls && (child === null || child === undefined)) continue
    text += `${first ? '' : ','}${JSON.stringify(key)}:${directText(child, precision, dropNulls)}`
    first = false
  }
  return `${text}}`
}

/** A canonical number's text: plain decimals bare, `NaN`/`Infinity` quoted. */
function numberCanonicalText(text: string): string {
  return /^-?[0-9]/.test(text) ? text : JSON.stringify(text)
}

function timestampText(date: Date, precision: 's' | 'ms' | 'us'): string {
  if (Number.isNaN(date.getTime())) return 'Invalid Date'
  const iso = date.toISOString() // always UTC, millisecond precision
  if (precision === 'ms') return iso
  if (precision === 's') return `${iso.slice(0, 19)}Z`
  return `${iso.slice(0, 23)}000Z`
}

function numberText(value: number): string {
  if (Number.isNaN(value)) return 'NaN'
  if (!Number.isFinite(value)) return value > 0 ? 'Infinity' : '-Infinity'
  if (Object.is(value, -0)) return '0'
  // Integers below 1e21 print as plain digits already; skip the regex (the common case, per row).
  if (Number.isInteger(value) && Math.abs(value) < 1e21) return String(value)
  return normalizeDecimal(String(value)) ?? String(value)
}

/**
 * `"+0012.50"` → `"12.5"`, `"1e21"` → `"1000000000000000000000"`, `"-0.0"` → `"0"`; `undefined` if
 * the text is not a decimal number.
 */
export function normalizeDecimal(text: string): string | undefined {
  const match = /^\s*([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?\s*$/.exec(text)
  if (!match) return undefined
  const [, sign = '', intPart = '', fracPart = '', expPart] = match
  if (intPart === '' && fracPart === '') return undefined
  let digits = intPart + fracPart
  let point = intPart.length + (expPart === undefined ? 0 : Number.parseInt(expPart, 10))
  if (point < 0) {
    digits = '0'.repeat(-point) + digits
    point = 0
  }
  if (point > digits.length) digits += '0'.repeat(point - digits.length)
  const whole = digits.slice(0, point).replace(/^0+/, '') || '0'
  const fraction = digits.slice(point).replace(/0+$/, '')
  const body = fraction === '' ? whole : `${whole}.${fraction}`
  return sign === '-' && body !== '0' ? `-${body}` : body
}

/** Whether a concrete path (`items.3.price`) matches a pattern (`items.*.price`); `*` is one segment. */
export function pathMatches(path: Path, pattern: string): boolean {
  const parts = pattern.split('.')
  if (parts.length !== path.length) return false
  return parts.every((part, i) => part === '*' || part === String(path[i]))
}

/** Whether `path` or one of its ancestors matches one of the patterns. */
export function matchesAny(path: Path, patterns: readonly string[]): boolean {
  for (const pattern of patterns) {
    const length = pattern.split('.').length
    if (length <= path.length && pathMatches(path.slice(0, length), pattern)) return true
  }
  return false
}

export function formatPath(path: Path): string {
  return path.join('.')
}
