import type { Phase } from '../model/phase.js'
import type { SignalCounts, SignalPoint, InstanceLevels } from './signal-history.js'

const HOUR = 3_600_000
const DAY = 24 * HOUR

/**
 * What each forward move requires. The defaults are the design source's: shadow writes for a week
 * (weekly patterns), dual reads for five days, reads fully on the new store for a day before the
 * write cutover, the cutover watched for 48 hours, and the old store kept read-only for 30 days
 * ("decommissioned after 7 days; on day 14 regulators asked for archived records"). Tests and
 * small migrations set dwell times to zero; every value is per migration.
 */
export interface GateSettings {
  readonly shadow: {
    /** Time in `shadow` before `compare`. */
    readonly minDwellMs: number
    /** Open dead letters allowed. */
    readonly maxOpenDeadLetters: number
    /** Mirrored writes needed before the success rates count. */
    readonly minMirroredWrites: number
    /** How far (percentage points) the new side's write success rate may trail the old side's. */
    readonly maxSuccessGapPoints: number
  }
  readonly compare: {
    readonly minDwellMs: number
    /** The exhaustive verification must be younger than this. */
    readonly maxVerificationAgeMs: number
    /** Share of compared reads that were equal, 0–1. */
    readonly minConsistency: number
    readonly minComparedReads: number
    /** A drop (percentage points) of the latest window's consistency below the earlier ones'. */
    readonly maxDriftPoints: number
    /** The window the drift compares against the time before it. */
    readonly driftWindowMs: number
  }
  readonly ramp: {
    /** Time with reads at 100 % on the new store before the write cutover. */
    readonly minFullReadsMs: number
    readonly maxMirrorLagMs: number
    readonly maxVerificationAgeMs: number
  }
  readonly cutover: {
    readonly minDwellMs: number
  }
  readonly complete: {
    /** How long the old store stays read-only after `complete`. */
    readonly readOnlyMs: number
    /** How long after `complete` the reverse mirror keeps running, so that going back loses nothing. */
    readonly revertWindowMs: number
  }
}

export const DEFAULT_GATES: GateSettings = Object.freeze({
  shadow: { minDwellMs: 7 * DAY, maxOpenDeadLetters: 0, minMirroredWrites: 1_000, maxSuccessGapPoints: 0.05 },
  compare: { minDwellMs: 5 * DAY, maxVerificationAgeMs: DAY, minConsistency: 0.995, minComparedReads: 1_000, maxDriftPoints: 1, driftWindowMs: DAY },
  ramp: { minFullReadsMs: DAY, maxMirrorLagMs: 5_000, maxVerificationAgeMs: DAY },
  cutover: { minDwellMs: 48 * HOUR },
  complete: { readOnlyMs: 30 * DAY, revertWindowMs: 4 * HOUR },
})

/** Gate settings with only some values given: the rest are the defaults. */
export type GateOverrides = { readonly [P in keyof GateSettings]?: Partial<GateSettings[P]> }

export function gateSettings(overrides: GateOverrides | undefined): GateSettings {
  const merged = Object.fromEntries(
    (Object.keys(DEFAULT_GATES) as (keyof GateSettings)[]).map((phase) => [phase, Object.freeze({ ...DEFAULT_GATES[phase], ...overrides?.[phase] })]),
  )
  return Object.freeze(merged) as unknown as GateSettings
}

/** The gate settings of a migration: its own over the defaults; undefined when it is ungated (`gates: false`). */
export function gatesOf(migration: { readonly gates?: GateOverrides | false }): GateSettings | undefined {
  return migration.gates === false ? undefined : gateSettings(migration.gates)
}

/** One entry of the phase timeline: the migration entered `phase` (with `readPercent`) at `at`. */
export interface PhaseEntry {
  readonly at: Date
  readonly phase: Phase
  readonly readPercent: number
  readonly actor: string
}

/** Everything the gates look at, read once from the control tables. */
export interface GateInputs {
  readonly now: Date
  /** Oldest first. */
  readonly timeline: readonly PhaseEntry[]
  readonly backfill: { readonly ranges: number; readonly done: number; readonly finishedAt: Date | undefined }
  readonly openDeadLetters: number
  /** The latest exhaustive verification. */
  readonly verification: { readonly id: string; readonly finishedAt: Date; readonly consistent: boolean } | undefined
  /** Signals since the migration last entered the move's window phase (`GATE_WINDOW_PHASE`). */
  readonly sinceEntry: SignalCounts
  /** Per-hour points over the same time, for the drift signal. */
  readonly hourly: readonly SignalPoint[]
  /** Instances that reported lately. */
  readonly instances: readonly InstanceLevels[]
}

