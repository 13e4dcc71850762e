import type { Kysely } from 'kysely'
import { readGateInputs } from '../control/gate-inputs.js'
import { DEFAULT_GATES, evaluateGates, GATE_WINDOW_PHASE, type GateReport, gatesOf } from '../control/phase-gates.js'
import { revertWindowOpen, SafetyNets } from '../control/safety-net.js'
import { readTenantGateInputs } from '../control/tenant-state.js'
import { ConfigError, PhaseGateError, RevertWindowClosedError } from '../model/errors.js'
import type { Migration } from '../model/migration.js'
import type { Phase } from '../model/phase.js'
import type { Logger } from '../observe/logger.js'

/** What a caller of `setPhase` says about the gates. */
export interface GateOverride {
  /** Move although gates are unmet; needs a `reason`. The audit records both and the gate values. */
  readonly force?: boolean
  readonly reason?: string
}

/**
 * Checks a move before it is written: the revert window for `complete → cutover`, then the gates
 * of the phase it enters. Returns the gate report (for the audit; undefined for an ungated
 * migration), or throws `PhaseGateError` when gates are unmet and the move is not forced.
 */
export async function checkMove(db: Kysely<any>, migration: Migration<any, any>, from: Phase, to: Phase, override: GateOverride): Promise<GateReport | undefined> {
  if (from === 'complete' && to === 'cutover') {
    const net = await new SafetyNets(db).state(migration.name)
    if (!revertWindowOpen(net)) throw new RevertWindowClosedError(migration.name, net?.revertUntil)
  }
  const settings = gatesOf(migration)
  if (!settings) return undefined
  const report = evaluateGates(from, to, await readGateInputs(db, migration.name, GATE_WINDOW_PHASE[to] ?? from, from), settings)
  return judged(report, migration.name, override)
}

/**
 * `checkMove` for one tenant's own move: the same gates, on the tenant's timeline (its dwell in a
 * phase is its own) and the migration's jobs and signals (`readTenantGateInputs`). Moving a tenant
 * into `ramp` thus needs the migration's verification and consistency as moving the migration does,
 * and the tenant's own time in `compare`.
 */
export async function checkTenantMove(db: Kysely<any>, migration: Migration<any, any>, tenant: string, from: Phase, to: Phase, override: GateOverride): Promise<GateReport | undefined> {
  const settings = gatesOf(migration)
  if (!settings) return undefined
  const report = evaluateGates(from, to, await readTenantGateInputs(db, migration.name, tenant, GATE_WINDOW_PHASE[to] ?? from, from), settings)
  return judged(report, `${migration.name} (tenant ${tenant})`, override)
}

/** The report when met; when not, `PhaseGateError`, or the report if forced with a reason. */
function judged(report: GateReport, subject: string, override: GateOverride): GateReport {
  const { from, to } = report
  if (report.met) return report
  if (!override.force) throw new PhaseGateError(subject, from, to, report.gates.filter((gate) => !gate.met))
  if (!override.reason?.trim()) {
    throw new ConfigError([{ source: 'reason', value: override.reason, message: `forcing ${subject} from ${from} to ${to} past unmet gates needs a reason` }])
  }
  return report
}

/**
 * What a move sets going once it is written: entering `complete` starts the safety net (the revert
 * window, then the old store read-only); going back to `cutover` inside the window clears it.
 */
export async function afterMove(db: Kysely<any>, migration: Migration<any, any>, from: Phase, to: Phase, logger: Logger): Promise<void> {
  const nets = new SafetyNets(db)
  if (to === 'complete' && from !== 'complete') {
    const net = await nets.begin(migration.name, (gatesOf(migration) ?? DEFAULT_GATES).complete)
    await protectOldStore(migration, net.revertUntil, logger)
  } else if (from === 'complete' && to === 'cutover') {
    await nets.clear(migration.name)
    await releaseOldStore(migration, logger)
  }
}

/** Makes the old store refuse writes from `from` on, where the store can; says so where it cannot. */
export async function protectOldStore(migration: Migration<any, any>, from: Date, logger: Logger): Promise<void> {
  if (!migration.old.setReadOnly) {
    logger.warn('the old store cannot refuse writes itself; only writes through the plugin are refused', { migration: migration.name, store: migration.old.name })
    return
  }
  await migration.old.setReadOnly(migration.name, from)
}

export async function releaseOldStore(migration: Migration<any, any>, logger: Logger): Promise<void> {
  await migration.old.setReadOnly?.(migration.name, undefined)
  logger.info('old store writable again', { migration: migration.name, store: migration.old.name })
}
