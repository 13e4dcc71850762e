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
 * A bypassing write that names its keys (the `_id`s of inserted documents, a filter pinning the key)
 * also hands those keys to the mirror once it has finished (`commandSucceeded`/`commandFailed`, or
 * Mongoose's `operation-end`; a failed write may have applied in part, and state-based mirroring
 * copies whatever is there): the new store gets them, and a read of such a key is not served stale
 * from the new store meanwhile (read-your-writes). It is still reported, since keys changed by
 * other filters, `bulkWrite`s and `$out`/`$merge` are not known.
 *
 * A write is ignored when it runs under a write origin (the observed collection's own calls, store
 * writes of the mirror): see `write-origin.ts`. Commands buffered by Mongoose before the connection
 * opened lose their origin; the observed collection waits for the connection instead of buffering.
 */
import type { Logger, MigrationRuntime } from '@cutover/core'
import type { Connection } from 'mongoose'
import { guarded } from '../background.js'
import { type KeyCodec, roundTripStoreKey } from '../keys.js'
import { keysPinnedBy } from './affected-keys.js'
import { currentWriteOrigin } from './write-origin.js'
import { COLLECTION_WRITE_METHODS } from './write-methods.js'

interface Watched {
  readonly runtime: MigrationRuntime
  readonly keys: KeyCodec
}

/** A bypassing write in flight whose keys go to the mirror when it ends. */
interface Named {
  readonly watched: Watched
  readonly op: 'upsert' | 'delete'
  /** Read at the end: the driver gives inserted documents their `_id` on the way. */
  readonly values: () => unknown[]
}

interface Watch {
  readonly collections: Map<string, Watched>
  readonly logger: Logger
  readonly inFlight: Map<unknown, Named>
  attached: 'commands' | 'operations' | undefined
}

const watches = new WeakMap<Connection, Watch>()

const WRITE_COMMANDS = new Set(['insert', 'update', 'delete', 'findAndModify', 'findandmodify'])

/** Starts reporting writes to `collection` on `connection` that bypass the plugin. Idempotent. */
export function watchUnmirroredWrites(connection: Connection, collection: string, runtime: MigrationRuntime, logger: Logger, keys: KeyCodec): void {
  let watch = watches.get(connection)
  if (!watch) {
    watch = { collections: new Map(), logger, inFlight: new Map(), attached: undefined }
    watches.set(connection, watch)
    const attach = () => guardedReport(watch as Watch, () => attachTo(connection, watch as Watch, logger))
    attach()
    connection.on('connected', attach)
  }
  watch.collections.set(collection, { runtime, keys })
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
    const ended = (event: { requestId: unknown }) => guardedReport(watch, () => mirrorNamed(watch, event.requestId))
    client.on('commandSucceeded', ended)
    client.on('commandFailed', ended)
    return
  }
  if (watch.attached === 'operations') return
  watch.attached = 'operations'
  logger.warn('connection has no monitorCommands: writes through connection.db cannot be detected; pass { monitorCommands: true } when connecting', {
    database: connection.name,
  })
  connection.on('operation-start', (event: { _id?: unknown; collectionName?: string; method?: string; params?: unknown[] }) => guardedReport(watch, () => {
    if (!event.method || !COLLECTION_WRITE_METHODS.has(event.method) || !event.collectionName || currentWriteOrigin()) return
    const watched = watch.collections.get(event.collectionName)
    if (!watched) return
    report(watched.runtime, event.collectionName, `${event.method} on ${connection.name}.${event.collectionName} bypassed the Cutover plugin`)
    const named = operationKeys(event.method, event.params ?? [], watched)
    if (named && event._id !== undefined) watch.inFlight.set(event._id, named)
  }))
  connection.on('operation-end', (event: { _id?: unknown }) => guardedReport(watch, () => mirrorNamed(watch, event._id)))
}

interface CommandStarted {
  readonly commandName: string
  readonly databaseName: string
  readonly requestId: unknown
  readonly command: Record<string, unknown>
}

