import { CutoverError, type FieldIssue } from '@cutover/core'

/**
 * The error body every version of the API answers with: a stable `code`, a message, and the bad
 * fields by path in the shape of the version the client speaks.
 */
export interface ErrorBody {
  readonly error: {
    readonly code: string
    readonly message: string
    readonly fields: readonly FieldIssue[]
  }
}

/** Codes the compatibility layer itself answers with; handlers add their own. */
export const COMPAT_ERROR_CODES = {
  invalidBody: 'BODY_INVALID',
  ambiguousBody: 'BODY_AMBIGUOUS',
  notFound: 'NOT_FOUND',
  conflict: 'CONFLICT',
  unknownVersion: 'VERSION_UNKNOWN',
  sunset: 'VERSION_SUNSET',
  methodNotAllowed: 'METHOD_NOT_ALLOWED',
  internal: 'INTERNAL',
} as const

/**
 * An answer other than success, in the HEAD version's terms. A handler throws it (a conflict on
 * `email`, a rule on `first_name`); the API migrates its field paths to the client's version.
 */
export class HttpError extends CutoverError {
  readonly code: string

  constructor(
    readonly status: number,
    code: string,
    message: string,
    readonly fields: readonly FieldIssue[] = [],
    options: { key?: string; cause?: unknown; headers?: Readonly<Record<string, string>> } = {},
  ) {
    super(message, options)
    this.code = code
    this.headers = options.headers ?? {}
  }

  /** Headers the answer carries (a 410 still says when the version was retired). */
  readonly headers: Readonly<Record<string, string>>

  toBody(): ErrorBody {
    return { error: { code: this.code, message: this.message, fields: this.fields } }
  }
}

/**
 * A body that does not match the schema of the version it was sent in: every bad field is listed,
 * by its path in that version, ready to be sent as a 400.
 */
export class BodyValidationError extends HttpError {
  constructor(
    readonly resource: string,
    readonly version: string,
    fields: readonly FieldIssue[],
    key?: string,
  ) {
    super(400, COMPAT_ERROR_CODES.invalidBody, `the ${resource} body is not valid for API version ${version}: ${describe(fields)}`, fields, {
      ...(key === undefined ? {} : { key }),
    })
  }
}

function describe(fields: readonly FieldIssue[]): string {
  return fields.map((f) => (f.path ? `${f.path}: ${f.message}` : f.message)).join('; ')
}
