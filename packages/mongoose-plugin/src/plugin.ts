/**
 * The schema plugin: `schema.plugin(cutover, { cutover, migration: 'appointments' })`, or for every
 * model at once `mongoose.plugin(cutover, { cutover, models: { Appointment: 'appointments' } })`.
 *
 * When a model is compiled (the schema's `init` event) its collection, as Mongoose's own model and
 * document code reaches it (`Model.$__collection` and the documents' collection), is replaced by an
 * observed collection (see `observed-collection.ts`); queries built on the public `Model.collection`
 * (`Model.updateOne`, `replaceOne`, …) get it in a query `pre` hook. `Model.collection` itself is
 * left alone: writes through it bypass the plugin and are reported as unmirrored.
 */
import { ConfigError, type Cutover, type Logger, type Metrics, type MigrationRuntime, silentLogger } from '@cutover/core'
import type { Model, Schema } from 'mongoose'
import { keyCodecFor } from './keys.js'
import { MongooseModelStore } from './store/model-store.js'
import type { ModelBinding } from './model-binding.js'
import { observeCollection } from './write/observed-collection.js'
import { type NewStoreReader, installReadHooks } from './read/read-hooks.js'
import { watchUnmirroredWrites } from './write/unmirrored-writes.js'
import { QUERY_WRITE_METHODS } from './write/write-methods.js'

/** Which migration a model belongs to, and how its reads may be served by the new store. */
export interface ModelMigration {
  readonly migration: string
  /** Runs translated queries on the new store (see `NewStoreReader`); without it, only key lookups are served from it. */
  readonly reader?: NewStoreReader
}

/**
 * The engine (or one migration's runtime) may be given directly, or as a function returning it when
 * the schema must be compiled before the engine exists (the old store is built from the model, the
 * engine from the migration): the plugin then resolves it at the first operation on the model.
 * Until it resolves (the function returns undefined or throws), writes pass through unmirrored and a
 * warning says so.
 */
type Lazy<T> = T | (() => T | undefined)

export type CutoverPluginOptions =
  | {
      /** The running engine. */
      readonly cutover: Lazy<Cutover>
      /** The migration of the model(s) this schema compiles to. */
      readonly migration: string
      readonly reader?: NewStoreReader
    }
  | {
      readonly cutover: Lazy<Cutover>
      /** For `mongoose.plugin`: model name → migration. Models not named here are left alone. */
      readonly models: Readonly<Record<string, string | ModelMigration>>
    }
  | {
      /** One migration's runtime, without the engine (logging and metrics go to the runtime's engine unless given here). */
      readonly runtime: Lazy<MigrationRuntime>
      readonly reader?: NewStoreReader
      readonly logger?: Logger
      readonly metrics?: Metrics
    }


/** The Cutover schema plugin. */
export function cutoverPlugin(schema: Schema, options: CutoverPluginOptions): void {
  const resolve = resolver(options)
  const bindings = new WeakMap<Model<any>, ModelBinding | null>()
  let warnedUnresolved = false

  /** The model's binding: undefined while the engine is not there yet, null for models not migrated. */
  const bindingOf = (model: Model<any>, quiet = false): ModelBinding | undefined => {
    const known = bindings.get(model)
    if (known !== undefined) return known ?? undefined
    let resolved: Resolved | undefined
    try {
      resolved = resolve(model.modelName)
    } catch (error) {
      if (error instanceof ConfigError) throw error
      if (!warnedUnresolved && !quiet) {
        warnedUnresolved = true
        logOf(options).warn('Cutover engine not available yet; writes pass through unmirrored until it is', { model: model.modelName, error })
      }
      return undefined
    }
    if (!resolved) {
      bindings.set(model, null)
      return undefined
    }
    const elsewhere = otherCollection(model, resolved.runtime)
    if (elsewhere) {
      // The same schema compiled for another database (`useDb`) or collection: mirroring it would
      // write that collection's documents into this migration's new store (and re-read them from the
      // wrong collection), and serving its reads from there would answer from other documents.
      bindings.set(model, null)
      resolved.logger.warn('model is not migrated: its collection is not the migration\'s old store', { model: model.modelName, migration: resolved.runtime.name, collection: elsewhere, oldStore: resolved.runtime.migration.old.name })
      return undefined
    }
    const keyField = resolved.runtime.migration.key.old
    const binding: ModelBinding = Object.freeze({
      runtime: resolved.runtime,
      model,
      keyField,
      keys: keyCodecFor(model, keyField),
      logger: resolved.logger,
      ...(resolved.metrics ? { metrics: resolved.metrics } : {}),
      ...(resolved.reader ? { reader: resolved.reader } : {}),
    })
    bindings.set(model, binding)
    watchUnmirroredWrites(model.db, model.collection.collectionName, resolved.runtime, resolved.logger, binding.keys)
    return binding
  }

  const instrumented = new WeakSet<Model<any>>()
  const instrument = (model: Model<any>): void => {
    // Subdocuments run `save` hooks too; only models have a collection.
    if (instrumented.has(model) || typeof model?.modelName !== 'string' || !(model as unknown as { $__collection?: unknown }).$__collection) return
    instrumented.add(model)
    const lazy = () => bindingOf(model)
    const m = model as unknown as Record<string | symbol, any>
    m.$__collection = observeCollection(m.$__collection, lazy)
    const prototype = model.prototype as Record<string | symbol, any>
    for (const symbol of Object.getOwnPropertySymbols(prototype)) {
      if (symbol.description === 'mongoose#Model#collection') prototype[symbol] = observeCollection(prototype[symbol], lazy)
    }
    bindingOf(model, true) // starts unmirrored-write detection now when the engine is already there
  }
  schema.on('init', instrument)
  // Should `init` not reach this schema (Mongoose re-creates a schema it is given from another
  // Mongoose instance), the model is instrumented by its first document or model write instead:
  // these hooks run before Mongoose reaches for the collection.
  schema.pre('save', function instrumentOnSave(this: any) {
    instrument(this.constructor as Model<any>)
  })
  schema.pre(['insertMany', 'bulkWrite'] as any, function instrumentOnModelWrite(this: any) {
    instrument(this as Model<any>)
  })

  // `Model.updateOne`, `updateMany` and `replaceOne` build their query on the public
  // `Model.collection`: hand those queries the model's observed collection (one per model).
  const observedPublic = new WeakMap<Model<any>, object>()
  schema.pre([...QUERY_WRITE_METHODS], { document: false, query: true }, function observeQueryCollection(this: any) {
    const model = this.model as Model<any>
    if (this.mongooseCollection === model.collection) {
      let observed = observedPublic.get(model)
      if (!observed) observedPublic.set(model, (observed = observeCollection(model.collection, () => bindingOf(model))))
      this.mongooseCollection = observed
    } else {
      this.mongooseCollection = observeCollection(this.mongooseCollection, () => bindingOf(model))
    }
  })

  installReadHooks(schema, (model) => bindingOf(model))
}

