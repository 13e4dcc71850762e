import { BackfillJobs } from '../jobs/backfill-jobs.js'
import { numberFlag } from './args.js'
import { type CommandContext, EXIT, migrationArgument, writeResult } from './command.js'

/**
 * `cutover worker <migration> [--expire S] [--forever]`: takes range jobs of a distributed backfill
 * until every range is done (or, with `--forever`, until interrupted). `--expire` (the expiry the
 * ranges were queued with) sets how often this worker fails expired jobs of dead workers: every
 * S/2 seconds, at most 30.
 */
export async function workerCommand(context: CommandContext): Promise<number> {
  const migration = migrationArgument(context)
  const expire = numberFlag(context.args, 'expire')
  const jobs = new BackfillJobs({
    control: context.config.control,
    logger: context.logger,
    ...(expire === undefined ? {} : { expireInSeconds: expire, maintenanceIntervalSeconds: Math.max(1, Math.min(30, Math.floor(expire / 2))) }),
    pollingIntervalSeconds: numberFlag(context.args, 'poll') ?? 2,
  })
  let ranges = 0
  let read = 0
  await jobs.work(migration, {
    signal: context.signal,
    backfill: { ...context.config.jobs?.[migration.name]?.backfill, actor: context.actor, logger: context.logger },
    onRange: (summary) => {
      ranges++
      read += summary.counts.read
      context.progress.update({ label: `${migration.name} worker`, done: ranges, note: `ranges done here; last ${summary.rangeId}`, fields: { rangeId: summary.rangeId, counts: summary.counts } }, { force: true })
    },
  })
  while (!context.signal.aborted && (context.args.flags.forever || !(await jobs.finished(migration.name)))) {
    await new Promise((resolve) => setTimeout(resolve, 1_000))
  }
  await jobs.stop({ graceful: !context.signal.aborted })
  writeResult(context, { command: 'worker', migration: migration.name, ranges, read }, `worker for ${migration.name}: ${ranges} ranges, ${read} records read here`)
  return context.signal.aborted ? EXIT.interrupted : EXIT.ok
}
