import { PhaseTransitionError } from './errors.js'

/** Where a migration stands. See the phase table in DESIGN.md; `PHASE_BEHAVIOR` is that table. */
export const PHASES = ['off', 'shadow', 'compare', 'ramp', 'cutover', 'complete', 'rollback'] as const

export type Phase = (typeof PHASES)[number]

/** One side of a migration. */
export type Side = 'old' | 'new'

/** Which way the mirror copies committed writes, if at all. */
export type PhaseMirror = 'none' | 'old-to-new' | 'new-to-old'

export interface PhaseBehavior {
  /** Which side serves reads; `split` means by routing bucket against the read percentage. */
  readonly reads: Side | 'split'
  /** Whether a sample of reads is also run on the other side and compared, off the request path. */
  readonly compareReads: boolean
  /** The side whose write is the application's write; the other side only receives mirrored state. */
  readonly authoritative: Side
  readonly mirror: PhaseMirror
}

/** The phase table of DESIGN.md, as data: every decision about a phase reads it from here. */
export const PHASE_BEHAVIOR: Readonly<Record<Phase, PhaseBehavior>> = Object.freeze({
  off: { reads: 'old', compareReads: false, authoritative: 'old', mirror: 'none' },
  shadow: { reads: 'old', compareReads: false, authoritative: 'old', mirror: 'old-to-new' },
  compare: { reads: 'old', compareReads: true, authoritative: 'old', mirror: 'old-to-new' },
  ramp: { reads: 'split', compareReads: true, authoritative: 'old', mirror: 'old-to-new' },
  cutover: { reads: 'new', compareReads: true, authoritative: 'new', mirror: 'new-to-old' },
  complete: { reads: 'new', compareReads: false, authoritative: 'new', mirror: 'none' },
  rollback: { reads: 'old', compareReads: false, authoritative: 'old', mirror: 'old-to-new' },
})

/**
 * `complete` while its revert window is open: the reverse mirror still keeps the old store current,
 * so that going back to `cutover` loses nothing.
 */
export const COMPLETE_IN_REVERT_WINDOW: PhaseBehavior = Object.freeze({ ...PHASE_BEHAVIOR.complete, mirror: 'new-to-old' })

/**
 * Whether writes on `side` are mirrored to the other side under `behavior`: the mirror runs from
 * that side, or it is an old-side write after cutover that `staleSideWrites: 'permissive'` lets
 * through and mirrors forward. The one answer for the in-memory mirror, the change-log workers and
 * the plugins' key capture.
 */
export function mirrorsWritesOf(behavior: PhaseBehavior, side: Side, staleSideWrites: 'strict' | 'permissive'): boolean {
  if (behavior.mirror === (side === 'old' ? 'old-to-new' : 'new-to-old')) return true
  return side === 'old' && behavior.authoritative === 'new' && staleSideWrites === 'permissive'
}

/**
 * Allowed moves. Forward one step at a time (so nobody reaches `cutover` without having compared),
 * back one step at any time, and `rollback` from any phase that still mirrors to the old store.
 * `complete → cutover` only inside the revert window (checked where the window is known, in
 * `setPhase`); after it `complete` is terminal: the old store stopped receiving writes, so going
 * back needs a new backfill in the other direction, i.e. a new migration.
 */
export const PHASE_TRANSITIONS: Readonly<Record<Phase, readonly Phase[]>> = Object.freeze({
  off: ['shadow'],
  shadow: ['compare', 'off', 'rollback'],
  compare: ['ramp', 'shadow', 'rollback'],
  ramp: ['cutover', 'compare', 'rollback'],
  cutover: ['complete', 'ramp', 'rollback'],
  complete: ['cutover'],
  rollback: ['shadow', 'compare', 'ramp', 'off'],
})

export function isPhase(value: unknown): value is Phase {
  return typeof value === 'string' && (PHASES as readonly string[]).includes(value)
}

export function canTransition(from: Phase, to: Phase): boolean {
  return from === to || PHASE_TRANSITIONS[from].includes(to)
}

/** Throws `PhaseTransitionError` unless `from → to` is allowed (staying put always is). */
export function assertTransition(migration: string, from: Phase, to: Phase): void {
  if (!canTransition(from, to)) throw new PhaseTransitionError(migration, from, to, PHASE_TRANSITIONS[from])
}

/**
 * The phases a tenant may be given of its own. All but `complete`: entering `complete` starts the
 * migration's safety net, which makes the old store read-only for every tenant at once, so only the
 * whole migration can complete (after every tenant override is cleared).
 */
export const TENANT_PHASES: readonly Phase[] = Object.freeze(PHASES.filter((phase) => phase !== 'complete'))

/** A tenant's move that the phase table does not allow, from the tenant's own phase in force. */
export class TenantPhaseTransitionError extends PhaseTransitionError {
  constructor(
    migration: string,
    readonly tenant: string,
    from: Phase,
    to: Phase,
  ) {
    super(migration, from, to, PHASE_TRANSITIONS[from])
    this.message = `Tenant "${tenant}" of migration "${migration}" cannot move from phase "${from}" to "${to}"; from "${from}" it may move to: ${PHASE_TRANSITIONS[from].join(', ')}`
  }
}

/** Throws `TenantPhaseTransitionError` unless a tenant may move `from → to`. */
export function assertTenantTransition(migration: string, tenant: string, from: Phase, to: Phase): void {
  if (!canTransition(from, to)) throw new TenantPhaseTransitionError(migration, tenant, from, to)
}
