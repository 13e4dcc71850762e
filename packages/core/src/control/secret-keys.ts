import { ConfigError } from '../model/errors.js'

/** One secret key with the id stored beside what it protected, so that keys can be rotated. */
export interface SecretKey {
  readonly id: string
  readonly secret: Buffer
}

/**
 * The key that protects new entries (`current`) and the retired ones still accepted for old entries,
 * newest first. A key ring never comes from the database: the point is that whoever can write to the
 * database does not hold it.
 */
export interface KeyRing {
  readonly current: SecretKey
  readonly retired: readonly SecretKey[]
}

/**
 * Reads a key ring from two environment variables: `<current>` = `id:base64` and `<retired>` =
 * `id:base64,id:base64` (newest first). Returns undefined when `<current>` is unset. Each secret must
 * decode to at least 32 bytes; ids are letters, digits, `_`, `-`, `.`.
 */
export function keyRingFromEnv(
  env: Readonly<Record<string, string | undefined>>,
  variables: { readonly current: string; readonly retired: string },
): KeyRing | undefined {
  const current = env[variables.current]
  if (current === undefined || current === '') return undefined
  const retired = (env[variables.retired] ?? '').split(',').filter((part) => part.trim() !== '')
  const ring = { current: parseKey(variables.current, current), retired: retired.map((part) => parseKey(variables.retired, part.trim())) }
  const ids = [ring.current, ...ring.retired].map((key) => key.id)
  const duplicate = ids.find((id, i) => ids.indexOf(id) !== i)
  if (duplicate !== undefined) {
    throw new ConfigError([{ source: variables.retired, value: duplicate, message: `key id "${duplicate}" appears twice in ${variables.current}/${variables.retired}` }])
  }
  return ring
}

/** The key with this id, and its age rank in the ring (0 = current, 1 = newest retired, …). */
export function findKey(ring: KeyRing, id: string): { key: SecretKey; rank: number } | undefined {
  const keys = [ring.current, ...ring.retired]
  const rank = keys.findIndex((key) => key.id === id)
  return rank < 0 ? undefined : { key: keys[rank] as SecretKey, rank }
}

function parseKey(variable: string, text: string): SecretKey {
  const colon = text.indexOf(':')
  const id = colon < 0 ? '' : text.slice(0, colon)
  const secret = Buffer.from(colon < 0 ? '' : text.slice(colon + 1), 'base64')
  if (!/^[A-Za-z0-9_.-]+$/.test(id) || secret.length < 32) {
    // The value itself is a secret: the message names the variable only.
    throw new ConfigError([{ source: variable, value: undefined, message: `${variable} must be "<key id>:<base64 of at least 32 random bytes>", e.g. "2026-12:$(openssl rand -base64 32)"` }])
  }
  return { id, secret }
}