/** One requirement of a move, with what was measured. */
export interface GateResult {
  readonly gate: string
  readonly met: boolean
  readonly measured: string
  readonly required: string
}

/** Where a move stands: each gate, and whether all are met. */
export interface GateReport {
  readonly from: Phase
  readonly to: Phase
  readonly met: boolean
  readonly gates: readonly GateResult[]
}

type Gate = (inputs: GateInputs, settings: GateSettings) => GateResult

/** The gates of each forward move, by the phase it enters. Moves back and to `rollback` have none. */
export const PHASE_GATES: Readonly<Partial<Record<Phase, readonly Gate[]>>> = Object.freeze({
  compare: [dwellIn('shadow', (s) => s.shadow.minDwellMs), backfillDone, deadLettersBelow, writeSuccessClose],
  ramp: [dwellIn('compare', (s) => s.compare.minDwellMs), verifiedAfterBackfill((s) => s.compare.maxVerificationAgeMs), consistencyAtLeast, consistencyNotDrifting],
  cutover: [fullReadsFor, guardsHealthy, mirrorLagBelow, verifiedAfterBackfill((s) => s.ramp.maxVerificationAgeMs)],
  complete: [dwellIn('cutover', (s) => s.cutover.minDwellMs), reverseMirrorDrained, verifiedInCutover],
})

/**
 * The phase whose latest stay the gates of a move into `to` measure signals over: the one before
 * it on the forward path. A retry from `rollback` is judged on the same stay as the first try.
 */
export const GATE_WINDOW_PHASE: Readonly<Partial<Record<Phase, Phase>>> = Object.freeze({
  compare: 'shadow',
  ramp: 'compare',
  cutover: 'ramp',
  complete: 'cutover',
})

/** Evaluates the gates of `from → to`; a move without gates is met. */
export function evaluateGates(from: Phase, to: Phase, inputs: GateInputs, settings: GateSettings): GateReport {
  const gates = from === to ? [] : (PHASE_GATES[to] ?? []).map((gate) => gate(inputs, settings))
  return Object.freeze({ from, to, met: gates.every((gate) => gate.met), gates })
}

/** When the migration last entered `phase` (and, if given, at least `readPercent`), if it did. */
export function lastEntry(timeline: readonly PhaseEntry[], phase: Phase, minReadPercent?: number): PhaseEntry | undefined {
  const fits = (entry: PhaseEntry | undefined) => entry?.phase === phase && (minReadPercent === undefined || entry.readPercent >= minReadPercent)
  for (let i = timeline.length - 1; i >= 0; i--) {
    if (fits(timeline[i]) && !fits(timeline[i - 1])) return timeline[i]
  }
  return undefined
}

/** How long the latest stay in `phase` lasted, or lasts so far. */
export function dwellMs(timeline: readonly PhaseEntry[], phase: Phase, now: Date, minReadPercent?: number): number {
  const entry = lastEntry(timeline, phase, minReadPercent)
  if (!entry) return 0
  const after = timeline.find((e) => e.at > entry.at && (e.phase !== phase || (minReadPercent !== undefined && e.readPercent < minReadPercent)))
  return (after?.at ?? now).getTime() - entry.at.getTime()
}

function dwellIn(phase: Phase, required: (s: GateSettings) => number): Gate {
  return (inputs, settings) => {
    const dwell = dwellMs(inputs.timeline, phase, inputs.now)
    return result(`time in ${phase}`, dwell >= required(settings), duration(dwell), `≥ ${duration(required(settings))}`)
  }
}

function backfillDone(inputs: GateInputs): GateResult {
  const { ranges, done } = inputs.backfill
  return result('backfill done', ranges > 0 && done === ranges, ranges === 0 ? 'not started' : `${done}/${ranges} ranges done`, 'every range done')
}

function deadLettersBelow(inputs: GateInputs, settings: GateSettings): GateResult {
  const max = settings.shadow.maxOpenDeadLetters
  return result('open dead letters', inputs.openDeadLetters <= max, String(inputs.openDeadLetters), `≤ ${max}`)
}

/**
 * The new side's write success rate, from the mirror's outcomes since the migration entered
 * `shadow`, against the old side's. The old side's writes are the application's own and reach the
 * mirror only when they committed, so its rate is 100 % by construction; the gate therefore says
 * how far the new side trails a perfect record.
 */
