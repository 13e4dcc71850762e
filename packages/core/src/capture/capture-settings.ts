import { z } from 'zod'

/**
 * How a migration learns which keys changed:
 * - `interception` (default): the plugins see the application's writes and queue their keys in
 *   memory. Works for every store (MongoDB too); misses what the ORM does not see, and a process
 *   crash loses what was queued until reconciliation repairs it.
 * - `change-log`: PostgreSQL triggers write every committed change into `cutover.change_log` in the
 *   same transaction; workers apply it. Nothing is missed or lost; costs one small insert per row.
 */
export type CaptureMode = 'interception' | 'change-log'

export interface ChangeLogSettings {
  readonly mode: CaptureMode
  /** Whether `createCutover` installs the triggers (idempotent; needs the privileges). Default false: `cutover capture install`. */
  readonly install?: boolean
  /** Workers started in each process by `createCutover`. Default 1; 0 when workers run elsewhere (`cutover capture run`). */
  readonly workers?: number
  /** Log entries claimed per batch. Default 500. */
  readonly batchSize?: number
  /** How long an idle worker waits before looking at the log again. Default 100 ms. */
  readonly pollIntervalMs?: number
  /** Sides captured. Default: every side that is a PostgreSQL table. */
  readonly sides?: readonly ('old' | 'new')[]
}

export type CaptureSettings = CaptureMode | ChangeLogSettings

export const captureSettingsSchema = z.union([
  z.enum(['interception', 'change-log']),
  z
    .object({
      mode: z.enum(['interception', 'change-log']),
      install: z.boolean().optional(),
      workers: z.number().int().nonnegative().optional(),
      batchSize: z.number().int().positive().optional(),
      pollIntervalMs: z.number().int().positive().optional(),
      sides: z.array(z.enum(['old', 'new'])).min(1).optional(),
    })
    .strict(),
])

export interface ResolvedCaptureSettings {
  readonly mode: CaptureMode
  readonly install: boolean
  readonly workers: number
  readonly batchSize: number
  readonly pollIntervalMs: number
  readonly sides: readonly ('old' | 'new')[] | undefined
}

export function resolveCaptureSettings(settings: CaptureSettings | undefined): ResolvedCaptureSettings {
  const given: ChangeLogSettings = typeof settings === 'string' ? { mode: settings } : (settings ?? { mode: 'interception' })
  return {
    mode: given.mode,
    install: given.install ?? false,
    workers: given.workers ?? 1,
    batchSize: given.batchSize ?? 500,
    pollIntervalMs: given.pollIntervalMs ?? 100,
    sides: given.sides,
  }
}
