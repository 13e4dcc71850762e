import type { Side } from '../model/phase.js'
import type { KeyValue } from '../model/store.js'

/**
 * What a `MigrationRuntime` asks of change-log capture. With a side captured, the plugins' keys of
 * that side's writes are not queued for the mirror (the triggers log them, workers apply them); they
 * are only remembered so that a read in `ramp` still sees the process's own writes.
 */
export interface RuntimeCapture {
  /** Whether the change log captures this side's writes. */
  captures(side: Side): boolean
  /** A committed write the plugin saw on a captured side, remembered until the log entry is applied. */
  noteWrite(side: Side, key: KeyValue): void
  /** A committed write the plugin saw on a captured side without learning its keys. */
  noteUnkeyedWrite(side: Side): void
  /** Whether such a write on this side may not be applied yet: it committed at or below a log position some entry still holds. */
  hasUnkeyedPending(side: Side): boolean
  /** Whether a write noted on this side (of `key`, or of any key) is not applied yet. */
  hasUnapplied(side: Side, key?: KeyValue): boolean
  /** Whether a compared read of `key` begun at `since` may have met this side's change before it was applied (mirror lag, not a mismatch). */
  isSettling(side: Side, key: KeyValue, since?: number): boolean
  /** The phase in force changed: a direction it stops mirroring ignores entries logged from now on. */
  phaseChanged(): void
  /** Applies everything the log holds now (tests, shutdown). */
  drain(): Promise<void>
  /** Stops the workers after their round in flight. */
  close(): Promise<void>
}
