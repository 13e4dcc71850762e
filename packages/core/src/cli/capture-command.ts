/**
 * `cutover capture install|remove|status|run <migration> [--side old|new]`: change-log capture of a
 * migration's PostgreSQL sides (see docs/change-capture.md).
 *
 * - `install`: the change log and the triggers (idempotent; names the missing privilege if any);
 * - `remove`: drops triggers, function and unapplied entries (idempotent);
 * - `status`: installed or not, entries pending, lag, TRUNCATEs awaiting a resync;
 * - `run`: a worker applying the log until SIGINT/SIGTERM (`--once`: until the log is empty).
 */
import { DeadLetterTable } from '../control/dead-letters.js'
import { captureStatus, capturableSides, installCapture, removeCapture } from '../capture/capture-install.js'
import { ChangeLogWorker } from '../capture/change-log-worker.js'
import { currentPhase } from '../jobs/reconcile.js'
import { revertWindowOpen, SafetyNets } from '../control/safety-net.js'
import type { Phase, Side } from '../model/phase.js'
import { numberFlag, stringFlag, UsageError } from './args.js'
import { type CommandContext, EXIT, migrationArgument, writeResult } from './command.js'

const ACTIONS = ['install', 'remove', 'status', 'run'] as const

export async function captureCommand(context: CommandContext): Promise<number> {
  const action = context.args.positionals[1]
  if (!ACTIONS.includes(action as (typeof ACTIONS)[number])) throw new UsageError(`cutover capture <${ACTIONS.join('|')}> <migration> [--side old|new]`)
  const migration = migrationArgument(context, 2)
  const side = stringFlag(context.args, 'side')
  if (side !== undefined && side !== 'old' && side !== 'new') throw new UsageError(`--side must be old or new, got ${JSON.stringify(side)}`)
  const sides: Side[] = side ? [side] : capturableSides(migration)
  if (action === 'install') await installCapture(migration, sides)
  if (action === 'remove') await removeCapture(migration, sides)
  if (action === 'run') await runWorkers(context, migration, sides)
  const statuses = await captureStatus(migration, sides)
  const text = statuses
    .map((s) => `${s.migration} ${s.side} (${s.table}): ${s.installed ? 'installed' : s.triggers > 0 ? `PARTIAL (${s.triggers}/3 triggers)` : 'not installed'}, ${s.pending} pending, lag ${Math.round(s.lagMs)} ms${s.resyncsPending > 0 ? `, ${s.resyncsPending} TRUNCATE(s) awaiting a resync` : ''}`)
    .join('\n')
  writeResult(context, { command: 'capture', action, migration: migration.name, sides: statuses }, text)
  return EXIT.ok
}

/** One worker per side, following the phase in the control table, until the signal (or empty with `--once`). */
async function runWorkers(context: CommandContext, migration: Parameters<typeof installCapture>[0], sides: readonly Side[]): Promise<void> {
  const { control } = context.config
  const nets = new SafetyNets(control)
  let phase: Phase = await currentPhase(migration.name, control)
  let revertWindow = revertWindowOpen(await nets.state(migration.name))
  const poll = setInterval(() => {
    currentPhase(migration.name, control).then((p) => (phase = p), () => undefined)
    nets.state(migration.name).then((net) => (revertWindow = revertWindowOpen(net)), () => undefined)
  }, 1_000)
  const workers = sides.map(
    (side) =>
      new ChangeLogWorker({
        migration,
        direction: side === 'old' ? 'old-to-new' : 'new-to-old',
        deadLetters: new DeadLetterTable(control),
        phase: () => phase,
        revertWindowOpen: () => revertWindow,
        ...(numberFlag(context.args, 'batch') ? { batchSize: numberFlag(context.args, 'batch') as number } : {}),
        logger: context.logger,
      }),
  )
  try {
    if (context.args.flags.once) {
      for (const worker of workers) await worker.drain()
      return
    }
    for (const worker of workers) worker.start()
    await new Promise<void>((resolve) => context.signal.addEventListener('abort', () => resolve(), { once: true }))
    await Promise.all(workers.map((worker) => worker.stop()))
  } finally {
    clearInterval(poll)
  }
}
