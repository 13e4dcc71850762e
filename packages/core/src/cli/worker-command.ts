import { BackfillJobs } from '../jobs/backfill-jobs.js'
import { numberFlag } from './args.js'
import { type CommandContext, EXIT, migrationArgument, writeResult } from './command.js'

/**
 * `cutover worker <migration> [--expire S] [--poll S] [--forever]`: takes ranges of a distributed
 * backfill until every range is done (or, with `--forever`, until interrupted). A range whose worker
 * is gone (killed, or its connection cut) is taken by an idle worker within `--poll` seconds
 * (default 1); `--expire` (default 900) is how long a live holder may go without a checkpoint before
 * its range is taken from it.
 */
export async function workerCommand(context: CommandContext): Promise<number> {
  const migration = migrationArgument(context)
  const expire = numberFlag(context.args, 'expire')
  const jobs = new BackfillJobs({
    control: context.config.control,
    logger: context.logger,
    ...(expire === undefined ? {} : { expireInSeconds: expire }),
    pollingIntervalSeconds: numberFlag(context.args, 'poll') ?? 1,
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
