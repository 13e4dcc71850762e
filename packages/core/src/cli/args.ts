import { CutoverError } from '../model/errors.js'
import { editDistance } from '../model/edit-distance.js'

/** `cutover verify users --sample 1 --json` → `{ positionals: ['verify', 'users'], flags: { sample: '1', json: true } }`. */
export interface ParsedArgs {
  readonly positionals: readonly string[]
  readonly flags: Readonly<Record<string, string | true>>
}

/**
 * One option of a command, as data: the parser, the help text and the error messages all read it.
 * `flag` takes no value; `number` and `text` take one (`--rate 5000` or `--rate=5000`).
 */
export interface OptionSpec {
  readonly name: string
  readonly kind: 'flag' | 'number' | 'text'
  /** The value's placeholder in help, e.g. `N`, `FILE`. */
  readonly value?: string
  readonly help: string
}

/** The options every command takes, and each command's own. */
export interface OptionTable {
  readonly global: readonly OptionSpec[]
  readonly commands: Readonly<Record<string, readonly OptionSpec[]>>
}

/** The command line is wrong: an unknown command or option, a missing or malformed value. Exit code 64. */
export class UsageError extends CutoverError {
  readonly code = 'USAGE'

  /** `command` is the command whose usage to show, when known. */
  constructor(
    message: string,
    readonly command?: string,
  ) {
    super(message)
  }
}

/**
 * Splits argv into positionals and flags, checking every option against the table: the first
 * positional is the command, and from there on its own options are allowed beside the global ones.
 * An unknown option, a flag given a value, and a missing or non-numeric value are `UsageError`s
 * naming the option (an unknown `--rat 5` must never run a backfill unthrottled).
 */
export function parseArgs(argv: readonly string[], table: OptionTable): ParsedArgs {
  const positionals: string[] = []
  const flags: Record<string, string | true> = {}
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string
    const command = positionals[0]
    if (arg === '-h') {
      flags.help = true
      continue
    }
    if (!arg.startsWith('-') || arg === '-') {
      if (positionals.length === 0 && !(arg in table.commands) && arg !== 'help') throw new UsageError(`unknown command "${arg}"; commands: ${Object.keys(table.commands).join(', ')}`)
      positionals.push(arg)
      continue
    }
    const [name, inline] = (arg.startsWith('--') ? arg.slice(2) : arg.slice(1)).split(/=(.*)/s) as [string, string | undefined]
    const spec = optionsOf(table, command).find((o) => o.name === name)
    if (!spec) throw unknownOption(arg.startsWith('--') ? name : arg, table, command)
    if (spec.kind === 'flag') {
      if (inline !== undefined) throw new UsageError(`--${name} takes no value (got "${inline}")`, command)
      flags[name] = true
      continue
    }
    const value = inline ?? argv[i + 1]
    if (value === undefined || (inline === undefined && value.startsWith('--'))) throw new UsageError(`--${name} needs a value: ${spec.value ?? spec.kind}`, command)
    if (inline === undefined) i++
    if (spec.kind === 'number' && !DECIMAL.test(value)) throw new UsageError(`--${name} needs a number, got ${JSON.stringify(value)}`, command)
    flags[name] = value
  }
  return { positionals, flags }
}

/** A plain decimal: no hex, no surrounding whitespace, nothing empty (all of which `Number()` accepts). */
const DECIMAL = /^-?(\d+(\.\d*)?|\.\d+)(e[+-]?\d+)?$/i

function optionsOf(table: OptionTable, command: string | undefined): readonly OptionSpec[] {
  return [...table.global, ...((command && table.commands[command]) || [])]
}

function unknownOption(name: string, table: OptionTable, command: string | undefined): UsageError {
  const known = optionsOf(table, command).map((o) => o.name)
  const near = known.filter((k) => editDistance(k, name) <= Math.max(1, Math.floor(k.length / 4)))
  const where = command ? `cutover ${command}` : 'cutover'
  return new UsageError(`unknown option --${name.replace(/^-+/, '')} for ${where}${near.length > 0 ? `; did you mean ${near.map((k) => `--${k}`).join(' or ')}?` : ''}`, command)
}


export function numberFlag(args: ParsedArgs, name: string): number | undefined {
  const value = args.flags[name]
  if (value === undefined) return undefined
  const n = Number(value)
  if (value === true || !DECIMAL.test(value) || !Number.isFinite(n)) throw new UsageError(`--${name} needs a number, got ${JSON.stringify(value)}`)
  return n
}

export function stringFlag(args: ParsedArgs, name: string): string | undefined {
  const value = args.flags[name]
  if (value === true) throw new UsageError(`--${name} needs a value`)
  return value
}
