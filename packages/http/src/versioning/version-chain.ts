import { ConfigError, createJsonLogger, type FieldIssue, type Logger, MapperError, type Row } from '@cutover/core'
import type { z } from 'zod'
import { ambiguityProblems, bodyShape, type BodyShape, shapesKnowing } from './body-shapes.js'
import { BodyValidationError, COMPAT_ERROR_CODES, type ErrorBody, HttpError } from './http-error.js'
import { olderIssues, type VersionStep } from './version-step.js'

export interface VersionChainDefinition {
  /** The resource's name in paths and the changelog, e.g. `users`. */
  readonly resource: string
  /** The newest version: the shape the data is stored in. Its schema defaults to the last step's new schema. */
  readonly head: { readonly version: string; readonly schema?: z.ZodType<Row> }
  /** Oldest first; each step converts its version into the next one (the last into HEAD). */
  readonly steps: readonly VersionStep[]
  /** The key field, the same in every version (mappers keep keys unchanged). Default `id`. */
  readonly key?: string
  /**
   * Older versions whose bodies HEAD's endpoints also accept during the transition, told apart by
   * schema (see `body-shapes.ts`); the body is stored in the new shape either way.
   */
  readonly acceptBodiesIn?: readonly string[]
  /** Where lossy steps are reported at definition time. Default: JSON warnings on stderr. */
  readonly logger?: Logger
}

/** A body detected in one of the accepted versions, converted to HEAD. */
export interface DetectedBody {
  readonly version: string
  readonly record: Row
}

/**
 * The versions of one resource, from one definition: responses go backward step by step from
 * HEAD to the client's version, requests forward from it, both validated by the mappers' schemas.
 */
export class VersionChain {
  readonly resource: string
  readonly key: string
  readonly head: string
  /** Oldest first, HEAD last. */
  readonly versions: readonly string[]
  readonly steps: readonly VersionStep[]
  /** The steps that lose data, reported when the chain was defined. */
  readonly lossySteps: readonly { readonly version: string; readonly losses: readonly string[] }[]
  readonly #headSchema: z.ZodType<Row>
  readonly #accepted: readonly BodyShape[]

