import { AuditLog } from '../control/audit-log.js'
import { createCutover } from '../runtime/cutover.js'
import { stringFlag } from './args.js'
import { type CommandContext, EXIT, migrationArgument, writeResult } from './command.js'

/**
 * `cutover rollback <migration> [--reason TEXT]`: the one-word emergency command. Moves the whole
 * fleet to `rollback` (the old store serves and is authoritative again) through the same checks,
 * barrier and audit as `cutover phase <migration> rollback`, and says which instances, if any, were
 * fenced for missing the barrier. With `--tenant T`, only that tenant's requests roll back (its own
 * phase becomes `rollback`; the barrier holds only its writes).
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
    if (before === 'rollback') {
      writeResult(context, { command: 'rollback', migration: migration.name, ...scope, before, after: before, changed: false }, `${subject}: already in rollback`)
      return EXIT.ok
    }
    if (tenant === undefined) await cutover.setPhase(migration.name, 'rollback', { actor: context.actor, reason })
    else await cutover.setTenantPhase(migration.name, tenant, 'rollback', { actor: context.actor, reason })
    const entry = (await new AuditLog(context.config.control).entries(migration.name)).at(-1)
    const barrier = (entry?.details.barrier ?? null) as { fenced: string[]; acknowledged: string[]; waitedMs: number } | null
    const fenced = barrier?.fenced ?? []
    const text = [
      `${subject}: ${before} → rollback (the old store is authoritative again${tenant === undefined ? '' : ' for this tenant'})`,
      barrier ? `  barrier: ${barrier.acknowledged.length} instance(s) acknowledged in ${barrier.waitedMs} ms${fenced.length > 0 ? `; FENCED (missed it): ${fenced.join(', ')}` : ''}` : '  no barrier needed (write authority did not move)',
    ].join('\n')
    writeResult(context, { command: 'rollback', migration: migration.name, ...scope, before, after: 'rollback', changed: true, barrier }, text)
    return EXIT.ok
  } finally {
    await cutover.close()
  }
}
