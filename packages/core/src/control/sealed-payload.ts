import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto'
import { matchesAny, type Path } from '../model/canonical.js'
import { findKey, type KeyRing, keyRingFromEnv } from './secret-keys.js'

/** Environment variables holding the key that encrypts sensitive fields at rest (see `keyRingFromEnv`). */
export const PAYLOAD_KEY_ENV = { current: 'CUTOVER_PAYLOAD_KEY', retired: 'CUTOVER_PAYLOAD_RETIRED_KEYS' } as const

/** What stands in a stored payload for a sensitive value: encrypted, or (without a key) left out. */
export type SealedValue = { readonly $sealed: string } | { readonly $redacted: true }

/**
 * Keeps the values of sensitive fields out of the payloads Cutover stores (dead letters,
 * quarantine). With a key, each value is encrypted with AES-256-GCM:
 *
 *     { "$sealed": "v1.<key id>.<iv base64>.<tag base64>.<ciphertext base64>" }
 *
 * bound (as associated data) to the migration, record key and path, so a sealed value cannot be
 * moved to another row unnoticed. Without a key the value is left out (`{ "$redacted": true }`):
 * replays and reconciliation re-read the source's current state and never need it.
 */
export class PayloadSealer {
  readonly #keys: KeyRing | undefined

  /** `keys` default: read from `process.env` (`CUTOVER_PAYLOAD_KEY`); `null`: no key, leave values out. */
  constructor(keys?: KeyRing | null) {
    this.#keys = keys === null ? undefined : (keys ?? keyRingFromEnv(process.env, PAYLOAD_KEY_ENV))
  }

  /** A JSON-able copy of `payload` with every value under a `sensitive` path pattern sealed. */
  seal(payload: unknown, sensitive: readonly string[] | undefined, context: { migration: string; key: string }): unknown {
    if (!sensitive || sensitive.length === 0 || payload === undefined) return payload
    return mapLeaves(payload, [], sensitive, (value, path) => this.#sealValue(value, `${context.migration}\n${context.key}\n${path.join('.')}`))
  }

  /** The payload with every sealed value this ring can open decrypted; others stay as they are. */
  open(payload: unknown, context: { migration: string; key: string }): unknown {
    return openAll(payload, [], (sealed, path) => {
      const [version, keyId, iv, tag, data] = sealed.split('.')
      const found = this.#keys && keyId !== undefined ? findKey(this.#keys, keyId) : undefined
      if (version !== 'v1' || !found || iv === undefined || tag === undefined || data === undefined) return { $sealed: sealed }
      try {
        const decipher = createDecipheriv('aes-256-gcm', found.key.secret.subarray(0, 32), Buffer.from(iv, 'base64'))
        decipher.setAAD(Buffer.from(`${context.migration}\n${context.key}\n${path.join('.')}`, 'utf8'))
        decipher.setAuthTag(Buffer.from(tag, 'base64'))
        return JSON.parse(Buffer.concat([decipher.update(Buffer.from(data, 'base64')), decipher.final()]).toString('utf8'))
      } catch {
        return { $sealed: sealed } // moved, changed or under another key: left sealed, never guessed
      }
    })
  }

  #sealValue(value: unknown, aad: string): SealedValue {
    const key = this.#keys?.current
    if (!key) return { $redacted: true }
    const iv = randomBytes(12)
    const cipher = createCipheriv('aes-256-gcm', key.secret.subarray(0, 32), iv)
    cipher.setAAD(Buffer.from(aad, 'utf8'))
    const data = Buffer.concat([cipher.update(JSON.stringify(value) ?? 'null', 'utf8'), cipher.final()])
    return { $sealed: ['v1', key.id, iv.toString('base64'), cipher.getAuthTag().toString('base64'), data.toString('base64')].join('.') }
  }
}

/** Plain JSON of `value` with the values under matching paths replaced. */
function mapLeaves(value: unknown, path: Path, patterns: readonly string[], replace: (value: unknown, path: Path) => unknown): unknown {
  if (path.length > 0 && matchesAny(path, patterns)) return replace(toPlain(value), path)
  const plain = toPlain(value)
  if (Array.isArray(plain)) return plain.map((item, i) => mapLeaves(item, [...path, i], patterns, replace))
  if (isObject(plain)) return Object.fromEntries(Object.entries(plain).map(([k, v]) => [k, mapLeaves(v, [...path, k], patterns, replace)]))
  return plain
}

function openAll(value: unknown, path: Path, open: (sealed: string, path: Path) => unknown): unknown {
  if (Array.isArray(value)) return value.map((item, i) => openAll(item, [...path, i], open))
  if (!isObject(value)) return value
  if (typeof value.$sealed === 'string' && Object.keys(value).length === 1) return open(value.$sealed, path)
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, openAll(v, [...path, k], open)]))
}

/** JSON's view of a value (Date, ObjectId, bigint through their JSON forms). */
function toPlain(value: unknown): unknown {
  if (value === null || typeof value !== 'object') return typeof value === 'bigint' ? value.toString() : value
  if (Array.isArray(value) || Object.getPrototypeOf(value) === Object.prototype || Object.getPrototypeOf(value) === null) return value
  return JSON.parse(JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)) ?? 'null')
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}
