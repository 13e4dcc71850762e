import type { Kysely } from 'kysely'
import type { BackfillOptions } from '../jobs/backfill.js'
import type { Migration } from '../model/migration.js'
import type { SegmentSource } from '../jobs/segment-checksum.js'

/**
 * What the `cutover` command needs from an application: the same migrations it runs, and the
 * control database. A config module's default export is a `CutoverConfig` or a function returning
 * one (so connections open only when a command runs):
 *
 *     // cutover.config.ts
 *     import { defineCutoverConfig, defineMigration } from '@cutover/core'
 *     export default defineCutoverConfig(async () => ({
 *       control: new Kysely({ dialect: new PostgresDialect({ pool }) }),
 *       migrations: [users],
 *       jobs: { users: { backfill: { throttle: { maxRowsPerSecond: 5_000 } } } },
 *       close: () => pool.end(),
 *     }))
 */
export interface CutoverConfig {
  /** PostgreSQL holding the `cutover` schema. */
  readonly control: Kysely<any>
  readonly migrations: readonly Migration<any, any>[]
  /** Job settings per migration name. */
  readonly jobs?: Readonly<Record<string, MigrationJobSettings>>
  /**
   * As `createCutover`'s option: `false` when several services share one environment, so a
   * `CUTOVER_<NAME>_*` variable naming no migration of this config is not an error.
   */
  readonly rejectUnknownMigrationFlags?: boolean
  /** Called when the command ends: close pools and connections so the process can exit. */
  readonly close?: () => Promise<void>
}

export interface MigrationJobSettings {
  readonly backfill?: Pick<BackfillOptions, 'batch' | 'throttle' | 'verify' | 'configVersion'>
  /**
   * Segment sources for exhaustive verification, e.g. `postgresTableSegments` for a PostgreSQL
   * side. Default: both stores streamed through the Store interface.
   */
  readonly segments?: () => Promise<{ readonly old?: SegmentSource; readonly new?: SegmentSource }>
  /** Roughly how many old records there are, for the progress bar's ETA. */
  readonly estimateTotal?: () => Promise<number>
}

export type CutoverConfigModule = CutoverConfig | (() => CutoverConfig | Promise<CutoverConfig>)

/** Identity, for type checking a config module. */
export function defineCutoverConfig<T extends CutoverConfigModule>(config: T): T {
  return config
}
