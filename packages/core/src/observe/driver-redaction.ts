/**
 * Drivers echo row values in their errors: PostgreSQL's `Failing row contains (…)` and `Key
 * (email)=(…)` details, `invalid input syntax for type integer: "…"`, MongoDB's `dup key: { … }`.
 * Cutover's errors, logs and tables carry the redacted forms only, so values of sensitive fields
 * (of any field: the driver does not know which are sensitive) never leave through them.
 */
const VALUE_ECHOES: readonly (readonly [RegExp, string])[] = [
  [/Failing row contains \(.*\)/gs, 'Failing row contains (…)'],
  [/(Key \([^)]*\))=\(.*?\)( already exists| is not present| is still referenced| conflicts)/gs, '$1=(…)$2'],
  [/(\bKey \([^)]*\))=\(.*?\)/gs, '$1=(…)'],
  [/((?:invalid input (?:syntax|value) for [^:]*|malformed [^:]*literal|invalid [a-z ]+ value)): ".*?"/gis, '$1: "…"'],
  [/(dup key: )\{.*?\}/gs, '$1{ … }'],
]

/** `text` with every value a driver echoes replaced by `…`. */
export function redactDriverText(text: string): string {
  let out = text
  for (const [pattern, replacement] of VALUE_ECHOES) out = out.replace(pattern, replacement)
  return out
}

/** Driver error fields that describe the failure without carrying row values. */
// Where the failure happened (`address`, `port`, `syscall`, `errno` of a socket error) is kept too: it
// names the server to check, never a row's value.
const SAFE_FIELDS = ['code', 'severity', 'constraint', 'table', 'column', 'schema', 'dataType', 'routine', 'codeName', 'address', 'port', 'syscall', 'errno'] as const

/**
 * A copy of a driver error that keeps what explains the failure (class, SQLSTATE code, constraint,
 * table, column) and the message and `detail` with echoed values redacted; row-carrying fields
 * (MongoDB's `keyValue`, `errorResponse`, `writeErrors`) are left out. Anything else passes as is.
 */
export function redactDriverError(error: unknown): unknown {
  if (!(error instanceof Error)) return error
  const copy = new Error(redactDriverText(error.message))
  copy.name = error.name
  const source = error as unknown as Record<string, unknown>
  const target = copy as unknown as Record<string, unknown>
  for (const field of SAFE_FIELDS) if (source[field] !== undefined) target[field] = source[field]
  if (typeof source.detail === 'string') target.detail = redactDriverText(source.detail)
  if (typeof source.hint === 'string') target.hint = redactDriverText(source.hint)
  if (error.stack) copy.stack = `${copy.name}: ${copy.message}\n${error.stack.split('\n').slice(1).join('\n')}`
  return copy
}
