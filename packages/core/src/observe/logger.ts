/** Structured logging: a message plus fields, never string concatenation of values. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error'

export type LogFields = Readonly<Record<string, unknown>>

export interface Logger {
  debug(message: string, fields?: LogFields): void
  info(message: string, fields?: LogFields): void
  warn(message: string, fields?: LogFields): void
  error(message: string, fields?: LogFields): void
}

const LEVELS: Readonly<Record<LogLevel, number>> = { debug: 10, info: 20, warn: 30, error: 40 }

/** Writes one JSON object per line (`{ time, level, msg, ...fields }`) to a stream, from `minLevel` up. */
export function createJsonLogger(
  options: { minLevel?: LogLevel; write?: (line: string) => void; base?: LogFields } = {},
): Logger {
  const min = LEVELS[options.minLevel ?? 'warn']
  const write = options.write ?? ((line: string) => void process.stderr.write(line))
  const base = options.base ?? {}
  const log = (level: LogLevel) => (message: string, fields?: LogFields) => {
    if (LEVELS[level] < min) return
    write(`${JSON.stringify({ time: new Date().toISOString(), level, msg: message, ...base, ...fields }, jsonSafe)}\n`)
  }
  return { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') }
}

/** A logger that drops everything (tests, benchmarks). */
export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} }

function jsonSafe(_key: string, value: unknown): unknown {
  if (typeof value === 'bigint') return value.toString()
  if (value instanceof Error) return { name: value.name, message: value.message, code: (value as { code?: unknown }).code }
  return value
}
