/**
 * The `cutover` command. Every command, its usage and its options are the `COMMANDS` table below:
 * the parser, `cutover --help` and `cutover <command> --help` all read it, so an option is added
 * in one place and an unknown one (`--rat 5`) is a usage error, never silently ignored.
 *
 * On a terminal, progress is a live bar with rate and ETA; otherwise one JSON line per second on
 * stdout, and the result as a final `{"type":"result",…}` line. SIGINT/SIGTERM stop jobs after the
 * batch in flight, with the checkpoint saved; a second signal exits at once.
 */
import { hostname, userInfo } from 'node:os'
import { ensureSchema } from '../control/control-schema.js'
import type { Migration } from '../model/migration.js'
import { CutoverError } from '../model/errors.js'
import { createJsonLogger } from '../observe/logger.js'
import { readEnvFlags } from '../runtime/env-flags.js'
import { type OptionTable, parseArgs, type ParsedArgs, stringFlag, UsageError } from './args.js'
import { auditCommand } from './audit-command.js'
import { backfillCommand } from './backfill-command.js'
import { captureCommand } from './capture-command.js'
import { reaching } from './cli-errors.js'
import { type CommandContext, EXIT } from './command.js'
import type { CutoverConfig } from './cutover-config.js'
import { jobControlCommand } from './job-control-command.js'
import { loadConfig } from './load-config.js'
import { phaseCommand } from './phase-command.js'
import { planCommand } from './plan-command.js'
import { ProgressRenderer } from './progress-renderer.js'
import { reconcileCommand } from './reconcile-command.js'
import { releaseCommand } from './release-command.js'
import { reportCommand } from './report-command.js'
import { rollbackCommand } from './rollback-command.js'
import { statusCommand } from './status-command.js'
import { type CommandSpec, commandHelp, GLOBAL_OPTIONS, overview } from './usage.js'
import { verifyCommand } from './verify-command.js'
import { viewsCommand } from './views-command.js'
import { workerCommand } from './worker-command.js'

