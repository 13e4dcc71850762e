import { createHash } from 'node:crypto'
import type { Side } from './phase.js'

/** Routing buckets: a key's bucket is in `0 … BUCKETS - 1`; `percent` p routes buckets `< p × 100`. */
export const BUCKETS = 10_000

/**
 * The bucket of a routing key (user id, tenant id), stable across processes, releases and languages:
 *
 *     bucket = uint48_be(sha256(utf8(key))[0..6]) mod 10000
 *
 * i.e. the first six bytes of the SHA-256 of the key's UTF-8 bytes, read as a big-endian unsigned
 * integer, modulo 10000. In PostgreSQL:
 *
 *     ('x' || substr(encode(sha256(convert_to(key, 'UTF8')), 'hex'), 1, 12))::bit(48)::bigint % 10000
 *
 * SHA-256 rather than a fast non-cryptographic hash because its output is uniform for any key
 * pattern (sequential ids, common prefixes) and available everywhere; 2^48 mod 10000 leaves a bias
 * below 10^-10.
 */
export function routingBucket(key: string | number | bigint): number {
  const digest = createHash('sha256').update(String(key), 'utf8').digest()
  return digest.readUIntBE(0, 6) % BUCKETS
}

/** Whether a bucket falls inside a read percentage (0–100, two decimals of precision). */
export function bucketInPercent(bucket: number, percent: number): boolean {
  return bucket < Math.round(percent * (BUCKETS / 100))
}

/** Who a tenant-by-tenant rollout has already moved: these tenants read from the new store in `ramp`. */
export interface TenantOverrides {
  readonly onNew?: readonly string[]
  readonly onOld?: readonly string[]
}

/**
 * The side that serves a read in `ramp`. Tenant overrides win; otherwise the routing key's bucket
 * decides. A read with no routing key stays on the old store: without a key there is no way to keep
 * one user's reads consistent across requests.
 */
export function rampReadSide(
  percent: number,
  context: { routingKey?: string | number | bigint | undefined; tenant?: string | undefined },
  tenants: TenantOverrides = {},
): Side {
  if (context.tenant !== undefined) {
    if (tenants.onOld?.includes(context.tenant)) return 'old'
    if (tenants.onNew?.includes(context.tenant)) return 'new'
  }
  const key = context.routingKey ?? context.tenant
  if (key === undefined) return 'old'
  return bucketInPercent(routingBucket(key), percent) ? 'new' : 'old'
}
