import { duration } from '../control/phase-gates.js'
import { phasePlan, type PhasePlan } from '../control/phase-plan.js'
import { currentPhase } from '../jobs/reconcile.js'
import { type CommandContext, EXIT, migrationArgument, writeResult } from './command.js'

/**
 * `cutover plan <migration>`: where the migration stands on its timeline — each phase's dwell so
 * far against what its gates require, each gate of the next move with its value and threshold,
 * and the safety net's days left after `complete`.
 */
export async function planCommand(context: CommandContext): Promise<number> {
  const migration = migrationArgument(context)
  const plan = await phasePlan(context.config.control, migration, await currentPhase(migration.name, context.config.control))
  writeResult(context, { command: 'plan', ...plan }, formatPlan(plan))
  return EXIT.ok
}

/** The plan as text for people; `cutover status` shows the same. */
export function formatPlan(plan: PhasePlan): string {
  const lines = [`${plan.migration}: phase ${plan.phase}`]
  for (const d of plan.dwell) {
    if (d.dwellMs === 0 && d.phase !== plan.phase) continue
    lines.push(`  time in ${d.phase}${d.phase === 'ramp' ? ' at 100 %' : ''}: ${duration(d.dwellMs)}${d.requiredMs === undefined ? '' : ` of ${duration(d.requiredMs)}`}`)
  }
  if (plan.next) {
    lines.push(`  next: ${plan.next.from} → ${plan.next.to} ${plan.next.met ? 'ALLOWED' : 'not yet'}`)
    for (const gate of plan.next.gates) lines.push(`    [${gate.met ? 'x' : ' '}] ${gate.gate}: ${gate.measured} (needs ${gate.required})`)
  }
  const net = plan.safetyNet
  if (net) {
    const state = net.releasedAt ? `released by ${net.releasedBy} at ${net.releasedAt.toISOString()}` : `${net.readOnlyDaysLeft.toFixed(1)} days of read-only old store left`
    lines.push(`  safety net: ${state}; revert window ${net.revertWindowOpen ? `open until ${net.revertUntil.toISOString()}` : 'closed'}`)
  }
  return lines.join('\n')
}
