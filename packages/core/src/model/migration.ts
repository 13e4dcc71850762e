import { z } from 'zod'
import type { GateOverrides } from '../control/phase-gates.js'
import { type CaptureSettings, captureSettingsSchema } from '../capture/capture-settings.js'
import type { ComparisonRules } from './compare.js'
import { ConfigError } from './errors.js'
import type { GuardThresholds } from '../runtime/guard.js'
import type { Mapper } from './mapper.js'
import type { MirrorQueueOptions } from '../runtime/mirror-queue.js'
import type { TenantOverrides } from './routing.js'
import type { Row, Store } from './store.js'

/** Mirror tuning for one migration (see `MirrorQueueOptions` for each setting and its default). */
export type MirrorSettings = Pick<
  MirrorQueueOptions,
  'capacity' | 'overflow' | 'concurrency' | 'batchSize' | 'lingerMs' | 'retry' | 'recheckDelayMs'
>

/**
 * What happens to a write that reaches the side that is no longer authoritative (the old store in
 * `cutover`/`complete`): `strict` rejects it with `WriteRejectedError`; `permissive` applies it,
 * mirrors it forward and logs a warning.
 */
export type StaleSideWritePolicy = 'strict' | 'permissive'

/** One logical entity moving from an old store to a new one. */
export interface MigrationDefinition<Old extends Row = Row, New extends Row = Row> {
  /** Letters, digits, `_`, `-`; names the env flags (`CUTOVER_<NAME>_PHASE`) and control rows. */
  readonly name: string
  readonly old: Store<Old>
  readonly new: Store<New>
  readonly mapper: Mapper<Old, New>
  /** Key fields; default: the stores' `keyField`. Mappers must keep key values unchanged. */
  readonly key?: { readonly old: string; readonly new: string }
  /** Version (or updated-at) fields: enable version-guarded mirroring and backfill. */
  readonly version?: { readonly old?: string; readonly new?: string }
  readonly routing?: TenantOverrides
  readonly compare?: ComparisonRules
  readonly guards?: GuardThresholds
  readonly mirror?: MirrorSettings
  readonly staleSideWrites?: StaleSideWritePolicy
  /**
   * Phase gates: thresholds and dwell times per move, over `DEFAULT_GATES` (see the README).
   * `false` lets every legal move through ungated: for tests and demos, not for production.
   */
  readonly gates?: GateOverrides | false
  /**
   * Read-your-writes in `ramp`: a read of keys this process changed, whose change the mirror has
   * not applied yet, goes to the old store (`read.fresh_fallback`). With `waitMs`, plugins that
   * call `awaitReadSide` first wait up to that long for the apply and stay on the new store.
   */
  readonly freshness?: { readonly waitMs?: number }
  /**
   * Fields of the old store deliberately left behind. Any other field the old store holds but the
   * old schema does not name is a start-up error, since it would be dropped without a word.
   */
  readonly droppedColumns?: readonly string[]
  /** How changes are captured: `interception` (default) or a PostgreSQL `change-log` (see capture/). */
  readonly capture?: CaptureSettings
}

export interface Migration<Old extends Row = Row, New extends Row = Row> extends MigrationDefinition<Old, New> {
  readonly key: { readonly old: string; readonly new: string }
  readonly staleSideWrites: StaleSideWritePolicy
}

const storeShape = z.custom<Store>(
  (value) =>
    typeof value === 'object' &&
    value !== null &&
    ['get', 'scan', 'upsert', 'delete'].every((method) => typeof (value as Record<string, unknown>)[method] === 'function'),
  { message: 'must implement the Store interface (get, scan, upsert, delete)' },
)

const rate = z.number().min(0).max(1)

const definitionSchema = z.object({
  name: z.string().regex(/^[A-Za-z][A-Za-z0-9_-]*$/, 'must start with a letter and contain only letters, digits, _ and -'),
  old: storeShape,
  new: storeShape,
  mapper: z.custom<Mapper>(
    (value) => typeof (value as Mapper)?.forward === 'function' && typeof (value as Mapper)?.backward === 'function',
    { message: 'must be a mapper (defineMapper or fieldMapper)' },
  ),
  key: z.object({ old: z.string().min(1), new: z.string().min(1) }).optional(),
  version: z.object({ old: z.string().min(1).optional(), new: z.string().min(1).optional() }).optional(),
  routing: z.object({ onNew: z.array(z.string()).optional(), onOld: z.array(z.string()).optional() }).optional(),
  compare: z.record(z.string(), z.unknown()).optional(),
  guards: z
    .object({
      maxErrorRate: rate.optional(),
      maxLatencyRatio: z.number().positive().optional(),
      maxMismatchRate: rate.optional(),
      minSamples: z.number().int().positive().optional(),
      windowMs: z.number().int().positive().optional(),
      maxErrorRateIncrease: rate.optional(),
      maxP95IncreaseMs: z.number().nonnegative().optional(),
      minConsistency: rate.optional(),
      confidence: z.number().min(0.5).max(0.999999).optional(),
    })
    .strict()
    .optional(),
  mirror: z
    .object({
      capacity: z.number().int().positive().optional(),
      overflow: z.enum(['dead-letter', 'reject']).optional(),
      concurrency: z.number().int().positive().optional(),
      batchSize: z.number().int().positive().optional(),
      lingerMs: z.number().nonnegative().optional(),
      retry: z
        .object({ attempts: z.number().int().positive().optional(), baseDelayMs: z.number().nonnegative().optional(), maxDelayMs: z.number().nonnegative().optional() })
        .optional(),
      recheckDelayMs: z.union([z.number().int().nonnegative(), z.literal(false)]).optional(),
    })
    .strict()
    .optional(),
  staleSideWrites: z.enum(['strict', 'permissive']).optional(),
  gates: z
    .union([z.literal(false), z.object(
      Object.fromEntries(
        (['shadow', 'compare', 'ramp', 'cutover', 'complete'] as const).map((phase) => [
          phase,
          z.record(z.string(), z.number().nonnegative()).optional(),
        ]),
      ),
    ).strict()])
    .optional(),
  droppedColumns: z.array(z.string().min(1)).optional(),
  freshness: z.object({ waitMs: z.number().int().nonnegative().max(10_000).optional() }).strict().optional(),
  capture: captureSettingsSchema.optional(),
})

/** Validates a migration definition at start-up; every problem is reported at once as a `ConfigError`. */
export function defineMigration<Old extends Row, New extends Row>(definition: MigrationDefinition<Old, New>): Migration<Old, New> {
  const parsed = definitionSchema.safeParse(definition)
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((issue) => {
        const path = issue.path.map(String).join('.')
        return {
          source: `migration ${JSON.stringify((definition as { name?: unknown })?.name ?? '?')}.${path}`,
          value: undefined,
          message: `migration ${JSON.stringify((definition as { name?: unknown })?.name ?? '?')}: ${path || '(definition)'} ${issue.message}`,
        }
      }),
    )
  }
  return Object.freeze({
    ...definition,
    key: definition.key ?? { old: definition.old.keyField, new: definition.new.keyField },
    staleSideWrites: definition.staleSideWrites ?? 'strict',
  })
}
