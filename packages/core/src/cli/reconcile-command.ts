import { reconcile } from '../jobs/reconcile.js'
import { VerificationReports } from '../control/verification-report.js'
import { stringFlag, UsageError } from './args.js'
import { type CommandContext, EXIT, migrationArgument, writeResult } from './command.js'
import { parseKeysArgument } from './keys-argument.js'

/**
 * `cutover reconcile <migration> [--report ID] [--keys KEYS] [--include-quarantine]
 * [--include-dead-letters] [--authoritative old|new]`: repairs the latest (or given) report's inconsistencies.
 * `--keys` is `a,b,c` or JSON, `[[1,"a"],[2,"b"]]` for a composite key (`parseKeysArgument`).
 * Exits 2 when keys still differ afterwards.
 */
export async function reconcileCommand(context: CommandContext): Promise<number> {
  const migration = migrationArgument(context)
  const reportId = stringFlag(context.args, 'report')
  const keysText = stringFlag(context.args, 'keys')
  const keys = keysText === undefined ? undefined : parseKeysArgument(keysText, migration)
  const authoritative = stringFlag(context.args, 'authoritative')
  if (authoritative !== undefined && authoritative !== 'old' && authoritative !== 'new') throw new UsageError('--authoritative is old or new')
  const report = reportId ? await new VerificationReports(context.config.control).load(migration.name, reportId) : undefined
  if (reportId && !report) throw new UsageError(`no verification report ${reportId} for ${migration.name}`)
  context.progress.update({ label: `${migration.name} reconcile`, done: 0, note: 'repairing' }, { force: true })
  const result = await reconcile({
    migration,
    control: context.config.control,
    ...(report ? { report } : {}),
    ...(keys ? { keys } : {}),
    ...(authoritative ? { authoritative } : {}),
    includeQuarantine: context.args.flags['include-quarantine'] === true,
    includeDeadLetters: context.args.flags['include-dead-letters'] === true,
    actor: context.actor,
    logger: context.logger,
  })
  const failed = result.repairs.filter((r) => r.outcome !== 'repaired')
  writeResult(context, { command: 'reconcile', ...result, repairs: result.repairs.slice(0, 1_000) }, [
    `reconciliation of ${migration.name} from the ${result.authoritative} side: ${result.repaired}/${result.attempted} repaired`,
    ...failed.slice(0, 50).map((r) => `  ${r.outcome.padEnd(18)} ${r.key}${r.reason ? `  ${r.reason}` : ''}`),
  ].join('\n'))
  return result.stillInconsistent.length > 0 || failed.length > 0 ? EXIT.inconsistent : EXIT.ok
}