function writeSuccessClose(inputs: GateInputs, settings: GateSettings): GateResult {
  const { mirrorApplied, mirrorFailed } = inputs.sinceEntry
  const writes = mirrorApplied + mirrorFailed
  const { minMirroredWrites, maxSuccessGapPoints } = settings.shadow
  if (writes < minMirroredWrites) return result('new-side write success', false, `${writes} mirrored writes`, `≥ ${minMirroredWrites} mirrored writes`)
  const rate = (100 * mirrorApplied) / writes
  return result('new-side write success', 100 - rate <= maxSuccessGapPoints, `${percent(rate)} (old side 100 %)`, `within ${maxSuccessGapPoints} points of the old side`)
}

function verifiedAfterBackfill(maxAge: (s: GateSettings) => number): Gate {
  return (inputs, settings) => {
    const v = inputs.verification
    const age = v ? inputs.now.getTime() - v.finishedAt.getTime() : Infinity
    const afterBackfill = v !== undefined && (inputs.backfill.finishedAt === undefined || v.finishedAt >= inputs.backfill.finishedAt)
    const measured = v ? `#${v.id} ${v.consistent ? 'consistent' : 'INCONSISTENT'}, ${duration(age)} old${afterBackfill ? '' : ', before the last backfill'}` : 'none'
    return result('exhaustive verification', v !== undefined && v.consistent && afterBackfill && age <= maxAge(settings), measured, `consistent, after the last backfill, ≤ ${duration(maxAge(settings))} old`)
  }
}

function consistencyAtLeast(inputs: GateInputs, settings: GateSettings): GateResult {
  const { compareEqual, compareMismatch } = inputs.sinceEntry
  const reads = compareEqual + compareMismatch
  const { minComparedReads, minConsistency } = settings.compare
  if (reads < minComparedReads) return result('compared-read consistency', false, `${reads} compared reads`, `≥ ${minComparedReads} compared reads`)
  const rate = compareEqual / reads
  return result('compared-read consistency', rate >= minConsistency, percent(100 * rate), `≥ ${percent(100 * minConsistency)}`)
}

/**
 * The drift signal: consistency over the latest window against the time before it. A migration at
 * 99.5 % for three days that falls to 97 % has changed, even while above the threshold overall.
 */
export function consistencyDrift(points: readonly SignalPoint[], now: Date, windowMs: number): { earlier: number; latest: number; dropPoints: number } | undefined {
  const cut = now.getTime() - windowMs
  const rate = (selected: readonly SignalPoint[]) => {
    const equal = selected.reduce((n, p) => n + p.compareEqual, 0)
    const all = equal + selected.reduce((n, p) => n + p.compareMismatch, 0)
    return all === 0 ? undefined : (100 * equal) / all
  }
  const earlier = rate(points.filter((p) => p.at.getTime() < cut))
  const latest = rate(points.filter((p) => p.at.getTime() >= cut))
  if (earlier === undefined || latest === undefined) return undefined
  return { earlier, latest, dropPoints: earlier - latest }
}

function consistencyNotDrifting(inputs: GateInputs, settings: GateSettings): GateResult {
  const drift = consistencyDrift(inputs.hourly, inputs.now, settings.compare.driftWindowMs)
  const max = settings.compare.maxDriftPoints
  if (!drift) return result('consistency drift', true, 'not enough history to compare', `drop ≤ ${max} points`)
  return result('consistency drift', drift.dropPoints <= max, `${percent(drift.earlier)} before, ${percent(drift.latest)} in the last ${duration(settings.compare.driftWindowMs)}`, `drop ≤ ${max} points`)
}

function fullReadsFor(inputs: GateInputs, settings: GateSettings): GateResult {
  const dwell = dwellMs(inputs.timeline, 'ramp', inputs.now, 100)
  const required = settings.ramp.minFullReadsMs
  return result('reads at 100 % on the new store', dwell >= required && lastEntry(inputs.timeline, 'ramp', 100) !== undefined, duration(dwell), `≥ ${duration(required)}`)
}

/**
 * No guard rolled the migration back since reads went to 100 %, and no instance reports a local
 * rollback now (a guard trips in its own process first, then tells the fleet).
 */
