import { AuditLog } from '../control/audit-log.js'
import { UsageError } from './args.js'
import { type CommandContext, EXIT, writeResult } from './command.js'

/** `cutover audit verify`: walks the hash chain of `cutover.audit`; exits 2 if an entry was changed or deleted. */
export async function auditCommand(context: CommandContext): Promise<number> {
  if (context.args.positionals[1] !== 'verify') throw new UsageError('usage: cutover audit verify')
  const result = await new AuditLog(context.config.control).verify()
  writeResult(
    context,
    { command: 'audit verify', ...result },
    result.ok ? `audit chain intact: ${result.entries} entries` : `AUDIT CHAIN BROKEN at entry ${result.entryId}: ${result.problem}`,
  )
  return result.ok ? EXIT.ok : EXIT.inconsistent
}
