/**
 * The `cutover` command.
 *
 *     cutover backfill  <migration> [--restart] [--rate N] [--nice R] [--batch N] [--config-version V]
 *     cutover backfill  <migration> --distributed [--range-size N] [--replan] [--expire S]   plan, queue ranges
 *     cutover worker    <migration> [--expire S] [--forever]                     work queued ranges
 *     cutover verify    <migration> [--sample PERCENT] [--recheck-ms N]          exit 2 if inconsistent
 *     cutover reconcile <migration> [--report ID] [--keys a,b] [--include-quarantine] [--include-dead-letters] [--authoritative old|new]
 *     cutover status    [<migration>]
 *     cutover phase     <migration> [<phase>] [--read-percent N] [--compare-sample F] [--reason TEXT]
 *     cutover pause     <migration> [--reason TEXT]  |  cutover resume <migration>
 *     cutover rollback  <migration> [--reason TEXT]                             the emergency command
 *     cutover audit verify [--head SEQ:HASH]                                    exit 2 if tampered
 *
 * Global options: `--config FILE` (default `cutover.config.{ts,mts,js,mjs}` in the working
 * directory; its default export is a `CutoverConfig` or a function returning one, see
 * cutover-config.ts), `--actor NAME` (recorded in the audit; default `$USER@host`), `--json` (JSON
 * lines even on a terminal), `--verbose` (info logs on stderr).
 *
 * On a terminal, progress is a live bar with rate and ETA; otherwise one JSON line per second on
 * stdout, and the result as a final `{"type":"result",…}` line. SIGINT/SIGTERM stop jobs after the
 * batch in flight, with the checkpoint saved; a second signal exits at once.
 */
import { hostname, userInfo } from 'node:os'
import { ensureSchema } from '../control/control-schema.js'
import type { CutoverConfig } from './cutover-config.js'
import { CutoverError } from '../model/errors.js'
import { createJsonLogger } from '../observe/logger.js'
import { parseArgs, type ParsedArgs, stringFlag, UsageError } from './args.js'
import { auditCommand } from './audit-command.js'
import { backfillCommand } from './backfill-command.js'
import { type Command, EXIT } from './command.js'
import { jobControlCommand } from './job-control-command.js'
import { loadConfig } from './load-config.js'
import { phaseCommand } from './phase-command.js'
import { ProgressRenderer } from './progress-renderer.js'
import { reconcileCommand } from './reconcile-command.js'
import { rollbackCommand } from './rollback-command.js'
import { statusCommand } from './status-command.js'
import { verifyCommand } from './verify-command.js'
import { workerCommand } from './worker-command.js'

const COMMANDS: Readonly<Record<string, Command>> = {
  backfill: backfillCommand,
  worker: workerCommand,
  verify: verifyCommand,
  reconcile: reconcileCommand,
  status: statusCommand,
  phase: phaseCommand,
  rollback: rollbackCommand,
  pause: jobControlCommand,
  resume: jobControlCommand,
  audit: auditCommand,
}

const USAGE = `usage: cutover <backfill|worker|verify|reconcile|status|phase|rollback|pause|resume|audit verify> [migration] [options]
  --config FILE   config module (default cutover.config.{ts,mts,js,mjs})
  --json          JSON lines on stdout even on a terminal
  --actor NAME    who acts, for the audit log
  --verbose       info logs on stderr
see the header of packages/core/src/cli/main.ts for each command's options`

export async function main(argv: readonly string[], io: { stdout: NodeJS.WriteStream; stderr: NodeJS.WriteStream } = process): Promise<number> {
  let args: ParsedArgs
  try {
    args = parseArgs(argv)
  } catch (error) {
    io.stderr.write(`${(error as Error).message}\n${USAGE}\n`)
    return EXIT.usage
  }
  const name = args.positionals[0]
  const command = name === undefined ? undefined : COMMANDS[name]
  if (args.flags.help || !command) {
    io.stderr.write(`${name && !command ? `unknown command "${name}"\n` : ''}${USAGE}\n`)
    return args.flags.help ? EXIT.ok : EXIT.usage
  }

  const abort = new AbortController()
  const onSignal = () => {
    if (abort.signal.aborted) process.exit(EXIT.interrupted)
    io.stderr.write('\nstopping after the batch in flight (again to exit at once)\n')
    abort.abort(new Error('interrupted'))
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)

  let config: CutoverConfig | undefined
  try {
    config = await loadConfig(stringFlag(args, 'config'))
    await ensureSchema(config.control)
    const json = args.flags.json === true || !io.stdout.isTTY
    return await command({
      config,
      args,
      stdout: io.stdout,
      stderr: io.stderr,
      json,
      progress: new ProgressRenderer(io.stdout, { json }),
      actor: stringFlag(args, 'actor') ?? defaultActor(),
      logger: createJsonLogger({ minLevel: args.flags.verbose ? 'info' : 'warn', write: (line) => void io.stderr.write(line) }),
      signal: abort.signal,
    })
  } catch (error) {
    if (error instanceof UsageError) {
      io.stderr.write(`${error.message}\n${USAGE}\n`)
      return EXIT.usage
    }
    const code = error instanceof CutoverError ? ` [${error.code}${error.key ? ` key ${error.key}` : ''}]` : ''
    io.stderr.write(`cutover ${name}: ${(error as Error).message ?? String(error)}${code}\n`)
    return EXIT.failed
  } finally {
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
    await config?.close?.().catch(() => undefined)
  }
}

function defaultActor(): string {
  try {
    return `${userInfo().username}@${hostname()}`
  } catch {
    return `cli@${hostname()}`
  }
}