function guardsHealthy(inputs: GateInputs): GateResult {
  const since = lastEntry(inputs.timeline, 'ramp', 100)?.at
  const trips = since ? inputs.timeline.filter((e) => e.at > since && e.phase === 'rollback').length : 0
  const tripped = inputs.instances.filter((i) => i.phase === 'rollback').map((i) => i.instance)
  const measured = tripped.length > 0 ? `rolled back locally on ${tripped.join(', ')}` : trips === 0 ? 'no rollback' : `${trips} rollback(s)`
  return result('guards healthy', trips === 0 && tripped.length === 0, measured, 'no rollback since reads reached 100 %')
}

function mirrorLagBelow(inputs: GateInputs, settings: GateSettings): GateResult {
  const max = settings.ramp.maxMirrorLagMs
  if (inputs.instances.length === 0) return result('mirror lag', false, 'no instance reported lately', `≤ ${duration(max)}`)
  const lag = Math.max(...inputs.instances.map((i) => i.mirrorLagMs))
  return result('mirror lag', lag <= max, duration(lag), `≤ ${duration(max)}`)
}

function reverseMirrorDrained(inputs: GateInputs): GateResult {
  if (inputs.instances.length === 0) return result('reverse-mirror lag', false, 'no instance reported lately', '0 keys waiting')
  const waiting = inputs.instances.reduce((n, i) => n + i.reverseDepth, 0)
  return result('reverse-mirror lag', waiting === 0, `${waiting} keys waiting`, '0 keys waiting')
}

function verifiedInCutover(inputs: GateInputs): GateResult {
  const since = lastEntry(inputs.timeline, 'cutover')?.at
  const v = inputs.verification
  const ok = v !== undefined && v.consistent && since !== undefined && v.finishedAt >= since
  return result('final exhaustive verification', ok, v ? `#${v.id} ${v.consistent ? 'consistent' : 'INCONSISTENT'} at ${v.finishedAt.toISOString()}` : 'none', 'consistent, finished in cutover')
}

function result(gate: string, met: boolean, measured: string, required: string): GateResult {
  return Object.freeze({ gate, met, measured, required })
}

function percent(value: number): string {
  return `${value.toFixed(2)} %`
}

/** `3d 4h`, `2h 5m`, `40s`, `850ms`. */
export function duration(ms: number): string {
  if (!Number.isFinite(ms)) return '∞'
  if (ms < 1_000) return `${Math.round(ms)}ms`
  const s = Math.floor(ms / 1_000)
  const [d, h, m] = [Math.floor(s / 86_400), Math.floor((s % 86_400) / 3_600), Math.floor((s % 3_600) / 60)]
  if (d > 0) return `${d}d ${h}h`
  if (h > 0) return `${h}h ${m}m`
  if (m > 0) return `${m}m ${s % 60}s`
  return `${s}s`
}

/** One audited change of a tenant's own phase: `override` undefined when it was cleared. */
export interface TenantPhaseChange {
  readonly at: Date
  readonly override: { readonly phase: Phase; readonly readPercent: number } | undefined
  readonly actor: string
}

/**
 * A tenant's timeline, for the gates of its own moves: at each moment the phase in force for its
 * requests, which is its override when it has one and the migration's otherwise. Until its first
 * override the tenant simply followed the migration, so its dwell in `shadow` counts from the
 * migration's; after a clear it follows the migration again.
 */
export function tenantTimeline(migration: readonly PhaseEntry[], tenant: readonly TenantPhaseChange[]): PhaseEntry[] {
  const changes = [...migration.map((entry) => ({ at: entry.at, migration: entry, tenant: undefined })), ...tenant.map((change) => ({ at: change.at, migration: undefined, tenant: change }))]
  // Stable: at the same instant, the migration's entry first (the tenant's change was made after it).
  changes.sort((a, b) => a.at.getTime() - b.at.getTime())
  const timeline: PhaseEntry[] = []
  let migrationNow: PhaseEntry | undefined
  let override: TenantPhaseChange['override']
  for (const change of changes) {
    if (change.migration) migrationNow = change.migration
    else override = change.tenant?.override
    const phase = override?.phase ?? migrationNow?.phase
    if (phase === undefined) continue
    const readPercent = override?.readPercent ?? migrationNow?.readPercent ?? 0
    const last = timeline.at(-1)
    if (last?.phase === phase && last.readPercent === readPercent) continue
    timeline.push(Object.freeze({ at: change.at, phase, readPercent, actor: change.migration?.actor ?? change.tenant?.actor ?? '' }))
  }
  return timeline
}
