import { describe, expect, it } from 'vitest'
import { assertTransition, canTransition, PHASE_BEHAVIOR, PHASE_TRANSITIONS, PHASES, PhaseTransitionError, type Phase } from '../src/index.js'

// The phase table of DESIGN.md, transcribed independently of src/phase.ts.
const DESIGN_TABLE: Record<Phase, { reads: string; compare: boolean; writes: string; mirror: string }> = {
  off: { reads: 'old', compare: false, writes: 'old', mirror: 'none' },
  shadow: { reads: 'old', compare: false, writes: 'old', mirror: 'old-to-new' },
  compare: { reads: 'old', compare: true, writes: 'old', mirror: 'old-to-new' },
  ramp: { reads: 'split', compare: true, writes: 'old', mirror: 'old-to-new' },
  cutover: { reads: 'new', compare: true, writes: 'new', mirror: 'new-to-old' },
  complete: { reads: 'new', compare: false, writes: 'new', mirror: 'none' },
  rollback: { reads: 'old', compare: false, writes: 'old', mirror: 'old-to-new' },
}

describe('phase table', () => {
  it('has exactly the seven phases of the design', () => {
    expect([...PHASES].sort()).toEqual(Object.keys(DESIGN_TABLE).sort())
  })

  for (const phase of PHASES) {
    it(`${phase}: reads, comparison, authority and mirror match DESIGN.md`, () => {
      const row = DESIGN_TABLE[phase]
      const behavior = PHASE_BEHAVIOR[phase]
      expect(behavior.reads).toBe(row.reads)
      expect(behavior.compareReads).toBe(row.compare)
      expect(behavior.authoritative).toBe(row.writes)
      expect(behavior.mirror).toBe(row.mirror)
    })
  }

  it('is frozen: nobody can change the table at run time', () => {
    expect(Object.isFrozen(PHASE_BEHAVIOR)).toBe(true)
    expect(() => {
      ;(PHASE_BEHAVIOR as any).off = PHASE_BEHAVIOR.cutover
    }).toThrow()
  })

  it('the mirror always runs from the authoritative side to the other', () => {
    for (const phase of PHASES) {
      const { authoritative, mirror } = PHASE_BEHAVIOR[phase]
      if (mirror !== 'none') expect(mirror.startsWith(authoritative)).toBe(true)
    }
  })
})

describe('transitions', () => {
  it('allows the forward path one step at a time', () => {
    const path: Phase[] = ['off', 'shadow', 'compare', 'ramp', 'cutover', 'complete']
    for (let i = 1; i < path.length; i++) expect(canTransition(path[i - 1]!, path[i]!)).toBe(true)
  })

  it('rejects skipping ahead with a typed error naming both phases', () => {
    expect(canTransition('off', 'complete')).toBe(false)
    let error: unknown
    try {
      assertTransition('users', 'off', 'complete')
    } catch (e) {
      error = e
    }
    expect(error).toBeInstanceOf(PhaseTransitionError)
    const typed = error as PhaseTransitionError
    expect(typed.code).toBe('PHASE_TRANSITION_ILLEGAL')
    expect(typed.from).toBe('off')
    expect(typed.to).toBe('complete')
    expect(typed.message).toContain('"users"')
    expect(typed.allowed).toEqual(['shadow'])
  })

  it('allows rollback from every phase that still mirrors to the old store, and not from off or complete', () => {
    for (const phase of PHASES) {
      const expected = ['shadow', 'compare', 'ramp', 'cutover'].includes(phase)
      expect(canTransition(phase, 'rollback'), phase).toBe(expected || phase === 'rollback')
    }
  })

  it('lets complete go back only to cutover (inside the revert window) and rollback retry without a new backfill', () => {
    expect(PHASE_TRANSITIONS.complete).toEqual(['cutover'])
    expect(canTransition('rollback', 'ramp')).toBe(true)
    expect(canTransition('rollback', 'cutover')).toBe(false)
  })

  it('always allows staying in the same phase', () => {
    for (const phase of PHASES) expect(() => assertTransition('x', phase, phase)).not.toThrow()
  })

  it('lists only real phases as targets', () => {
    for (const targets of Object.values(PHASE_TRANSITIONS)) for (const t of targets) expect(PHASES).toContain(t)
  })
})
