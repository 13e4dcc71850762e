import { CheckpointTable } from '../control/checkpoint.js'
import { DeadLetterTable } from '../control/dead-letters.js'
import { JobControl } from '../control/job-control.js'
import { QuarantineTable } from '../control/quarantine.js'
import { currentPhase } from '../jobs/reconcile.js'
import { VerificationReports } from '../control/verification-report.js'
import { type CommandContext, EXIT, writeResult } from './command.js'
import { formatCount } from './progress-renderer.js'

/** `cutover status [<migration>]`: phase, backfill progress, quarantine, dead letters, last verification. */
export async function statusCommand(context: CommandContext): Promise<number> {
  const { control } = context.config
  const name = context.args.positionals[1]
  const migrations = context.config.migrations.filter((m) => name === undefined || m.name === name)
  const statuses = []
  for (const migration of migrations) {
    const checkpoints = await new CheckpointTable(control).list(migration.name)
    const report = await new VerificationReports(control).load(migration.name)
    statuses.push({
      migration: migration.name,
      phase: await currentPhase(migration.name, control),
      jobControl: await new JobControl(control).state(migration.name),
      backfill: {
        ranges: checkpoints.length,
        done: checkpoints.filter((c) => c.status === 'done').length,
        read: checkpoints.reduce((sum, c) => sum + c.counts.read, 0),
        written: checkpoints.reduce((sum, c) => sum + c.counts.written, 0),
        quarantined: checkpoints.reduce((sum, c) => sum + c.counts.quarantined, 0),
        lastUpdate: checkpoints.map((c) => c.updatedAt).sort((a, b) => b.getTime() - a.getTime())[0] ?? null,
      },
      quarantineByReason: await new QuarantineTable(control).countByReason(migration.name),
      deadLettersOpen: await new DeadLetterTable(control).countOpen(migration.name),
      lastVerification: report ? { id: report.id, kind: report.kind, finishedAt: report.finishedAt, consistent: report.consistent, counts: report.counts } : null,
    })
  }
  const text = statuses
    .map((s) =>
      [
        `${s.migration}: phase ${s.phase}${s.jobControl.paused ? `, jobs PAUSED (${s.jobControl.reason ?? 'no reason given'})` : ''}`,
        `  backfill: ${s.backfill.ranges === 0 ? 'not started' : `${s.backfill.done}/${s.backfill.ranges} ranges done, ${formatCount(s.backfill.read)} read, ${formatCount(s.backfill.written)} written, ${formatCount(s.backfill.quarantined)} quarantined`}`,
        `  quarantine: ${Object.entries(s.quarantineByReason).map(([r, n]) => `${n} × ${r}`).join('; ') || 'empty'}; dead letters open: ${s.deadLettersOpen}`,
        `  last verification: ${s.lastVerification ? `#${s.lastVerification.id} ${s.lastVerification.kind} ${s.lastVerification.consistent ? 'consistent' : 'INCONSISTENT'} at ${s.lastVerification.finishedAt.toISOString()}` : 'none'}`,
      ].join('\n'),
    )
    .join('\n')
  writeResult(context, { command: 'status', migrations: statuses }, text)
  return EXIT.ok
}
