import { AuditLog } from '../control/audit-log.js'
import { canTransition, type Phase } from '../model/phase.js'
import { createCutover, type MigrationRuntime } from '../runtime/cutover.js'
import { stringFlag } from './args.js'
import { type CommandContext, EXIT, migrationArgument, writeResult } from './command.js'

/**
 * `cutover rollback <migration> [--reason TEXT]`: the one-word emergency command. Moves the whole
 * fleet to `rollback` (the old store serves and is authoritative again) through the same checks,
 * barrier and audit as `cutover phase <migration> rollback`, and says which instances, if any, were
 * fenced for missing the barrier. Tenants with a phase of their own roll back too (each through its
 * own barrier, audited): an emergency leaves no tenant on the new store. With `--tenant T`, only
 * that tenant's requests roll back (its own phase becomes `rollback`; the barrier holds only its
 * writes).
 */
export async function rollbackCommand(context: CommandContext): Promise<number> {
  const migration = migrationArgument(context)
  const tenant = stringFlag(context.args, 'tenant')
  const reason = stringFlag(context.args, 'reason') ?? 'emergency rollback (cutover rollback)'
  const subject = tenant === undefined ? migration.name : `${migration.name} tenant ${tenant}`
  const scope = tenant === undefined ? {} : { tenant }
  const cutover = await createCutover({ migrations: context.config.migrations, control: context.config.control, pollIntervalMs: false, logger: context.logger })
  try {
    const runtime = cutover.migration(migration.name)
    const before = tenant === undefined ? runtime.configuredPhase : (runtime.tenantOverrides.get(tenant)?.phase ?? runtime.configuredPhase)
    const tenants = tenant === undefined ? tenantsToRollBack(runtime) : []
    if (before === 'rollback' && tenants.length === 0) {
      writeResult(context, { command: 'rollback', migration: migration.name, ...scope, before, after: before, changed: false }, `${subject}: already in rollback`)
      return EXIT.ok
    }
    const audit = new AuditLog(context.config.control)
    const lastBarrier = async () => ((await audit.entries(migration.name)).at(-1)?.details.barrier ?? null) as Barrier | null
    let barrier: Barrier | null = null
    if (before !== 'rollback') {
      if (tenant === undefined) await cutover.setPhase(migration.name, 'rollback', { actor: context.actor, reason })
      else await cutover.setTenantPhase(migration.name, tenant, 'rollback', { actor: context.actor, reason })
      barrier = await lastBarrier()
    }
    const rolledBack: { tenant: string; before: string; barrier: Barrier | null }[] = []
    for (const [other, phase] of tenants) {
      await cutover.setTenantPhase(migration.name, other, 'rollback', { actor: context.actor, reason })
      rolledBack.push({ tenant: other, before: phase, barrier: await lastBarrier() })
    }
    const text = [
      before === 'rollback' ? `${subject}: already in rollback` : `${subject}: ${before} → rollback (the old store is authoritative again${tenant === undefined ? '' : ' for this tenant'})`,
      ...(before === 'rollback' ? [] : [barrierLine(barrier)]),
      ...rolledBack.map((t) => `  tenant ${t.tenant}: ${t.before} → rollback; ${barrierLine(t.barrier).trim()}`),
    ].join('\n')
    writeResult(context, { command: 'rollback', migration: migration.name, ...scope, before, after: 'rollback', changed: true, barrier, tenants: rolledBack }, text)
    return EXIT.ok
  } finally {
    await cutover.close()
  }
}

type Barrier = { fenced: string[]; acknowledged: string[]; waitedMs: number }

function barrierLine(barrier: Barrier | null): string {
  const fenced = barrier?.fenced ?? []
  return barrier
    ? `  barrier: ${barrier.acknowledged.length} instance(s) acknowledged in ${barrier.waitedMs} ms${fenced.length > 0 ? `; FENCED (missed it): ${fenced.join(', ')}` : ''}`
    : '  no barrier needed (write authority did not move)'
}

/** The tenants with a phase of their own that can move to `rollback` (not there yet, not `off`). */
function tenantsToRollBack(runtime: MigrationRuntime): [string, Phase][] {
  return [...runtime.tenantOverrides].filter(([, settings]) => canTransition(settings.phase, 'rollback') && settings.phase !== 'rollback').map(([tenant, settings]) => [tenant, settings.phase])
}
