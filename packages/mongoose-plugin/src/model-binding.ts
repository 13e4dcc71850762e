import type { Logger, Metrics, MigrationRuntime } from '@cutover/core'
import type { Model } from 'mongoose'
import type { KeyCodec } from './keys.js'
import type { NewStoreReader } from './read/query-translation.js'

/** A migrated model as the plugin drives it. */
export interface ModelBinding {
  readonly runtime: MigrationRuntime
  readonly model: Model<any>
  /** The key path on the MongoDB side (the migration's `key.old`). */
  readonly keyField: string
  readonly keys: KeyCodec
  readonly logger: Logger
  /** The engine's metrics, when the plugin was given the engine. */
  readonly metrics?: Metrics
  /** Runs translated queries on the new store, when the user gave one. */
  readonly reader?: NewStoreReader
}
