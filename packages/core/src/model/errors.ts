import { redactDriverError, redactDriverText } from '../observe/driver-redaction.js'

/**
 * Every error Cutover throws is a `CutoverError` with a stable `code` and, where one record is
 * involved, that record's `key`, so callers can branch on the code and operators can find the row.
 */
export abstract class CutoverError extends Error {
  abstract readonly code: string
  /** The record key involved, when the error is about one record. */
  readonly key: string | undefined

  constructor(message: string, options: { key?: string | undefined; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = new.target.name
    this.key = options.key
  }
}

/** One problem found in configuration: the variable or option, the value and what is allowed. */
export interface ConfigProblem {
  readonly source: string
  readonly value: unknown
  readonly message: string
}

/** Configuration (env flags, migration definitions) is invalid. Thrown at start-up, never at the first write. */
export class ConfigError extends CutoverError {
  readonly code = 'CONFIG_INVALID'
  readonly problems: readonly ConfigProblem[]

  constructor(problems: readonly ConfigProblem[]) {
    super(`Invalid Cutover configuration:\n${problems.map((p) => `  - ${p.message}`).join('\n')}`)
    this.problems = problems
  }
}

/** A phase change that the phase table does not allow (e.g. `off → complete`). */
export class PhaseTransitionError extends CutoverError {
  readonly code = 'PHASE_TRANSITION_ILLEGAL'

  constructor(
    readonly migration: string,
    readonly from: string,
    readonly to: string,
    readonly allowed: readonly string[],
  ) {
    super(
      `Migration "${migration}" cannot move from phase "${from}" to "${to}"; from "${from}" it may move to: ${
        allowed.length > 0 ? allowed.join(', ') : '(nothing: terminal phase)'
      }`,
    )
  }
}

/** One zod issue, flattened to a dotted path and a message. */
export interface FieldIssue {
  readonly path: string
  readonly message: string
}

/** The mapper refused a record: its input or output did not match the schema, or the mapping threw. */
export class MapperError extends CutoverError {
  readonly code = 'MAPPER_REJECTED'

  constructor(
    readonly migration: string,
    readonly direction: 'forward' | 'backward',
    readonly stage: 'input' | 'output' | 'mapping' | 'key',
    key: string | undefined,
    readonly issues: readonly FieldIssue[],
    cause?: unknown,
  ) {
    super(
      `Mapper of "${migration}" rejected record ${key === undefined ? '(no key)' : `"${key}"`} (${direction} ${stage}): ${issues
        .map((i) => (i.path ? `${i.path}: ${i.message}` : i.message))
        .join('; ')}`,
      { key, cause },
    )
  }

  /** Field paths named by the issues, e.g. `['starts_at']`. */
  get fields(): string[] {
    return this.issues.map((i) => i.path).filter((p) => p !== '')
  }
}

/** A store operation failed (connection refused, constraint violated, …). */
export class StoreError extends CutoverError {
  readonly code = 'STORE_FAILED'

  constructor(
    readonly store: string,
    readonly operation: string,
    message: string,
    options: { key?: string; cause?: unknown } = {},
  ) {
    // Driver errors echo row values (PostgreSQL's "Failing row contains (…)"): never carried on.
    super(`Store "${store}" failed to ${operation}: ${redactDriverText(message)}`, {
      ...(options.key === undefined ? {} : { key: options.key }),
      ...(options.cause === undefined ? {} : { cause: redactDriverError(options.cause) }),
    })
  }
}

/** A write arrived on a side that is no longer authoritative for writes (e.g. Mongoose after cutover). */
export class WriteRejectedError extends CutoverError {
  readonly code = 'WRITE_REJECTED_BY_PHASE'

  constructor(
    readonly migration: string,
    readonly phase: string,
    readonly target: string,
    key?: string,
  ) {
    super(
      `Write to "${target}" rejected: migration "${migration}" is in phase "${phase}", where this side is not authoritative for writes`,
      { key },
    )
  }
}

/** What a refused phase move measured, gate by gate (see `control/phase-gates.ts`). */
export interface UnmetGate {
  readonly gate: string
  readonly measured: string
  readonly required: string
}

/**
 * A forward phase move whose gates are not all met. Wait until they are, or move anyway with
 * `force` and a `reason` (the audit keeps both and the gate values).
 */
export class PhaseGateError extends CutoverError {
  readonly code = 'PHASE_GATES_UNMET'

  constructor(
    readonly migration: string,
    readonly from: string,
    readonly to: string,
    readonly unmet: readonly UnmetGate[],
  ) {
    super(
      `Migration "${migration}" may not move from "${from}" to "${to}" yet; unmet: ${unmet
        .map((gate) => `${gate.gate} (${gate.measured}; needs ${gate.required})`)
        .join('; ')}. Wait, or use force with a reason.`,
    )
  }
}

/** `complete → cutover` after the revert window closed: the old store no longer has every write. */
export class RevertWindowClosedError extends CutoverError {
  readonly code = 'REVERT_WINDOW_CLOSED'

  constructor(
    readonly migration: string,
    readonly closedAt: Date | undefined,
  ) {
    super(
      `Migration "${migration}" cannot go back from "complete" to "cutover": ${
        closedAt ? `its revert window closed at ${closedAt.toISOString()}` : 'it has no revert window on record'
      }, so the old store lacks the writes made since. Going back needs a new migration in the other direction.`,
    )
  }
}
