import { numberFlag } from './args.js'
import { type CommandContext, EXIT, migrationArgument, writeResult } from './command.js'
import { type VerificationStage, verifyExhaustive, verifySample } from '../jobs/verification.js'
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
    onProgress: progressOfVerification(context, migration.name),
  }
  const report =
    sample !== undefined
      ? await verifySample({ ...common, buckets: Math.round(sample * 100) })
      : await verifyExhaustive({ ...common, ...(await context.config.jobs?.[migration.name]?.segments?.()) })
  writeResult(context, { command: 'verify', ...report }, formatReport(report))
  return report.consistent ? EXIT.ok : EXIT.inconsistent
}

const STAGE_UNITS: Readonly<Record<VerificationStage['stage'], string>> = {
  checksums: 'segments checksummed (both sides)',
  bisect: 'sub-segments checksummed (both sides)',
  rows: 'keys compared',
  recheck: 're-checks',
  sample: 'keys sampled',
}

/** Each stage as done of total with its unit, a rate and so an ETA within the stage. */
function progressOfVerification(context: CommandContext, migration: string): (stage: VerificationStage) => void {
  let current: { stage: string; startedAt: number } | undefined
  return (stage) => {
    const now = performance.now()
    if (current?.stage !== stage.stage) current = { stage: stage.stage, startedAt: now }
    const seconds = (now - current.startedAt) / 1_000
    const rate = stage.done > 0 && seconds > 0 ? stage.done / seconds : undefined
    context.progress.update(
      { label: `${migration} verify`, done: stage.done, total: stage.total, rate, note: STAGE_UNITS[stage.stage], fields: { stage: stage.stage } },
      { force: stage.total !== undefined && stage.done === stage.total },
    )
  }
}