export const COMMANDS: Readonly<Record<string, CommandSpec & { readonly usesStores?: boolean }>> = {
  backfill: {
    run: backfillCommand,
    usesStores: true,
    usage: ['backfill <migration> [--rate N] [--nice R] [--batch N] [--restart] [--config-version V]', 'backfill <migration> --distributed [--range-size N] [--replan]'],
    summary: 'Copy the old store into the new one, resumably; or, with --distributed, plan key ranges for `cutover worker`.',
    options: [
      { name: 'rate', kind: 'number', value: 'N', help: 'at most N rows per second' },
      { name: 'nice', kind: 'number', value: 'R', help: 'sleep R × the time each batch took (0.5: at most two thirds busy)' },
      { name: 'batch', kind: 'number', value: 'N', help: 'first batch size (batches grow while fast; default 1000)' },
      { name: 'restart', kind: 'flag', help: 'start over, e.g. after the mapper or the stores changed' },
      { name: 'config-version', kind: 'text', value: 'V', help: 'label of the configuration, part of the checkpoint fingerprint' },
      { name: 'distributed', kind: 'flag', help: 'plan key ranges for `cutover worker` instead of copying here' },
      { name: 'range-size', kind: 'number', value: 'N', help: 'keys per range with --distributed (default 100000)' },
      { name: 'replan', kind: 'flag', help: 'with --distributed: plan the ranges again' },
    ],
  },
  worker: {
    run: workerCommand,
    usesStores: true,
    usage: ['worker <migration> [--expire S] [--poll S] [--forever]'],
    summary: 'Work the ranges a distributed backfill planned, until all are done (run one per machine); a dead worker\'s range is taken over at once.',
    options: [
      { name: 'expire', kind: 'number', value: 'S', help: 'a live holder that checkpoints nothing for S seconds loses its range (default 900)' },
      { name: 'forever', kind: 'flag', help: 'keep waiting for ranges until interrupted' },
      { name: 'poll', kind: 'number', value: 'S', help: 'seconds between looks for free ranges, and lease checks (default 1)' },
    ],
  },
  verify: {
    run: verifyCommand,
    usesStores: true,
    usage: ['verify <migration> [--sample PERCENT] [--recheck-ms N]'],
    summary: 'Prove the stores equal: exhaustively by segment checksums, or a reproducible sample field by field.',
    options: [
      { name: 'sample', kind: 'number', value: 'PERCENT', help: 'compare this share of keys (by routing bucket) field by field instead' },
      { name: 'recheck-ms', kind: 'number', value: 'N', help: 'wait N ms before re-checking keys that differed (they may have been in flight)' },
    ],
    exits: '2 when the stores differ',
  },
  reconcile: {
    run: reconcileCommand,
    usesStores: true,
    usage: ['reconcile <migration> [--report ID] [--keys KEYS] [--include-quarantine] [--include-dead-letters] [--authoritative old|new]'],
    summary: "Repair the latest (or given) verification report's differences from the authoritative side, audited.",
    options: [
      { name: 'report', kind: 'text', value: 'ID', help: 'the verification report to repair (default: the latest)' },
      { name: 'keys', kind: 'text', value: 'KEYS', help: `repair these keys: 5,7,9, or JSON: '["a,b",7]', and for a composite key '[[1,"a"],[2,"b"]]' (parts in key-column order)` },
      { name: 'include-quarantine', kind: 'flag', help: 'also retry quarantined records' },
      { name: 'include-dead-letters', kind: 'flag', help: 'also repair the keys of open dead letters' },
      { name: 'authoritative', kind: 'text', value: 'old|new', help: 'the side to copy from (default: by phase)' },
    ],
    exits: '2 when keys still differ afterwards',
  },
  status: {
    run: statusCommand,
    usage: ['status [<migration>]'],
    summary: 'Phase, backfill progress, quarantine, dead letters and the last verification of each migration.',
    options: [],
  },
  phase: {
    run: phaseCommand,
    usage: ['phase <migration> [<phase>] [--read-percent N] [--compare-sample F] [--reason TEXT] [--force]', 'phase <migration> [<phase>] --tenant T [...]', 'phase <migration> --tenant T --clear'],
    summary: "Show the fleet's phase of a migration, or move every process to another (checked against the phase table and the phase gates, audited).",
    options: [
      { name: 'read-percent', kind: 'number', value: 'N', help: 'in ramp: share of routing keys read from the new store, 0-100' },
      { name: 'compare-sample', kind: 'number', value: 'F', help: 'share of reads compared, 0-1' },
      { name: 'reason', kind: 'text', value: 'TEXT', help: 'why, for the audit log (needed with --force)' },
      { name: 'force', kind: 'flag', help: 'move although phase gates are unmet; the audit keeps the gate values' },
      { name: 'tenant', kind: 'text', value: 'T', help: "the phase of one tenant's requests only (its own row in cutover.tenant_state)" },
      { name: 'clear', kind: 'flag', help: "with --tenant: remove the tenant's own phase; it follows the migration again" },
    ],
    exits: '3 when phase gates refuse the move',
  },
  plan: {
    run: planCommand,
    usage: ['plan <migration> [--tenant T]'],
    summary: 'Where the migration stands on its timeline: time in each phase against its gates, and each gate of the next move.',
    options: [{ name: 'tenant', kind: 'text', value: 'T', help: "the tenant's own timeline and next move" }],
  },
  release: {
    run: releaseCommand,
    usesStores: true,
    usage: ['release <migration> [--reason TEXT]'],
    summary: 'End the safety net of a completed migration early: the revert window closes and the old store takes writes again.',
    options: [{ name: 'reason', kind: 'text', value: 'TEXT', help: 'why, for the audit log' }],
  },
  report: {
    run: reportCommand,
    usage: ['report <migration> --html FILE'],
    summary: 'Write one self-contained HTML page from the control tables (or, with --json, print its data).',
    options: [{ name: 'html', kind: 'text', value: 'FILE', help: 'where to write the page' }],
  },
  views: {
    run: viewsCommand,
    usage: ['views sql|apply|drop <migration>'],
    summary: 'Print, apply or remove the writable compatibility views that present the old shape in the new database (idempotent, one transaction).',
    options: [],
  },
  pause: {
    run: jobControlCommand,
    usage: ['pause <migration> [--reason TEXT]'],
    summary: "Pause the migration's jobs everywhere; workers stop after the batch in flight.",
    options: [{ name: 'reason', kind: 'text', value: 'TEXT', help: 'why, for the audit log and status' }],
  },
  resume: {
    run: jobControlCommand,
    usage: ['resume <migration>'],
    summary: "Resume the migration's paused jobs.",
    options: [],
  },
  rollback: {
    run: rollbackCommand,
    usage: ['rollback <migration> [--tenant T] [--reason TEXT]'],
    summary: 'The emergency command: move the whole fleet (or one tenant) to rollback now, through the write barrier, audited.',
    options: [
      { name: 'reason', kind: 'text', value: 'TEXT', help: 'why, for the audit log' },
      { name: 'tenant', kind: 'text', value: 'T', help: "roll back only this tenant's requests" },
    ],
  },
  audit: {
    run: auditCommand,
    usage: ['audit verify [--head SEQ:HASH]'],
    summary: 'Verify the audit log: hash chain, gap-free numbers, HMACs, and (with --head) that nothing after a known head was cut.',
    options: [{ name: 'head', kind: 'text', value: 'SEQ:HASH', help: 'a chain head recorded earlier (a log line, a report) that must still be in the chain' }],
    exits: '2 when an entry was changed, forged or deleted',
  },
  capture: {
    run: captureCommand,
    usage: ['capture install|remove|status|run <migration> [--side old|new] [--batch N] [--once]'],
    summary: 'Install, remove or inspect the trigger-written change log of a PostgreSQL side, or run a worker that applies it.',
    options: [
      { name: 'side', kind: 'text', value: 'old|new', help: 'which side (default: every PostgreSQL side the migration captures)' },
      { name: 'batch', kind: 'number', value: 'N', help: 'with run: entries claimed per round' },
      { name: 'once', kind: 'flag', help: 'with run: apply what is in the log now, then stop' },
    ],
  },
}

