import type { FieldIssue, Mapper, Row } from '@cutover/core'
import type { ErrorBody } from './http-error.js'

/**
 * One change between an API version and the next, in the manner of Stripe's version-change
 * modules and Cadwyn's `VersionChange`: the mapper converts requests forward (this version → the
 * next) and responses backward, and the description is the changelog entry. Field paths of error
 * bodies are migrated backward through the mapper's field map (`first_name` → `full_name`), or
 * through `errorPaths` when the mapper has none; `error` rewrites anything else (codes, messages).
 */
export interface VersionStepDefinition<Old extends Row = Row, New extends Row = Row> {
  /** The older version this step converts from, e.g. `'1'`; the next step's (or HEAD's) is the newer. */
  readonly version: string
  readonly mapper: Mapper<Old, New>
  /** What changed, as a client of `version` should read it in the changelog. */
  readonly description: string
  /** Newer field path → older field path, for mappers without a field map. */
  readonly errorPaths?: Readonly<Record<string, string>>
  /** Further rewriting of an error body (already path-migrated) for clients of `version`. */
  readonly error?: (body: ErrorBody) => ErrorBody
}

export interface VersionStep extends VersionStepDefinition<Row, Row> {
  /** Why the step is lossy (empty when lossless): what a round trip through it cannot restore. */
  readonly losses: readonly string[]
  /** Newer field path → older, for one issue. */
  olderPath(path: string): string
}

export function versionStep<Old extends Row, New extends Row>(definition: VersionStepDefinition<Old, New>): VersionStep {
  const mapper = definition.mapper as unknown as Mapper
  return Object.freeze({
    ...definition,
    mapper,
    losses: losses(mapper),
    olderPath: (path: string) => olderPath(mapper, definition.errorPaths ?? {}, path),
  })
}

function losses(mapper: Mapper): string[] {
  if (mapper.lossless) return []
  const rules = mapper.fieldMap?.rules.filter((rule) => !rule.reversible || rule.kind === 'drop') ?? []
  if (rules.length === 0) return ['the mapper is not declared lossless: backward(forward(x)) may differ from x']
  return rules.map((rule) => `${rule.kind} ${rule.oldFields.join(', ') || '(none)'} → ${rule.newFields.join(', ') || '(none)'} is not restored going back`)
}

/**
 * The first segment of the path is the field; the rule that produces it names the older field.
 * A field the older version does not have (a new-only column) keeps its path: it is still the
 * most precise thing to tell the client.
 */
function olderPath(mapper: Mapper, explicit: Readonly<Record<string, string>>, path: string): string {
  if (explicit[path] !== undefined) return explicit[path]
  const [head, ...rest] = path.split('.')
  if (head === undefined || head === '') return path
  if (explicit[head] !== undefined) return [explicit[head], ...rest].join('.')
  const rule = mapper.fieldMap?.rules.find((r) => r.newFields.includes(head) && r.oldFields.length > 0)
  if (!rule) return path
  // A split's parts point at the one field they came from; deeper segments belong to renames only.
  return rule.kind === 'rename' ? [rule.oldFields[0], ...rest].join('.') : (rule.oldFields[0] as string)
}

/** An issue list with every path moved one version back. */
export function olderIssues(step: VersionStep, fields: readonly FieldIssue[]): FieldIssue[] {
  return fields.map((issue) => ({ ...issue, path: step.olderPath(issue.path) }))
}
