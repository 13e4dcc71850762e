import { CutoverError } from '../model/errors.js'
import { PHASE_BEHAVIOR, PHASE_TRANSITIONS, type Phase } from '../model/phase.js'

/**
 * Why an instance refuses writes to a migration's tables:
 * - `barrier`: a change of write authority is under way and this instance has acknowledged it;
 * - `fenced`: it missed such a barrier and has not yet followed the new control row;
 * - `lease`: it has not reached the control database for longer than its lease, in a phase from
 *   which write authority can move, so it cannot know that it has not moved already.
 */
export type FenceReason = 'barrier' | 'fenced' | 'lease'

/** A write refused because this instance cannot be sure it is on the authoritative side right now. Retry it. */
export class WriteFencedError extends CutoverError {
  readonly code = 'WRITE_FENCED'

  constructor(
    readonly migration: string,
    readonly reason: FenceReason,
    readonly target: string,
    key?: string,
  ) {
    super(
      `Write to "${target}" refused: migration "${migration}" ${REASON_TEXT[reason]}; retry shortly`,
      key === undefined ? {} : { key },
    )
  }
}

const REASON_TEXT: Readonly<Record<FenceReason, string>> = {
  barrier: 'is switching write authority (barrier in progress)',
  fenced: 'fenced this instance for missing a switch of write authority until it follows the control table',
  lease: 'cannot reach its control database, and write authority may have moved meanwhile',
}

/** Whether `from → to` moves write authority from one store to the other (needs a barrier). */
export function movesWriteAuthority(from: Phase, to: Phase): boolean {
  return PHASE_BEHAVIOR[from].authoritative !== PHASE_BEHAVIOR[to].authoritative
}

/** Whether write authority can move away from `phase` in one allowed step (so a lease matters). */
export function authorityCanMove(phase: Phase): boolean {
  return PHASE_TRANSITIONS[phase].some((to) => movesWriteAuthority(phase, to))
}
