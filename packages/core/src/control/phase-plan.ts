import type { Kysely } from 'kysely'
import type { Migration } from '../model/migration.js'
import type { Phase } from '../model/phase.js'
import { phaseTimeline, readGateInputs } from './gate-inputs.js'
import { readTenantGateInputs, tenantPhaseChanges } from './tenant-state.js'
import { DEFAULT_GATES, dwellMs, evaluateGates, GATE_WINDOW_PHASE, type GateReport, gatesOf, type GateSettings, type PhaseEntry, tenantTimeline } from './phase-gates.js'
import { oldStoreReadOnly, revertWindowOpen, SafetyNets, type SafetyNetState } from './safety-net.js'

/** The forward move from each phase, the one `cutover plan` shows the gates of. */
const NEXT_PHASE: Readonly<Partial<Record<Phase, Phase>>> = Object.freeze({
  off: 'shadow',
  shadow: 'compare',
  compare: 'ramp',
  ramp: 'cutover',
  cutover: 'complete',
})

/** Each phase's required dwell, as the gates of the move out of it count it. */
const REQUIRED_DWELL: Readonly<Partial<Record<Phase, (s: GateSettings) => number>>> = Object.freeze({
  shadow: (s) => s.shadow.minDwellMs,
  compare: (s) => s.compare.minDwellMs,
  ramp: (s) => s.ramp.minFullReadsMs,
  cutover: (s) => s.cutover.minDwellMs,
})

export interface PhaseDwell {
  readonly phase: Phase
  /** The latest stay (for `ramp`: with reads at 100 %), so far. */
  readonly dwellMs: number
  readonly requiredMs: number | undefined
}

/** Where a migration stands on its timeline: `cutover plan`, `cutover status`, the report. */
export interface PhasePlan {
  readonly migration: string
  /** Set for one tenant's plan: its phase, dwell and gates on its own timeline. */
  readonly tenant?: string
  readonly phase: Phase
  readonly dwell: readonly PhaseDwell[]
  /** The gates of the next forward move, if there is one. */
  readonly next: GateReport | undefined
  readonly safetyNet:
    | (SafetyNetState & { readonly revertWindowOpen: boolean; readonly readOnly: boolean; readonly readOnlyDaysLeft: number })
    | undefined
}

export async function phasePlan(db: Kysely<any>, migration: Migration<any, any>, phase: Phase, now = new Date(), tenant?: string): Promise<PhasePlan> {
  // An ungated migration's plan still shows what the default gates would say.
  const settings = gatesOf(migration) ?? DEFAULT_GATES
  const to = phase === 'rollback' ? retryTarget(await timelineOf(db, migration.name, tenant)) : NEXT_PHASE[phase]
  const windowPhase = (to && GATE_WINDOW_PHASE[to]) ?? phase
  const inputs = tenant === undefined ? await readGateInputs(db, migration.name, windowPhase, phase, now) : await readTenantGateInputs(db, migration.name, tenant, windowPhase, phase, now)
  const net = await new SafetyNets(db).state(migration.name)
  return Object.freeze({
    migration: migration.name,
    ...(tenant === undefined ? {} : { tenant }),
    phase,
    dwell: (['shadow', 'compare', 'ramp', 'cutover'] as const).map((p) => ({
      phase: p,
      dwellMs: dwellMs(inputs.timeline, p, now, p === 'ramp' ? 100 : undefined),
      requiredMs: REQUIRED_DWELL[p]?.(settings),
    })),
    next: to ? evaluateGates(phase, to, inputs, settings) : undefined,
    safetyNet: net && {
      ...net,
      revertWindowOpen: revertWindowOpen(net, now),
      readOnly: oldStoreReadOnly(net, now),
      readOnlyDaysLeft: net.releasedAt ? 0 : Math.max(0, (net.readOnlyUntil.getTime() - now.getTime()) / 86_400_000),
    },
  })
}

/** The migration's audited phases, or one tenant's (its overrides over the migration's). */
async function timelineOf(db: Kysely<any>, migration: string, tenant: string | undefined): Promise<PhaseEntry[]> {
  const timeline = await phaseTimeline(db, migration)
  return tenant === undefined ? timeline : tenantTimeline(timeline, await tenantPhaseChanges(db, migration, tenant))
}

/** After a rollback, the phase the migration was in before it: where a retry goes. */
function retryTarget(timeline: readonly PhaseEntry[]): Phase {
  const rollback = timeline.findLastIndex((entry) => entry.phase === 'rollback')
  const before = timeline[rollback - 1]?.phase
  return before && before !== 'rollback' && before !== 'off' ? (before === 'cutover' ? 'ramp' : before) : 'shadow'
}
