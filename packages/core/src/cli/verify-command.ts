import { numberFlag } from './args.js'
import { type CommandContext, EXIT, migrationArgument, writeResult } from './command.js'
import { verifyExhaustive, verifySample } from '../jobs/verification.js'
import { formatReport } from '../control/verification-report.js'

/**
 * `cutover verify <migration>`: exhaustive (segment checksums, then rows);
 * `--sample P` compares the reproducible P % sample field by field instead.
 * Exits 2 when the stores differ.
 */
export async function verifyCommand(context: CommandContext): Promise<number> {
  const migration = migrationArgument(context)
  const sample = numberFlag(context.args, 'sample')
  const recheckMs = numberFlag(context.args, 'recheck-ms')
  const common = {
    migration,
    control: context.config.control,
    actor: context.actor,
    logger: context.logger,
    ...(recheckMs === undefined ? {} : { recheck: { delayMs: recheckMs } }),
    onProgress: (stage: { stage: string; done: number; total: number | undefined }) =>
      context.progress.update({ label: `${migration.name} verify`, done: stage.done, total: stage.total, note: stage.stage, fields: { stage: stage.stage } }),
  }
  const report =
    sample !== undefined
      ? await verifySample({ ...common, buckets: Math.round(sample * 100) })
      : await verifyExhaustive({ ...common, ...(await context.config.jobs?.[migration.name]?.segments?.()) })
  writeResult(context, { command: 'verify', ...report }, formatReport(report))
  return report.consistent ? EXIT.ok : EXIT.inconsistent
}
