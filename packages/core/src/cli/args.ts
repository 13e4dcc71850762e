/** `cutover verify users --sample 1 --json` → `{ positionals: ['verify', 'users'], flags: { sample: '1', json: true } }`. */
export interface ParsedArgs {
  readonly positionals: readonly string[]
  readonly flags: Readonly<Record<string, string | true>>
}

export class UsageError extends Error {
  readonly code = 'USAGE'
}

export function parseArgs(argv: readonly string[]): ParsedArgs {
  const positionals: string[] = []
  const flags: Record<string, string | true> = {}
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string
    if (!arg.startsWith('--')) {
      positionals.push(arg)
      continue
    }
    const [name, inline] = arg.slice(2).split(/=(.*)/s) as [string, string | undefined]
    if (inline !== undefined) flags[name] = inline
    else if (i + 1 < argv.length && !(argv[i + 1] as string).startsWith('--') && !BOOLEAN_FLAGS.has(name)) flags[name] = argv[++i] as string
    else flags[name] = true
  }
  return { positionals, flags }
}

const BOOLEAN_FLAGS = new Set(['json', 'restart', 'distributed', 'include-quarantine', 'include-dead-letters', 'help', 'forever', 'replan', 'force'])

export function numberFlag(args: ParsedArgs, name: string): number | undefined {
  const value = args.flags[name]
  if (value === undefined) return undefined
  const n = Number(value)
  if (value === true || !Number.isFinite(n)) throw new UsageError(`--${name} needs a number, got ${JSON.stringify(value)}`)
  return n
}

export function stringFlag(args: ParsedArgs, name: string): string | undefined {
  const value = args.flags[name]
  if (value === true) throw new UsageError(`--${name} needs a value`)
  return value
}
