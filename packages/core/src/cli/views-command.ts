import { UsageError } from './args.js'
import { type CommandContext, EXIT, migrationArgument, writeResult } from './command.js'
import { migrationViews, type ViewsConfig } from '../compat/views-config.js'

const ACTIONS = ['sql', 'apply', 'drop'] as const
type ViewsAction = (typeof ACTIONS)[number]

/**
 * `cutover views sql|apply|drop <migration>`: print, create (or replace) or remove the migration's
 * writable compatibility views (declared under `views` in the config module). `apply` and `drop`
 * are idempotent and run in one transaction; `sql` prints the script without touching a database
 * (`--json`: `{ statements: [...] }`).
 */
export async function viewsCommand(context: CommandContext): Promise<number> {
  const action = context.args.positionals[1]
  if (!ACTIONS.includes(action as ViewsAction)) throw new UsageError(`cutover views ${ACTIONS.join('|')} <migration>`)
  const migration = migrationArgument(context, 2)
  const settings = (context.config as ViewsConfig).views?.[migration.name]
  const views = migrationViews(migration, settings)
  if (action === 'sql') {
    const statements = views.createStatements()
    if (context.json) writeResult(context, { command: 'views sql', migration: migration.name, statements }, '')
    else context.stdout.write(views.sql('apply'))
    return EXIT.ok
  }
  const database = settings?.database ?? context.config.control
  const result = action === 'apply' ? await views.apply(database) : await views.drop(database)
  writeResult(
    context,
    { command: `views ${action}`, migration: migration.name, ...result },
    `${action === 'apply' ? 'applied' : 'dropped'} ${result.views.join(', ')} (${result.statements} statements, one transaction)`,
  )
  return EXIT.ok
}
