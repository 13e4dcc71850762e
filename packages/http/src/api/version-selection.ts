import { ConfigError } from '@cutover/core'

/** Where a request's version comes from; tried in the configured order. */
export type VersionSource = 'path' | 'header' | 'client' | 'default'

/**
 * How a request's version is chosen: by path (`/v1/users`), by a header (`Api-Version: 1`), or by
 * the version pinned for the client (Stripe's account version: what a client gets when it names
 * none, so moving a client is a setting, not a deploy). HEAD when nothing names one.
 */
export interface VersionSelection {
  /** Default `['path', 'header', 'client']`. */
  readonly order?: readonly Exclude<VersionSource, 'default'>[]
  /** Default `api-version`. */
  readonly header?: string
  /** Who the client is (an API key, a token's subject). Default: the `x-client-id` header. */
  readonly client?: (header: (name: string) => string | undefined) => string | undefined
  readonly pinned?: Readonly<Record<string, string>> | ((client: string) => string | undefined)
  /** The version when nothing names one. Default: HEAD. */
  readonly default?: string
}

export interface ChosenVersion {
  readonly version: string
  readonly source: VersionSource
  readonly client: string | undefined
}

export class VersionSelector {
  readonly #order: readonly Exclude<VersionSource, 'default'>[]
  readonly #header: string
  readonly #client: (header: (name: string) => string | undefined) => string | undefined
  readonly #pinned: (client: string) => string | undefined
  readonly #default: string

  constructor(selection: VersionSelection, head: string) {
    this.#order = selection.order ?? ['path', 'header', 'client']
    const unknown = this.#order.filter((s) => !['path', 'header', 'client'].includes(s))
    if (unknown.length > 0) throw new ConfigError(unknown.map((s) => ({ source: 'selection.order', value: s, message: `version source "${s}" is not one of path, header, client` })))
    this.#header = (selection.header ?? 'api-version').toLowerCase()
    this.#client = selection.client ?? ((header) => header('x-client-id'))
    const pinned = selection.pinned ?? {}
    this.#pinned = typeof pinned === 'function' ? pinned : (client) => pinned[client]
    this.#default = selection.default ?? head
  }

  get headerName(): string {
    return this.#header
  }

  choose(pathVersion: string | undefined, header: (name: string) => string | undefined): ChosenVersion {
    const client = this.#client(header)
    const candidates: Record<Exclude<VersionSource, 'default'>, () => string | undefined> = {
      path: () => pathVersion,
      header: () => header(this.#header)?.trim() || undefined,
      client: () => (client === undefined ? undefined : this.#pinned(client)),
    }
    for (const source of this.#order) {
      const version = candidates[source]()
      if (version !== undefined) return { version, source, client }
    }
    return { version: this.#default, source: 'default', client }
  }
}