export const OPTION_TABLE: OptionTable = {
  global: GLOBAL_OPTIONS,
  commands: Object.fromEntries(Object.entries(COMMANDS).map(([name, spec]) => [name, spec.options])),
}

type Io = { stdout: NodeJS.WriteStream; stderr: NodeJS.WriteStream }

export async function main(argv: readonly string[], io: Io = process): Promise<number> {
  let args: ParsedArgs
  try {
    args = parseArgs(argv, OPTION_TABLE)
  } catch (error) {
    return usageFailure(io, error as UsageError)
  }
  const [first, second] = args.positionals
  const name = first === 'help' ? second : first
  const spec = name === undefined ? undefined : COMMANDS[name]
  if (first === 'help' || args.flags.help || !spec || !name) {
    if (name !== undefined && !spec) return usageFailure(io, new UsageError(`unknown command "${name}"; commands: ${Object.keys(COMMANDS).join(', ')}`))
    const help = spec ? commandHelp(spec) : overview(COMMANDS)
    const asked = first === 'help' || args.flags.help === true
    ;(asked ? io.stdout : io.stderr).write(`${help}\n`)
    return asked ? EXIT.ok : EXIT.usage
  }
  return runCommand(name, spec, args, io)
}

async function runCommand(name: string, spec: CommandSpec & { readonly usesStores?: boolean }, args: ParsedArgs, io: Io): Promise<number> {
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
    // The same env flags the application reads, checked as createCutover checks them: a typo
    // (`CUTOVER_USERS_READ_PERCNT`) fails here too, not only in the application.
    readEnvFlags(
      config.migrations.map((m) => m.name),
      process.env,
      { rejectUnknownMigrations: config.rejectUnknownMigrationFlags ?? true },
    )
    const control = config.control
    await reaching({ role: 'control' }, () => ensureSchema(control))
    const json = args.flags.json === true || !io.stdout.isTTY
    const context: CommandContext = {
      config,
      args,
      stdout: io.stdout,
      stderr: io.stderr,
      json,
      progress: new ProgressRenderer(io.stdout, { json }),
      actor: stringFlag(args, 'actor') ?? defaultActor(),
      logger: createJsonLogger({ minLevel: args.flags.verbose ? 'info' : 'warn', write: (line) => void io.stderr.write(line) }),
      signal: abort.signal,
    }
    if (spec.usesStores) await probeStores(config, args.positionals[1])
    return await spec.run(context)
  } catch (error) {
    if (error instanceof UsageError) return usageFailure(io, error, name)
    const code = error instanceof CutoverError ? ` [${error.code}${error.key ? ` key ${error.key}` : ''}]` : ''
    io.stderr.write(`cutover ${name}: ${(error as Error).message ?? String(error)}${code}\n`)
    return EXIT.failed
  } finally {
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
    await config?.close?.().catch(() => undefined)
  }
}

/** One cheap read of each side first, so an unreachable store is named (old or new) before a job starts. */
async function probeStores(config: CutoverConfig, migrationName: string | undefined): Promise<void> {
  const migration: Migration<any, any> | undefined = config.migrations.find((m) => m.name === migrationName)
  if (!migration) return // the command reports an unknown or missing migration itself
  await Promise.all(
    (['old', 'new'] as const).map((side) =>
      reaching({ role: `${side} store`, migration: migration.name, store: migration[side].name }, () => migration[side].scan({ limit: 1 })),
    ),
  )
}

function usageFailure(io: Io, error: UsageError, command = error.command): number {
  const spec = command === undefined ? undefined : COMMANDS[command]
  io.stderr.write(`${error.message}\n${spec ? `usage: ${spec.usage.map((u) => `cutover ${u}`).join('\n       ')}\n(cutover ${command} --help for its options)` : 'cutover --help lists the commands'}\n`)
  return EXIT.usage
}

function defaultActor(): string {
  try {
    return `${userInfo().username}@${hostname()}`
  } catch {
    return `cli@${hostname()}`
  }
}
