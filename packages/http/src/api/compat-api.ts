import { createJsonLogger, type Logger } from '@cutover/core'
import { changelog, changelogHtml, orderedVersions, type ChangelogEntry } from '../versioning/changelog.js'
import { BodyValidationError, COMPAT_ERROR_CODES, HttpError } from '../versioning/http-error.js'
import { defineLifecycles, isSunset, lifecycleHeaders, type VersionLifecycle, type VersionLifecycleDefinition } from '../versioning/lifecycle.js'
import { OldShapeUsage } from '../versioning/old-shape-usage.js'
import type { VersionChain } from '../versioning/version-chain.js'
import { json, type CompatRequest, type CompatResponse } from './request.js'
import type { ResourceHandlers } from './resource.js'
import { RESOURCE_METHODS } from './resource-methods.js'
import { VersionSelector, type ChosenVersion, type VersionSelection } from './version-selection.js'

export interface CompatApiOptions {
  readonly resources: readonly { readonly chain: VersionChain; readonly handlers: ResourceHandlers }[]
  /** Deprecation and sunset per version, checked here, at start-up. */
  readonly versions?: Readonly<Record<string, VersionLifecycleDefinition>>
  readonly selection?: VersionSelection
  readonly usage?: OldShapeUsage
  readonly maxPageSize?: number
  readonly logger?: Logger
  /** The clock sunsets are judged by. */
  readonly now?: () => Date
}

/** Where a request lands once the version is settled (the fall-forward header is set here). */
interface Served {
  readonly chosen: ChosenVersion
  readonly version: string
  readonly headers: Record<string, string>
}

/**
 * The framework-free compatibility layer: one `handle(request)` that every adapter (Express,
 * Fastify, Hono) calls. Paths below the mount point: `/<resource>[/<key>]`, `/v<version>/<resource>[/<key>]`,
 * `/changelog` (JSON) and `/changelog.html`.
 */
export class CompatApi {
  readonly usage: OldShapeUsage
  readonly head: string
  readonly #resources: ReadonlyMap<string, { chain: VersionChain; handlers: ResourceHandlers }>
  readonly #lifecycles: ReadonlyMap<string, VersionLifecycle>
  readonly #selector: VersionSelector
  readonly #versions: readonly string[]
  readonly #maxPageSize: number
  readonly #logger: Logger
  readonly #now: () => Date

  constructor(options: CompatApiOptions) {
    this.#resources = new Map(options.resources.map((r) => [r.chain.resource, r]))
    this.#versions = orderedVersions(options.resources.map((r) => r.chain))
    this.head = this.#versions.at(-1) ?? ''
    this.#lifecycles = defineLifecycles(options.versions ?? {}, { versions: this.#versions, head: this.head })
    this.#selector = new VersionSelector(options.selection ?? {}, this.head)
    this.usage = options.usage ?? new OldShapeUsage()
    this.#maxPageSize = options.maxPageSize ?? 100
    this.#logger = options.logger ?? createJsonLogger({ minLevel: 'warn' })
    this.#now = options.now ?? (() => new Date())
  }

