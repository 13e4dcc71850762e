import { createCutover } from '../runtime/cutover.js'
import { stringFlag } from './args.js'
import { type CommandContext, EXIT, migrationArgument, writeResult } from './command.js'

/**
 * `cutover release <migration> [--reason TEXT]`: ends the safety net of a completed migration
 * before its time: the revert window closes and the old store takes writes again. Audited.
 */
export async function releaseCommand(context: CommandContext): Promise<number> {
  const migration = migrationArgument(context)
  const reason = stringFlag(context.args, 'reason')
  const cutover = await createCutover({ migrations: context.config.migrations, control: context.config.control, pollIntervalMs: false, signalIntervalMs: false, logger: context.logger })
  try {
    const net = await cutover.releaseSafetyNet(migration.name, { actor: context.actor, ...(reason === undefined ? {} : { reason }) })
    writeResult(context, { command: 'release', migration: migration.name, safetyNet: net }, `${migration.name}: safety net released; the revert window is closed and the old store takes writes again`)
    return EXIT.ok
  } finally {
    await cutover.close()
  }
}
