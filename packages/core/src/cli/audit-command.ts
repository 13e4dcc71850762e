import { AuditLog, formatAuditHead, parseAuditHead } from '../control/audit-log.js'
import { stringFlag, UsageError } from './args.js'
import { type CommandContext, EXIT, writeResult } from './command.js'

/**
 * `cutover audit verify [--head SEQ:HASH]`: walks the chain of `cutover.audit` (hashes, sequence
 * numbers, HMACs with the key from `CUTOVER_AUDIT_KEY`), and with `--head` checks that the head kept
 * from an earlier run is still in it. Prints the head to keep for the next run; exits 2 if tampered.
 */
export async function auditCommand(context: CommandContext): Promise<number> {
  if (context.args.positionals[1] !== 'verify') throw new UsageError('usage: cutover audit verify [--head SEQ:HASH]')
  const headText = stringFlag(context.args, 'head')
  const head = headText === undefined ? undefined : parseAuditHead(headText)
  const result = await new AuditLog(context.config.control, { logger: context.logger }).verify(head ? { head } : {})
  const text = result.ok
    ? `audit chain intact: ${result.entries} entries, head ${formatAuditHead(result.head)}${result.authenticated ? '' : ' (NOT authenticated: CUTOVER_AUDIT_KEY is not set, so a database writer could rewrite the chain)'}`
    : `AUDIT CHAIN BROKEN at entry ${result.seq} (id ${result.entryId}): ${result.problem}; last good head ${formatAuditHead(result.head)}`
  writeResult(context, { command: 'audit verify', ...result, headText: formatAuditHead(result.head) }, text)
  return result.ok ? EXIT.ok : EXIT.inconsistent
}