  changelog(): ChangelogEntry[] {
    return changelog([...this.#resources.values()].map((r) => r.chain), this.#lifecycles)
  }

  /** Answers one request; never throws (a handler's unexpected error is logged and answered 500). */
  async handle(request: CompatRequest): Promise<CompatResponse> {
    const url = new URL(request.url, 'http://compat.invalid')
    const segments = url.pathname.split('/').filter(Boolean).map(decodeURIComponent)
    if (segments.length === 1 && segments[0] === 'changelog') return json(200, { versions: this.changelog() })
    if (segments.length === 1 && segments[0] === 'changelog.html') return { status: 200, headers: {}, body: changelogHtml(this.changelog()), contentType: 'text/html; charset=utf-8' }
    const pathVersion = /^v(.+)$/.exec(segments[0] ?? '')?.[1]
    // `/v9/users` names a version (unknown: 400), `/vip/…` a resource when `vip` is one.
    const versioned = pathVersion !== undefined && (this.#versions.includes(pathVersion) || this.#resources.has(segments[1] ?? ''))
    const [resource, key, ...rest] = versioned ? segments.slice(1) : segments
    const target = resource === undefined ? undefined : this.#resources.get(resource)
    if (!target || rest.length > 0) return this.#error(new HttpError(404, COMPAT_ERROR_CODES.notFound, `no resource at ${url.pathname}`), undefined, {})
    let served: Served | undefined
    try {
      served = this.#serve(target.chain, this.#selector.choose(versioned ? pathVersion : undefined, request.header))
      const method = RESOURCE_METHODS[`${request.method.toUpperCase()} ${key === undefined ? 'collection' : 'item'}`]
      if (!method) throw new HttpError(405, COMPAT_ERROR_CODES.methodNotAllowed, `${request.method} is not allowed on ${url.pathname}`)
      this.#count(served.chosen, served.chosen.version, target.chain)
      const response = await method({
        ...target,
        version: served.version,
        key,
        body: request.body,
        query: url.searchParams,
        maxPageSize: this.#maxPageSize,
        onBodyVersion: (version) => {
          served!.headers['api-body-version'] = version
          this.#count(served!.chosen, version, target.chain)
        },
      })
      return { ...response, headers: { ...served.headers, ...response.headers } }
    } catch (error) {
      return this.#error(error, served?.version === undefined ? undefined : { chain: target.chain, version: served.version }, served?.headers ?? {})
    }
  }

  /** The version that answers: the one asked for, unless its sunset has passed (410, or the next one still served). */
  #serve(chain: VersionChain, chosen: ChosenVersion): Served {
    if (!chain.has(chosen.version)) {
      throw new HttpError(400, COMPAT_ERROR_CODES.unknownVersion, `API version "${chosen.version}" (from the ${chosen.source}) is not one of ${chain.versions.join(', ')}`)
    }
    const lifecycle = this.#lifecycles.get(chosen.version)
    const headers: Record<string, string> = { ...lifecycleHeaders(lifecycle), vary: this.#selector.headerName }
    if (!isSunset(lifecycle, this.#now())) return { chosen, version: chosen.version, headers: { ...headers, 'api-version': chosen.version } }
    const successor = chain.versions.slice(chain.versions.indexOf(chosen.version) + 1).find((v) => !isSunset(this.#lifecycles.get(v), this.#now())) ?? chain.head
    if (lifecycle?.afterSunset !== 'fall-forward') {
      throw new HttpError(410, COMPAT_ERROR_CODES.sunset, `API version ${chosen.version} was retired on ${lifecycle?.sunset?.toUTCString()}; use version ${successor}`, [], { headers })
    }
    return { chosen, version: successor, headers: { ...headers, 'api-version': successor, 'api-version-fallback': `${chosen.version}; served=${successor}` } }
  }

  #count(chosen: ChosenVersion, version: string, chain: VersionChain): void {
    if (version !== chain.head) this.usage.record({ client: chosen.client, version, resource: chain.resource, at: this.#now() })
  }

  /** An error body in the client's version: validation errors are already; handlers' errors are migrated back from HEAD. */
  #error(error: unknown, served: { chain: VersionChain; version: string } | undefined, headers: Record<string, string>): CompatResponse {
    if (!(error instanceof HttpError) || error.status >= 500) {
      this.#logger.error('compat: request failed', { error, resource: served?.chain.resource, version: served?.version })
      const code = error instanceof HttpError ? error.code : COMPAT_ERROR_CODES.internal
      return json(500, { error: { code, message: 'internal error', fields: [] } }, headers)
    }
    const body = served && !(error instanceof BodyValidationError) ? served.chain.migrateError(error.toBody(), served.version) : error.toBody()
    return json(error.status, body, { ...headers, ...error.headers })
  }
}

export function createCompatApi(options: CompatApiOptions): CompatApi {
  return new CompatApi(options)
}
