/**
 * Writes that bypass Mongoose middleware (`Model.collection.*`, `connection.db.collection(…)`) cannot
 * be mirrored: the plugin never sees their keys. They are detected and reported instead, through
 * `runtime.recordUnmirrored(collection, detail)` (metric `write.unmirrored{migration,target}` and a
 * warning), so that an operator knows reconciliation has work to do.
 *
 * Two sources, one per connection:
 * - with `monitorCommands: true` on the connection (recommended), the driver's `commandStarted`
 *   events: every `insert`, `update`, `delete`, `findAndModify` and `$out`/`$merge` aggregate on a
 *   migrated collection, whoever sent it, including `connection.db` writes;
 * - without it, Mongoose's `operation-start` events, which only see calls through Mongoose
 *   collections (`Model.collection.*`): `connection.db` writes go unseen and a warning says so.
 *
 * A write is ignored when it runs under a write origin (the observed collection's own calls, store
 * writes of the mirror): see `write-origin.ts`. Commands buffered by Mongoose before the connection
 * opened lose their origin; the observed collection waits for the connection instead of buffering.
 */
import type { Logger, MigrationRuntime } from '@cutover/core'
import type { Connection } from 'mongoose'
import { guarded } from '../background.js'
import { currentWriteOrigin } from './write-origin.js'
import { COLLECTION_WRITE_METHODS } from './write-methods.js'

interface Watch {
  readonly collections: Map<string, MigrationRuntime>
  readonly logger: Logger
  attached: 'commands' | 'operations' | undefined
}

const watches = new WeakMap<Connection, Watch>()

const WRITE_COMMANDS = new Set(['insert', 'update', 'delete', 'findAndModify', 'findandmodify'])

/** Starts reporting writes to `collection` on `connection` that bypass the plugin. Idempotent. */
export function watchUnmirroredWrites(connection: Connection, collection: string, runtime: MigrationRuntime, logger: Logger): void {
  let watch = watches.get(connection)
  if (!watch) {
    watch = { collections: new Map(), logger, attached: undefined }
    watches.set(connection, watch)
    const attach = () => guardedReport(watch as Watch, () => attachTo(connection, watch as Watch, logger))
    attach()
    connection.on('connected', attach)
  }
  watch.collections.set(collection, runtime)
}

function attachTo(connection: Connection, watch: Watch, logger: Logger): void {
  const client = connection.getClient?.() as unknown as
    | { options?: { monitorCommands?: boolean }; on(event: string, fn: (e: any) => void): void }
    | undefined
  if (watch.attached === 'commands' || !client) return
  if (client.options?.monitorCommands) {
    watch.attached = 'commands'
    // A driver event listener that throws would throw into the driver's command path.
    client.on('commandStarted', (event: CommandStarted) => guardedReport(watch, () => onCommand(connection, watch, event)))
    return
  }
  if (watch.attached === 'operations') return
  watch.attached = 'operations'
  logger.warn('connection has no monitorCommands: writes through connection.db cannot be detected; pass { monitorCommands: true } when connecting', {
    database: connection.name,
  })
  connection.on('operation-start', (event: { collectionName?: string; method?: string }) => guardedReport(watch, () => {
    if (!event.method || !COLLECTION_WRITE_METHODS.has(event.method) || !event.collectionName || currentWriteOrigin()) return
    const runtime = watch.collections.get(event.collectionName)
    if (runtime) report(runtime, event.collectionName, `${event.method} on ${connection.name}.${event.collectionName} bypassed the Cutover plugin`)
  }))
}

interface CommandStarted {
  readonly commandName: string
  readonly databaseName: string
  readonly command: Record<string, unknown>
}

function onCommand(connection: Connection, watch: Watch, event: CommandStarted): void {
  if (event.databaseName !== connection.name || currentWriteOrigin()) return
  let collection: unknown
  if (WRITE_COMMANDS.has(event.commandName)) collection = event.command[event.commandName]
  else if (event.commandName === 'aggregate') collection = aggregateTarget(event.command)
  if (typeof collection !== 'string') return
  const runtime = watch.collections.get(collection)
  if (runtime) report(runtime, collection, `${event.commandName} on ${event.databaseName}.${collection} bypassed the Cutover plugin`)
}

/** The collection an aggregation writes to with a final `$out` or `$merge`, if any. */
function aggregateTarget(command: Record<string, unknown>): string | undefined {
  const pipeline = command.pipeline
  if (!Array.isArray(pipeline)) return undefined
  const last = pipeline.at(-1) as Record<string, any> | undefined
  const target = last?.$out ?? last?.$merge
  if (typeof target === 'string') return target
  const into = target?.into ?? target?.coll
  return typeof into === 'string' ? into : typeof into?.coll === 'string' ? into.coll : undefined
}

/** Runs detection work from a driver or connection event: a failure is counted and logged, never thrown into the emitter. */
function guardedReport(watch: Watch, work: () => void): void {
  const [runtime] = watch.collections.values()
  guarded({ logger: watch.logger, migration: runtime?.name ?? 'unknown', ...(runtime ? { metrics: runtime.metrics } : {}) }, 'write.detection_failed', 'unmirrored-write detection failed', work)
}

function report(runtime: MigrationRuntime, collection: string, detail: string): void {
  // In `off` nothing is mirrored, so nothing is missed.
  if (runtime.behavior.mirror === 'none' && runtime.behavior.authoritative === 'old') return
  runtime.recordUnmirrored(collection, detail)
}