function onCommand(connection: Connection, watch: Watch, event: CommandStarted): void {
  if (event.databaseName !== connection.name || currentWriteOrigin()) return
  let collection: unknown
  if (WRITE_COMMANDS.has(event.commandName)) collection = event.command[event.commandName]
  else if (event.commandName === 'aggregate') collection = aggregateTarget(event.command)
  if (typeof collection !== 'string') return
  const watched = watch.collections.get(collection)
  if (!watched) return
  report(watched.runtime, collection, `${event.commandName} on ${event.databaseName}.${collection} bypassed the Cutover plugin`)
  const named = commandKeys(event.commandName, event.command, watched)
  if (named) watch.inFlight.set(event.requestId, named)
}

/** The keys a write command names, if it names them all: inserted `_id`s, update/delete filters pinning the key. */
function commandKeys(name: string, command: Record<string, any>, watched: Watched): Named | undefined {
  const field = watched.runtime.migration.key.old
  const all = (values: (unknown[] | undefined)[]) => (values.every((v) => v !== undefined) ? (values as unknown[][]).flat() : undefined)
  let values: unknown[] | undefined
  if (name === 'insert') values = all((command.documents ?? []).map((d: any) => (d?.[field] === undefined ? undefined : [d[field]])))
  else if (name === 'update') values = all((command.updates ?? []).map((u: any) => keysPinnedBy(u?.q, field)))
  else if (name === 'delete') values = all((command.deletes ?? []).map((d: any) => keysPinnedBy(d?.q, field)))
  else if (name === 'findAndModify' || name === 'findandmodify') values = keysPinnedBy(command.query, field)
  if (!values || values.length === 0) return undefined
  const op = name === 'delete' || (command.remove === true && name !== 'update') ? 'delete' : 'upsert'
  return { watched, op, values: () => values }
}

/** The keys a bypassing collection call names (read when it ends: `insertOne` adds the `_id`). */
function operationKeys(method: string, params: unknown[], watched: Watched): Named | undefined {
  const field = watched.runtime.migration.key.old
  const [first] = params
  if (method === 'insertOne') return { watched, op: 'upsert', values: () => [(first as Record<string, unknown> | undefined)?.[field]] }
  if (method === 'insertMany') return Array.isArray(first) ? { watched, op: 'upsert', values: () => first.map((d) => (d as Record<string, unknown> | undefined)?.[field]) } : undefined
  if (method === 'bulkWrite' || method.startsWith('insert')) return undefined
  const pinned = keysPinnedBy(first, field)
  if (!pinned || pinned.length === 0) return undefined
  return { watched, op: method.startsWith('delete') || method === 'findOneAndDelete' ? 'delete' : 'upsert', values: () => pinned }
}

/** Hands the keys of a finished bypassing write to the mirror: those with a Store form that reads the same document back. */
function mirrorNamed(watch: Watch, id: unknown): void {
  const named = watch.inFlight.get(id)
  if (!named) return
  watch.inFlight.delete(id)
  const { runtime, keys } = named.watched
  const behavior = runtime.behaviorFor()
  const mirrors = behavior.mirror === 'old-to-new' || (behavior.authoritative === 'new' && runtime.migration.staleSideWrites === 'permissive')
  if (!mirrors) return
  for (const value of named.values()) {
    const key = value === undefined || value === null ? undefined : roundTripStoreKey(keys, value)
    if (key !== undefined) runtime.recordWrite('old', { key, op: named.op })
  }
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
  const [watched] = watch.collections.values()
  const runtime = watched?.runtime
  guarded({ logger: watch.logger, migration: runtime?.name ?? 'unknown', ...(runtime ? { metrics: runtime.metrics } : {}) }, 'write.detection_failed', 'unmirrored-write detection failed', work)
}

function report(runtime: MigrationRuntime, collection: string, detail: string): void {
  // In `off` nothing is mirrored, so nothing is missed.
  const behavior = runtime.behaviorFor()
  if (behavior.mirror === 'none' && behavior.authoritative === 'old') return
  runtime.recordUnmirrored(collection, detail)
}
