import { PhaseGateError } from '../model/errors.js'
import { createCutover } from '../runtime/cutover.js'
import { isPhase, PHASES } from '../model/phase.js'
import { parseSettingText } from '../model/settings.js'
import { type ParsedArgs, stringFlag, UsageError } from './args.js'
import { type CommandContext, EXIT, migrationArgument, writeResult } from './command.js'

/**
 * `cutover phase <migration> <phase> [--read-percent N] [--compare-sample F] [--reason TEXT]`:
 * moves the whole fleet (every process polling `cutover.migration_state`) to a phase, checked
 * against the phase table and audited. Without a phase it prints the current one.
 */
export async function phaseCommand(context: CommandContext): Promise<number> {
  const migration = migrationArgument(context)
  const target = context.args.positionals[2]
  if (target !== undefined && !isPhase(target)) throw new UsageError(`unknown phase "${target}"; phases: ${PHASES.join(', ')}`)
  const readPercent = settingFlag(context.args, 'read-percent', 'readPercent')
  const compareSample = settingFlag(context.args, 'compare-sample', 'compareSample')
  const reason = stringFlag(context.args, 'reason')
  // An engine of its own with no polling: it reads the current state, checks the transition and
  // writes the new one; the application's processes pick it up on their next poll.
  // No signals either: this process serves no traffic, and its empty queues must not count as the
  // fleet's mirror lag in the gates.
  const cutover = await createCutover({ migrations: context.config.migrations, control: context.config.control, pollIntervalMs: false, signalIntervalMs: false, logger: context.logger })
  try {
    const before = cutover.migration(migration.name)
    const from = { phase: before.configuredPhase, readPercent: before.readPercent, compareSample: before.compareSample }
    if (target === undefined) {
      writeResult(context, { command: 'phase', migration: migration.name, ...from }, `${migration.name}: ${describe(from)}`)
      return EXIT.ok
    }
    const force = context.args.flags.force === true
    try {
      await cutover.setPhase(migration.name, target, {
        actor: context.actor,
        force,
      ...(readPercent === undefined ? {} : { readPercent }),
      ...(compareSample === undefined ? {} : { compareSample }),
        ...(reason === undefined ? {} : { reason }),
      })
    } catch (error) {
      if (!(error instanceof PhaseGateError)) throw error
      const text = [`${migration.name}: ${error.from} → ${error.to} refused; unmet gates:`, ...error.unmet.map((g) => `  ${g.gate}: ${g.measured} (needs ${g.required})`), '  wait, or move anyway with --force --reason TEXT'].join('\n')
      writeResult(context, { command: 'phase', migration: migration.name, refused: true, from: error.from, to: error.to, unmet: error.unmet }, text)
      return EXIT.refused
    }
    const after = cutover.migration(migration.name)
    const to = { phase: after.configuredPhase, readPercent: after.readPercent, compareSample: after.compareSample }
    writeResult(context, { command: 'phase', migration: migration.name, before: from, after: to }, `${migration.name}: ${describe(from)} → ${describe(to)}`)
    return EXIT.ok
  } finally {
    await cutover.close()
  }
}

function describe(state: { phase: string; readPercent: number; compareSample: number }): string {
  return `${state.phase} (reads on new ${state.readPercent}%, compare sample ${state.compareSample})`
}

/** A setting given as an option, through the validation env flags and `setPhase` use. */
function settingFlag(args: ParsedArgs, flag: string, setting: 'readPercent' | 'compareSample'): number | undefined {
  const text = stringFlag(args, flag)
  if (text === undefined) return undefined
  const parsed = parseSettingText(setting, text)
  if (!parsed.ok) throw new UsageError(`--${flag} ${JSON.stringify(text)} is not valid; ${parsed.message}`)
  return parsed.value
}
