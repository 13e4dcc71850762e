import { writeFile } from 'node:fs/promises'
import { resolve } from 'node:path'
import { readReportData } from '../control/report-data.js'
import { currentPhase } from '../jobs/reconcile.js'
import { stringFlag, UsageError } from './args.js'
import { type CommandContext, EXIT, migrationArgument, writeResult } from './command.js'
import { renderHtmlReport } from './html-report.js'

/**
 * `cutover report <migration> --html FILE`: one self-contained page from the control tables —
 * phases over time, consistency, read share, mirror lag, backfill, quarantine and dead letters,
 * verifications, the audit chain and the next move's gates. `--json` prints the data instead.
 */
export async function reportCommand(context: CommandContext): Promise<number> {
  const migration = migrationArgument(context)
  const file = stringFlag(context.args, 'html')
  if (!file && !context.json) throw new UsageError('cutover report needs --html FILE (or --json for the data)')
  const total = await context.config.jobs?.[migration.name]?.estimateTotal?.()
  const data = await readReportData(context.config.control, migration, await currentPhase(migration.name, context.config.control), total === undefined ? {} : { total })
  if (!file) {
    writeResult(context, { command: 'report', ...data }, '')
    return EXIT.ok
  }
  const path = resolve(file)
  await writeFile(path, renderHtmlReport(data), 'utf8')
  writeResult(context, { command: 'report', migration: migration.name, html: path }, `${migration.name}: report written to ${path}`)
  return EXIT.ok
}
