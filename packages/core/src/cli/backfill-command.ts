import { backfill, type BackfillProgress } from '../jobs/backfill.js'
import { BackfillJobs } from '../jobs/backfill-jobs.js'
import type { Migration } from '../model/migration.js'
import type { ThrottleSettings } from '../jobs/throttle.js'
import { numberFlag, stringFlag } from './args.js'
import { type CommandContext, EXIT, migrationArgument, writeResult } from './command.js'
import { formatCount, formatDuration } from './progress-renderer.js'

/**
 * `cutover backfill <migration> [--restart] [--rate N] [--nice R] [--batch N] [--config-version V]`
 * `cutover backfill <migration> --distributed [--range-size N] [--replan]` plans ranges for
 * `cutover worker` (which takes over a dead worker's range at once, a stuck one's after `--expire`).
 */
export async function backfillCommand(context: CommandContext): Promise<number> {
  const migration = migrationArgument(context)
  if (context.args.flags.distributed) return planDistributed(context, migration)
  const settings = context.config.jobs?.[migration.name]?.backfill ?? {}
  const throttle: ThrottleSettings = {
    ...settings.throttle,
    ...(numberFlag(context.args, 'rate') === undefined ? {} : { maxRowsPerSecond: numberFlag(context.args, 'rate') as number }),
    ...(numberFlag(context.args, 'nice') === undefined ? {} : { niceRatio: numberFlag(context.args, 'nice') as number }),
  }
  const initial = numberFlag(context.args, 'batch')
  const configVersion = stringFlag(context.args, 'config-version') ?? settings.configVersion
  const total = await estimateTotal(context, migration)
  const summary = await backfill({
    ...settings,
    migration,
    control: context.config.control,
    throttle,
    ...(initial === undefined ? {} : { batch: { ...settings.batch, initial } }),
    ...(configVersion === undefined ? {} : { configVersion }),
    restart: context.args.flags.restart === true,
    actor: context.actor,
    logger: context.logger,
    signal: context.signal,
    onProgress: (p) => context.progress.update(progressOf(p, total)),
  })
  const c = summary.counts
  const reasons = Object.entries(summary.quarantinedByReason).map(([reason, n]) => `    ${formatCount(n).padStart(8)}  ${reason}`)
  const throttled = Object.entries(summary.throttledMs).filter(([, ms]) => ms > 0).map(([source, ms]) => `${source} ${formatDuration(ms / 1_000)}`)
  writeResult(context, { command: 'backfill', ...summary }, [
    `backfill of ${migration.name}: ${summary.status}${summary.resumedAfter ? ` (resumed after key ${summary.resumedAfter})` : ''}`,
    `  read ${formatCount(c.read)}, written ${formatCount(c.written)}, already there ${formatCount(c.skipped)}, quarantined ${formatCount(c.quarantined)}, differing after write ${formatCount(c.mismatched)}`,
    `  ${formatCount(Math.round(summary.rowsPerSecond))} rows/s over ${formatDuration(summary.elapsedMs / 1_000)}${throttled.length > 0 ? `; throttled: ${throttled.join(', ')}` : ''}`,
    ...(reasons.length > 0 ? ['  quarantined by reason:', ...reasons] : []),
    ...summary.mismatches.slice(0, 20).map((m) => `  ${m.kind.padEnd(14)} ${m.key} ${m.fields.join(', ')}`),
  ].join('\n'))
  return summary.status === 'aborted' ? EXIT.interrupted : EXIT.ok
}

async function planDistributed(context: CommandContext, migration: Migration<any, any>): Promise<number> {
  const jobs = new BackfillJobs({ control: context.config.control, logger: context.logger })
  try {
    const ranges = await jobs.plan(migration, { rangeSize: numberFlag(context.args, 'range-size') ?? 100_000, replan: context.args.flags.replan === true })
    const queued = await jobs.enqueue(migration.name)
    writeResult(context, { command: 'backfill', distributed: true, ranges: ranges.length, queued }, `planned ${ranges.length} ranges of ${migration.name}; ${queued} to do. Start workers with: cutover worker ${migration.name}`)
    return EXIT.ok
  } finally {
    await jobs.stop()
  }
}

/**
 * The progress bar's total: the config's `estimateTotal`, else the old store's own cheap estimate
 * (`Store.estimateCount`: `pg_class.reltuples`, `estimatedDocumentCount`), else none.
 */
export async function estimateTotal(context: CommandContext, migration: Migration<any, any>): Promise<number | undefined> {
  const estimate = context.config.jobs?.[migration.name]?.estimateTotal
  if (estimate) return estimate()
  return (await migration.old.estimateCount?.().catch(() => undefined)) ?? undefined
}

export function progressOf(p: BackfillProgress, total: number | undefined) {
  return {
    label: p.rangeId === 'all' ? p.migration : `${p.migration}/${p.rangeId}`,
    done: p.counts.read,
    total,
    rate: p.rowsPerSecond,
    note: p.throttled.length > 0 ? `throttled: ${p.throttled.map((t) => `${t.source} (${t.detail})`).join(', ')}` : p.counts.quarantined > 0 ? `${p.counts.quarantined} quarantined` : undefined,
    fields: { migration: p.migration, rangeId: p.rangeId, counts: p.counts, batchSize: p.batchSize, lastKey: p.lastKey, throttled: p.throttled },
  }
}
