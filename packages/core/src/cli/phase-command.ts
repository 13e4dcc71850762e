import { PhaseGateError } from '../model/errors.js'
import { createCutover, type MigrationRuntime } from '../runtime/cutover.js'
import { isPhase, type Phase, PHASES } from '../model/phase.js'
import { parseSettingText } from '../model/settings.js'
import { type ParsedArgs, stringFlag, UsageError } from './args.js'
import { type CommandContext, EXIT, migrationArgument, writeResult } from './command.js'

/**
 * `cutover phase <migration> <phase> [--read-percent N] [--compare-sample F] [--reason TEXT]`:
 * moves the whole fleet (every process polling `cutover.migration_state`) to a phase, checked
 * against the phase table and audited. Without a phase it prints the current one. With
 * `--tenant T` the same for one tenant's own phase (`cutover.tenant_state`), and `--tenant T
 * --clear` removes the tenant's override so that it follows the migration again.
 */
export async function phaseCommand(context: CommandContext): Promise<number> {
  const migration = migrationArgument(context)
  const target = context.args.positionals[2]
  if (target !== undefined && !isPhase(target)) throw new UsageError(`unknown phase "${target}"; phases: ${PHASES.join(', ')}`)
  const tenant = stringFlag(context.args, 'tenant')
  const clear = context.args.flags.clear === true
  if (clear && tenant === undefined) throw new UsageError('--clear removes a tenant\'s own phase: name it with --tenant T')
  if (clear && target !== undefined) throw new UsageError('--clear takes no phase: the tenant follows the migration\'s')
  const readPercent = settingFlag(context.args, 'read-percent', 'readPercent')
  const compareSample = settingFlag(context.args, 'compare-sample', 'compareSample')
  const reason = stringFlag(context.args, 'reason')
  // An engine of its own with no polling: it reads the current state, checks the transition and
  // writes the new one; the application's processes pick it up on their next poll.
  // No signals either: this process serves no traffic, and its empty queues must not count as the
  // fleet's mirror lag in the gates.
  const cutover = await createCutover({ migrations: context.config.migrations, control: context.config.control, pollIntervalMs: false, signalIntervalMs: false, logger: context.logger })
  try {
    const subject = tenant === undefined ? migration.name : `${migration.name} tenant ${tenant}`
    const state = () => settingsOf(cutover.migration(migration.name), tenant)
    const from = state()
    if (target === undefined && !clear) {
      writeResult(context, { command: 'phase', migration: migration.name, ...(tenant === undefined ? {} : { tenant }), ...from }, `${subject}: ${describe(from)}`)
      return EXIT.ok
    }
    const change = {
      actor: context.actor,
      force: context.args.flags.force === true,
      ...(readPercent === undefined ? {} : { readPercent }),
      ...(compareSample === undefined ? {} : { compareSample }),
      ...(reason === undefined ? {} : { reason }),
    }
    try {
      if (tenant === undefined) await cutover.setPhase(migration.name, target as Phase, change)
      else await cutover.setTenantPhase(migration.name, tenant, clear ? null : (target as Phase), change)
    } catch (error) {
      if (!(error instanceof PhaseGateError)) throw error
      const text = [`${subject}: ${error.from} → ${error.to} refused; unmet gates:`, ...error.unmet.map((g) => `  ${g.gate}: ${g.measured} (needs ${g.required})`), '  wait, or move anyway with --force --reason TEXT'].join('\n')
      writeResult(context, { command: 'phase', migration: migration.name, ...(tenant === undefined ? {} : { tenant }), refused: true, from: error.from, to: error.to, unmet: error.unmet }, text)
      return EXIT.refused
    }
    const to = state()
    writeResult(context, { command: 'phase', migration: migration.name, ...(tenant === undefined ? {} : { tenant }), before: from, after: to }, `${subject}: ${describe(from)} → ${describe(to)}`)
    return EXIT.ok
  } finally {
    await cutover.close()
  }
}

/** The migration's settings in force, or one tenant's (`override`: whether they are its own). */
function settingsOf(runtime: MigrationRuntime, tenant: string | undefined): { phase: string; readPercent: number; compareSample: number; override?: boolean } {
  if (tenant === undefined) return { phase: runtime.configuredPhase, readPercent: runtime.readPercent, compareSample: runtime.compareSample }
  const own = runtime.tenantOverrides.get(tenant)
  return own ? { ...own, override: true } : { phase: runtime.configuredPhase, readPercent: runtime.readPercent, compareSample: runtime.compareSample, override: false }
}

function describe(state: { phase: string; readPercent: number; compareSample: number; override?: boolean }): string {
  const own = state.override === undefined ? '' : state.override ? ', its own phase' : ', following the migration'
  return `${state.phase} (reads on new ${state.readPercent}%, compare sample ${state.compareSample}${own})`
}

/** A setting given as an option, through the validation env flags and `setPhase` use. */
function settingFlag(args: ParsedArgs, flag: string, setting: 'readPercent' | 'compareSample'): number | undefined {
  const text = stringFlag(args, flag)
  if (text === undefined) return undefined
  const parsed = parseSettingText(setting, text)
  if (!parsed.ok) throw new UsageError(`--${flag} ${JSON.stringify(text)} is not valid; ${parsed.message}`)
  return parsed.value
}