/**
 * Where `model` writes, when that is not the collection the migration's old store reads (a
 * `MongooseModelStore` of another database or collection); undefined when it is, or when the old
 * store is not a `MongooseModelStore` (nothing to compare with).
 */
function otherCollection(model: Model<any>, runtime: MigrationRuntime): string | undefined {
  const old = runtime.migration.old
  if (!(old instanceof MongooseModelStore)) return undefined
  const source = old.model
  const where = (m: Model<any>) => `${m.db?.name}.${m.collection?.collectionName}`
  return sameServers(source, model) && where(source) === where(model) ? undefined : where(model)
}

/** Whether two models' connections reach the same servers (one client, or two clients of the same hosts). */
function sameServers(a: Model<any>, b: Model<any>): boolean {
  const client = (m: Model<any>) => m.db?.getClient?.() as unknown as { options?: { hosts?: unknown[] } } | undefined
  const [left, right] = [client(a), client(b)]
  if (left === right) return true
  const hosts = (c: typeof left) => c?.options?.hosts?.map(String).sort().join(',')
  return hosts(left) !== undefined && hosts(left) === hosts(right)
}

interface Resolved {
  readonly runtime: MigrationRuntime
  readonly reader?: NewStoreReader
  readonly logger: Logger
  readonly metrics?: Metrics
}

function logOf(options: CutoverPluginOptions): Logger {
  if ('cutover' in options) {
    try {
      return (typeof options.cutover === 'function' ? options.cutover() : options.cutover)?.logger ?? silentLogger
    } catch {
      return silentLogger
    }
  }
  if (options.logger) return options.logger
  try {
    return unlazy(options.runtime).logger
  } catch {
    return silentLogger
  }
}

function unlazy<T>(value: Lazy<T>): T {
  const resolved = typeof value === 'function' ? (value as () => T | undefined)() : value
  if (resolved === undefined || resolved === null) throw new Error('not started')
  return resolved
}

function resolver(options: CutoverPluginOptions): (modelName: string) => Resolved | undefined {
  if (!options || typeof options !== 'object' || !('runtime' in options || 'migration' in options || 'models' in options)) {
    throw new ConfigError([
      { source: 'cutoverPlugin', value: options, message: 'cutoverPlugin needs options: { cutover, migration }, { cutover, models } or { runtime }' },
    ])
  }
  if ('runtime' in options) {
    const reader = options.reader
    return () => {
      const runtime = unlazy(options.runtime)
      // The runtime carries its engine's logger and metrics; explicit options win.
      return { runtime, logger: options.logger ?? runtime.logger, metrics: options.metrics ?? runtime.metrics, ...(reader ? { reader } : {}) }
    }
  }
  const byModel =
    'models' in options
      ? new Map(Object.entries(options.models).map(([model, entry]) => [model, typeof entry === 'string' ? { migration: entry } : entry]))
      : undefined
  const single: ModelMigration | undefined = 'migration' in options ? { migration: options.migration, ...(options.reader ? { reader: options.reader } : {}) } : undefined
  return (modelName) => {
    const spec = byModel ? byModel.get(modelName) : single
    if (!spec) return undefined
    const cutover = unlazy(options.cutover)
    // An unknown migration name is a ConfigError, thrown at the model's first operation at the latest.
    return { runtime: cutover.migration(spec.migration), logger: cutover.logger, metrics: cutover.metrics, ...(spec.reader ? { reader: spec.reader } : {}) }
  }
}