  constructor(definition: VersionChainDefinition) {
    this.resource = definition.resource
    this.key = definition.key ?? 'id'
    this.head = definition.head.version
    this.steps = Object.freeze([...definition.steps])
    this.versions = Object.freeze([...this.steps.map((s) => s.version), this.head])
    const last = this.steps.at(-1)
    const headSchema = definition.head.schema ?? last?.mapper.newSchema
    checkVersions(this.resource, this.versions, definition.acceptBodiesIn ?? [], headSchema)
    this.#headSchema = headSchema as z.ZodType<Row>
    const accepted = [...new Set([this.head, ...(definition.acceptBodiesIn ?? [])])]
    this.#accepted = accepted.map((version) => bodyShape(this.resource, version, this.schemaOf(version)))
    const ambiguous = accepted.length > 1 ? ambiguityProblems(this.resource, this.#accepted) : []
    if (ambiguous.length > 0) throw new ConfigError(ambiguous)
    this.lossySteps = Object.freeze(this.steps.filter((s) => s.losses.length > 0).map((s) => ({ version: s.version, losses: s.losses })))
    const logger = definition.logger ?? createJsonLogger({ minLevel: 'warn' })
    for (const lossy of this.lossySteps) {
      logger.warn('compat: a version step loses data; round trips through it are not exact', { resource: this.resource, version: lossy.version, losses: lossy.losses })
    }
  }

  has(version: string): boolean {
    return this.versions.includes(version)
  }

  /** The zod schema of a version's bodies. */
  schemaOf(version: string): z.ZodType<Row> {
    if (version === this.head) return this.#headSchema
    return this.#step(version).mapper.oldSchema
  }

  /** HEAD record → the shape of `version`. */
  toVersion(version: string, record: unknown): Row {
    const index = this.#index(version)
    let current = this.#validateHead(record)
    for (let i = this.steps.length - 1; i >= index; i--) current = this.#backward(this.steps[i] as VersionStep, current, version)
    return current
  }

  /** A body in the shape of `version` → HEAD; a `BodyValidationError` lists every bad field in the client's terms. */
  fromVersion(version: string, body: unknown): Row {
    const index = this.#index(version)
    if (index === this.steps.length) return this.#validateHead(body, version)
    let current = body as Row
    for (let i = index; i < this.steps.length; i++) current = this.#forward(i, current, version)
    return current
  }

  /** `toVersion` for the oldest version. */
  toV1(record: unknown): Row {
    return this.toVersion(this.versions[0] as string, record)
  }

  /** `fromVersion` for the oldest version. */
  fromV1(body: unknown): Row {
    return this.fromVersion(this.versions[0] as string, body)
  }

  /**
   * A body from one version to another, either direction: a webhook rendered for a subscriber
   * pinned to an old version, or a message queued by an old producer read by a new consumer.
   */
  migrateBody(body: unknown, versions: { readonly from: string; readonly to: string }): Row {
    return this.toVersion(versions.to, this.fromVersion(versions.from, body))
  }

  /** An error body written in HEAD's terms, as a client of `version` should see it. */
  migrateError(body: ErrorBody, version: string): ErrorBody {
    const index = this.#index(version)
    let current = body
    for (let i = this.steps.length - 1; i >= index; i--) {
      const step = this.steps[i] as VersionStep
      current = { error: { ...current.error, fields: olderIssues(step, current.error.fields) } }
      if (step.error) current = step.error(current)
    }
    return current
  }

  /** Which accepted version a whole body is written in, and the body converted to HEAD. */
  detect(body: unknown): DetectedBody {
    const matches = this.#accepted.filter((shape) => this.schemaOf(shape.version).safeParse(body).success)
    if (matches.length === 1) {
      const version = (matches[0] as BodyShape).version
      return { version, record: this.fromVersion(version, body) }
    }
    if (matches.length > 1) throw ambiguousBody(this.resource, matches)
    // Valid in none: the issues of the closest version (fewest problems) say what to fix.
    const closest = this.#accepted
      .map((shape) => ({ shape, issues: issuesOf(this.schemaOf(shape.version), body) }))
      .sort((a, b) => a.issues.length - b.issues.length)[0] as { shape: BodyShape; issues: FieldIssue[] }
    throw new BodyValidationError(this.resource, closest.shape.version, closest.issues)
  }

  /** Which accepted version a partial body (PATCH) is written in: the one that knows all its fields, HEAD first. */
  detectPartial(body: Row): string {
    const known = shapesKnowing(this.#accepted, Object.keys(body))
    if (known.length === 0) {
      throw new BodyValidationError(this.resource, this.head, Object.keys(body).filter((f) => !this.#accepted.some((s) => s.fields.has(f))).map((path) => ({ path, message: 'unknown field' })))
    }
    return (known[0] as BodyShape).version
  }

  /** The versions HEAD's endpoints accept bodies in, HEAD first. */
  get accepted(): readonly string[] {
    return this.#accepted.map((s) => s.version)
  }

  #index(version: string): number {
    const index = this.versions.indexOf(version)
    if (index < 0) throw new HttpError(404, COMPAT_ERROR_CODES.unknownVersion, `${this.resource} has no API version "${version}"; versions: ${this.versions.join(', ')}`)
    return index
  }

  #step(version: string): VersionStep {
    return this.steps[this.#index(version)] as VersionStep
  }

  #validateHead(record: unknown, clientVersion = this.head): Row {
    const parsed = this.#headSchema.safeParse(record)
    if (!parsed.success) throw new BodyValidationError(this.resource, clientVersion, issuesOf(this.#headSchema, record), keyOf(record, this.key))
    return parsed.data
  }

  #forward(index: number, record: Row, clientVersion: string): Row {
    const step = this.steps[index] as VersionStep
    try {
      return step.mapper.forward(record, { migration: this.resource, ...keyContext(record, this.key) })
    } catch (error) {
      if (!(error instanceof MapperError)) throw error
      // Input issues are in this step's version, output issues in the next one: move them back to the client's.
      const from = error.stage === 'output' ? index + 1 : index
      let fields: FieldIssue[] = [...error.issues]
      for (let i = from - 1; i >= this.#index(clientVersion); i--) fields = olderIssues(this.steps[i] as VersionStep, fields)
      throw new BodyValidationError(this.resource, clientVersion, fields, error.key)
    }
  }

  #backward(step: VersionStep, record: Row, clientVersion: string): Row {
    try {
      return step.mapper.backward(record, { migration: this.resource, ...keyContext(record, this.key) })
    } catch (error) {
      if (!(error instanceof MapperError)) throw error
      throw new HttpError(500, 'RESPONSE_NOT_REPRESENTABLE', `${this.resource} ${error.key ?? ''} cannot be shown in API version ${clientVersion}: ${error.message}`, [], {
        ...(error.key === undefined ? {} : { key: error.key }),
        cause: error,
      })
    }
  }
}

export function defineVersionChain(definition: VersionChainDefinition): VersionChain {
  return new VersionChain(definition)
}

function checkVersions(resource: string, versions: readonly string[], accepted: readonly string[], headSchema: unknown): void {
  const duplicates = versions.filter((v, i) => versions.indexOf(v) !== i)
  const problems = [
    ...duplicates.map((v) => ({ source: `${resource}.steps`, value: v, message: `${resource}: version "${v}" appears twice in the chain` })),
    ...accepted.filter((v) => !versions.includes(v)).map((v) => ({ source: `${resource}.acceptBodiesIn`, value: v, message: `${resource}: acceptBodiesIn names "${v}", which is not a version of the chain (${versions.join(', ')})` })),
    ...versions.filter((v) => !/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(v)).map((v) => ({ source: `${resource}.steps`, value: v, message: `${resource}: version "${v}" must be letters, digits, ".", "_" or "-" (it appears in paths and headers)` })),
    ...(headSchema ? [] : [{ source: `${resource}.head.schema`, value: undefined, message: `${resource}: a chain without steps needs head.schema` }]),
  ]
  if (problems.length > 0) throw new ConfigError(problems)
}

function issuesOf(schema: z.ZodType, value: unknown): FieldIssue[] {
  const parsed = schema.safeParse(value)
  return parsed.success ? [] : parsed.error.issues.map((issue) => ({ path: issue.path.map(String).join('.'), message: issue.message }))
}

function keyOf(record: unknown, key: string): string | undefined {
  const value = record && typeof record === 'object' ? (record as Row)[key] : undefined
  return value === undefined || value === null ? undefined : String(value)
}

function keyContext(record: Row, key: string): { key?: string } {
  const value = keyOf(record, key)
  return value === undefined ? {} : { key: value }
}

function ambiguousBody(resource: string, matches: readonly BodyShape[]): HttpError {
  return new HttpError(
    400,
    COMPAT_ERROR_CODES.ambiguousBody,
    `the ${resource} body matches API versions ${matches.map((m) => m.version).join(' and ')}; send the fields of one version only, or name it in the path or header`,
  )
}
