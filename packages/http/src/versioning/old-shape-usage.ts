import { Metrics } from '@cutover/core'

/** One client's use of one old version: requests in it, and bodies sent in its shape to HEAD's endpoints. */
export interface OldShapeUse {
  readonly client: string
  readonly version: string
  readonly requests: number
  readonly lastSeen: Date
}

export const ANONYMOUS_CLIENT = '(anonymous)'
/** Where clients beyond `maxClients` are counted, so memory stays bounded whatever sends requests. */
export const OTHER_CLIENTS = '(other)'

/**
 * Per-client counts of old-version use, so the clients still on v1 can be found and contacted
 * before the sunset. Also counted as the metric `compat.old_shape{resource,version}` (no client
 * label: client ids are unbounded; `heaviest()` answers the per-client question).
 */
export class OldShapeUsage {
  readonly metrics: Metrics
  readonly #uses = new Map<string, { client: string; version: string; requests: number; lastSeen: Date }>()
  readonly #maxClients: number

  constructor(options: { readonly metrics?: Metrics; readonly maxClients?: number } = {}) {
    this.metrics = options.metrics ?? new Metrics()
    this.#maxClients = options.maxClients ?? 10_000
  }

  record(use: { readonly client: string | undefined; readonly version: string; readonly resource: string; readonly at: Date }): void {
    const named = use.client ?? ANONYMOUS_CLIENT
    const known = this.#uses.has(`${use.version}\u0000${named}`) || this.#uses.size < this.#maxClients
    const client = known ? named : OTHER_CLIENTS
    const id = `${use.version}\u0000${client}`
    const entry = this.#uses.get(id) ?? { client, version: use.version, requests: 0, lastSeen: use.at }
    entry.requests += 1
    entry.lastSeen = use.at
    this.#uses.set(id, entry)
    this.metrics.increment('compat.old_shape', { resource: use.resource, version: use.version })
  }

  /** The clients with the most old-version requests, most first (optionally of one version). */
  heaviest(options: { readonly limit?: number; readonly version?: string } = {}): OldShapeUse[] {
    return [...this.#uses.values()]
      .filter((use) => options.version === undefined || use.version === options.version)
      .sort((a, b) => b.requests - a.requests || a.client.localeCompare(b.client))
      .slice(0, options.limit ?? 20)
      .map((use) => Object.freeze({ ...use }))
  }

  /** Requests by one client in one version (0 when none). */
  count(client: string, version: string): number {
    return this.#uses.get(`${version}\u0000${client}`)?.requests ?? 0
  }
}
