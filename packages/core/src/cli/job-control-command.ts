import { JobControl } from '../control/job-control.js'
import { stringFlag } from './args.js'
import { type CommandContext, EXIT, migrationArgument, writeResult } from './command.js'

/** `cutover pause <migration> [--reason text]`, `cutover resume <migration>`: every worker obeys within a batch. */
export async function jobControlCommand(context: CommandContext): Promise<number> {
  const migration = migrationArgument(context)
  const control = new JobControl(context.config.control)
  const pause = context.args.positionals[0] === 'pause'
  if (pause) await control.pause(migration.name, context.actor, stringFlag(context.args, 'reason'))
  else await control.resume(migration.name, context.actor)
  writeResult(context, { command: context.args.positionals[0], migration: migration.name }, `${migration.name}: jobs ${pause ? 'paused' : 'resumed'}`)
  return EXIT.ok
}
