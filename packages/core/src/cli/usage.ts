import type { OptionSpec } from './args.js'
import type { Command } from './command.js'

/** A command of the `cutover` CLI, as data: what it runs, and everything its help and parser need. */
export interface CommandSpec {
  readonly run: Command
  /** One line each form, after `cutover `: `backfill <migration> [options]`. */
  readonly usage: readonly string[]
  readonly summary: string
  readonly options: readonly OptionSpec[]
  /** What the exit codes mean beyond 0 (done) and 64 (usage), when the command has more. */
  readonly exits?: string
}

export const GLOBAL_OPTIONS: readonly OptionSpec[] = [
  { name: 'config', kind: 'text', value: 'FILE', help: 'config module (default: cutover.config.ts, .mts, .js or .mjs in this directory)' },
  { name: 'json', kind: 'flag', help: 'JSON lines on stdout, even on a terminal' },
  { name: 'actor', kind: 'text', value: 'NAME', help: 'who acts, recorded in the audit log (default: $USER@host)' },
  { name: 'verbose', kind: 'flag', help: 'info logs on stderr' },
  { name: 'help', kind: 'flag', help: 'this help' },
]

const CONFIG_NOTE = `The config module's default export is a CutoverConfig, or a function returning one:
  { control: Kysely (PostgreSQL holding the cutover schema), migrations: [...], jobs?: {...}, close?: () => Promise<void> }
TypeScript configs (.ts, .mts) load through tsx: install it in your project (npm install -D tsx).`

/** `cutover --help`: every command in one screen. */
export function overview(commands: Readonly<Record<string, CommandSpec>>): string {
  const width = Math.max(...Object.keys(commands).map((n) => n.length))
  return [
    'usage: cutover <command> [<migration>] [options]',
    '',
    'commands:',
    ...Object.entries(commands).map(([name, spec]) => `  ${name.padEnd(width)}  ${spec.summary}`),
    '',
    'options of every command:',
    ...optionLines(GLOBAL_OPTIONS),
    '',
    CONFIG_NOTE,
    '',
    "`cutover <command> --help` shows a command's options. Exit codes: 0 done, 1 failed, 2 inconsistent or tampered, 64 usage, 130 interrupted.",
  ].join('\n')
}

/** `cutover <command> --help`. */
export function commandHelp(spec: CommandSpec): string {
  return [
    ...spec.usage.map((line, i) => `${i === 0 ? 'usage: ' : '       '}cutover ${line}`),
    '',
    spec.summary,
    ...(spec.options.length > 0 ? ['', 'options:', ...optionLines(spec.options)] : []),
    '',
    'options of every command:',
    ...optionLines(GLOBAL_OPTIONS),
    ...(spec.exits ? ['', `exit codes: ${spec.exits}`] : []),
  ].join('\n')
}

function optionLines(options: readonly OptionSpec[]): string[] {
  const left = options.map((o) => `--${o.name}${o.kind === 'flag' ? '' : ` ${o.value ?? (o.kind === 'number' ? 'N' : 'TEXT')}`}`)
  const width = Math.max(...left.map((l) => l.length))
  return options.map((o, i) => `  ${(left[i] as string).padEnd(width)}  ${o.help}`)
}
