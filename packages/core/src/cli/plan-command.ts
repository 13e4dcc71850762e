import { duration } from '../control/phase-gates.js'
import { phasePlan, type PhasePlan } from '../control/phase-plan.js'
import { currentPhase } from '../jobs/reconcile.js'
import { TenantStateTable } from '../control/tenant-state.js'
import { stringFlag } from './args.js'
import { type CommandContext, EXIT, migrationArgument, writeResult } from './command.js'

/**
 * `cutover plan <migration>`: where the migration stands on its timeline — each phase's dwell so
 * far against what its gates require, each gate of the next move with its value and threshold,
 * and the safety net's days left after `complete`. `--tenant T`: the same on the tenant's own
 * timeline, for its own next move (`cutover phase <m> <phase> --tenant T` checks those gates).
 */
export async function planCommand(context: CommandContext): Promise<number> {
  const migration = migrationArgument(context)
  const tenant = stringFlag(context.args, 'tenant')
  const control = context.config.control
  const own = tenant === undefined ? undefined : await new TenantStateTable(control).override(migration.name, tenant)
  const phase = own?.phase ?? (await currentPhase(migration.name, control))
  const plan = await phasePlan(control, migration, phase, new Date(), tenant)
  writeResult(context, { command: 'plan', ...plan }, formatPlan(plan))
  return EXIT.ok
}

/** The plan as text for people; `cutover status` shows the same. */
export function formatPlan(plan: PhasePlan): string {
  const lines = [`${plan.migration}${plan.tenant === undefined ? '' : ` tenant ${plan.tenant}`}: phase ${plan.phase}`]
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
