import type { CutoverConfig } from './cutover-config.js'
import { ConfigError } from '../model/errors.js'
import type { Logger } from '../observe/logger.js'
import type { Migration } from '../model/migration.js'
import type { ParsedArgs } from './args.js'
import { UsageError } from './args.js'
import type { ProgressRenderer, RendererStream } from './progress-renderer.js'

/** Everything a command gets; commands write only through `stdout`/`stderr`, never the console. */
export interface CommandContext {
  readonly config: CutoverConfig
  readonly args: ParsedArgs
  readonly stdout: RendererStream
  readonly stderr: RendererStream
  /** JSON lines instead of text (`--json`, or stdout is not a terminal). */
  readonly json: boolean
  readonly progress: ProgressRenderer
  readonly actor: string
  readonly logger: Logger
  /** Aborted on SIGINT/SIGTERM: jobs stop after the batch in flight. */
  readonly signal: AbortSignal
}

/** Returns the process exit code. */
export type Command = (context: CommandContext) => Promise<number>

/** `refused`: a phase move whose gates are unmet (`cutover phase` without `--force`). */
export const EXIT = { ok: 0, failed: 1, inconsistent: 2, refused: 3, usage: 64, interrupted: 130 } as const

export function migrationArgument(context: CommandContext, position = 1): Migration<any, any> {
  const name = context.args.positionals[position]
  const names = context.config.migrations.map((m) => m.name)
  if (!name) throw new UsageError(`name a migration: ${names.join(', ')}`)
  const migration = context.config.migrations.find((m) => m.name === name)
  if (!migration) throw new ConfigError([{ source: 'migration', value: name, message: `no migration named "${name}" in the config; known: ${names.join(', ')}` }])
  return migration
}

/** A result: JSON line `{ type: 'result', … }`, or the text for people. */
export function writeResult(context: CommandContext, result: Record<string, unknown>, text: string): void {
  context.progress.done()
  if (context.json) context.stdout.write(`${JSON.stringify({ type: 'result', ...result }, (_k, v) => (typeof v === 'bigint' ? v.toString() : v))}\n`)
  else context.stdout.write(`${text}\n`)
}
