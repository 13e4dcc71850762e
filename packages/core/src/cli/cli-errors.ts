import { CutoverError } from '../model/errors.js'

/** The config module could not be found, loaded or used. */
export class ConfigModuleError extends CutoverError {
  readonly code = 'CONFIG_MODULE'

  constructor(
    readonly file: string,
    message: string,
    options: { cause?: unknown } = {},
  ) {
    super(message, options)
  }
}

/** Which database the CLI failed to reach: the control database, or a migration's old or new store. */
export type DatabaseRole = { readonly role: 'control' } | { readonly role: 'old store' | 'new store'; readonly migration: string; readonly store: string }

/** A database did not answer: which one, where, and what to check. */
export class DatabaseUnreachableError extends CutoverError {
  readonly code = 'DATABASE_UNREACHABLE'

  constructor(
    readonly database: DatabaseRole,
    readonly address: { readonly host?: string; readonly port?: number },
    readonly reason: string,
    cause: unknown,
  ) {
    super(unreachableMessage(database, address, reason), { cause })
  }
}

/** What each network error means, and what to check: data, so a new code is one row. */
const CHECKS: Readonly<Record<string, string>> = {
  ECONNREFUSED: 'nothing is listening there. Is the server running, on that host and port?',
  ENOTFOUND: 'the host name does not resolve. Check it for typos, and your DNS.',
  EAI_AGAIN: 'the host name could not be resolved right now. Check your DNS.',
  ETIMEDOUT: 'the connection timed out. Check the host, firewalls and security groups.',
  EHOSTUNREACH: 'the host is unreachable. Check the host and your network.',
  ENETUNREACH: 'the network is unreachable. Check your network.',
  ECONNRESET: 'the server closed the connection. Check that it accepts connections from here (TLS, pg_hba.conf).',
  SERVER_SELECTION: 'no MongoDB server answered. Is it running, and is the connection string right?',
  NOT_CONNECTED: 'the Mongoose connection never connected. Is MongoDB running, and does the application connect before using the model?',
}

function unreachableMessage(database: DatabaseRole, address: { host?: string; port?: number }, reason: string): string {
  const which = database.role === 'control' ? 'the control database (config.control)' : `the ${database.role} of migration "${database.migration}" (${database.store})`
  const where = address.host ? ` at ${address.host}${address.port === undefined ? '' : `:${address.port}`}` : ''
  const code = reason in CHECKS && /^E[A-Z_]+$/.test(reason) ? ` (${reason})` : ''
  return `cannot reach ${which}${where}${code}: ${CHECKS[reason] ?? reason} Then check the connection settings your cutover config gives it (e.g. DATABASE_URL).`
}

interface NetworkFailure {
  readonly reason: string
  readonly host?: string
  readonly port?: number
}

/**
 * The network failure inside an error, if that is what it is: Node's socket errors (`code`,
 * `address`, `port`, or an AggregateError of them when a name resolves to several addresses) and
 * the MongoDB driver's server selection error, and Mongoose's buffering timeout of a connection
 * that never connected, found anywhere along the `cause` chain.
 */
export function networkFailure(error: unknown, depth = 0): NetworkFailure | undefined {
  if (!error || typeof error !== 'object' || depth > 8) return undefined
  const e = error as { code?: unknown; address?: unknown; hostname?: unknown; port?: unknown; name?: unknown; message?: unknown; errors?: unknown; cause?: unknown; reason?: unknown }
  if (typeof e.code === 'string' && e.code in CHECKS) {
    const host = typeof e.address === 'string' ? e.address : typeof e.hostname === 'string' ? e.hostname : undefined
    return { reason: e.code, ...(host === undefined ? {} : { host }), ...(typeof e.port === 'number' ? { port: e.port } : {}) }
  }
  if (e.name === 'MongoServerSelectionError' || e.name === 'MongooseServerSelectionError') {
    const at = /(?:ECONNREFUSED|ENOTFOUND|ETIMEDOUT)\s+([^\s:]+):(\d+)/.exec(String(e.message))
    return { reason: 'SERVER_SELECTION', ...(at ? { host: at[1] as string, port: Number(at[2]) } : {}) }
  }
  if (typeof e.message === 'string' && /^Operation `[^`]*` buffering timed out/.test(e.message)) return { reason: 'NOT_CONNECTED' }
  for (const inner of [...(Array.isArray(e.errors) ? e.errors : []), e.cause]) {
    const found = networkFailure(inner, depth + 1)
    if (found) return found
  }
  return undefined
}

/** Runs `work`; a network failure becomes a `DatabaseUnreachableError` naming `database`. */
export async function reaching<T>(database: DatabaseRole, work: () => Promise<T>): Promise<T> {
  try {
    return await work()
  } catch (error) {
    const failure = networkFailure(error)
    if (!failure) throw error
    throw new DatabaseUnreachableError(database, { ...(failure.host ? { host: failure.host } : {}), ...(failure.port === undefined ? {} : { port: failure.port }) }, failure.reason, error)
  }
}
