import { CutoverError, MapperError } from '../model/errors.js'
import { type KeyValue, keyString, type Row, type Store, type WriteMode } from '../model/store.js'
import { describeError } from './background.js'

/** What became of one key. */
export type ApplyOutcome =
  | { readonly key: string; readonly status: 'applied' }
  | { readonly key: string; readonly status: 'dead-lettered'; readonly reasonCode: string; readonly reason: string }

/** One key waiting in (or taken from) a mirror queue. */
export interface PendingKey {
  key: KeyValue
  op: 'upsert' | 'delete'
  postImage: Row | undefined
  /** Whether `postImage` may be applied as it is (see `ChangeEvent.postImageExact`). */
  exact: boolean
  /** How many rechecks led here, to stop a key that never converges from looping. */
  recheckGeneration: number
  waiters: Array<(outcome: ApplyOutcome) => void>
  /** False when the caller keeps its own record of failures (a replay updates the existing dead letter). */
  deadLetterOnFailure: boolean
  /** When the oldest unapplied change of this key was queued (`performance.now()`). */
  queuedAt: number
}

/** A key the mapper refused: final, a retry cannot fix it. */
export interface Rejection {
  readonly entry: PendingKey
  /** The source state that was refused (kept in the dead letter). */
  readonly state: Row
  readonly reasonCode: string
  readonly reason: string
  readonly fields: readonly string[]
}

/** A batch mapped to the target: what to write, what to delete, and what the mapper refused. */
export interface TargetWrites {
  readonly upserts: readonly Row[]
  readonly deletes: readonly KeyValue[]
  /** Keys whose state is in `upserts` or `deletes`. */
  readonly applied: readonly PendingKey[]
  readonly rejected: readonly Rejection[]
}

/** How a batch is read, mapped and written: the queue's options that concern one apply. */
export interface BatchStores {
  readonly source: Store
  readonly target: Store
  readonly translate: (record: Row, key: string) => Row
  readonly targetKey: (key: KeyValue) => KeyValue
  readonly versionField: string | undefined
}

/**
 * The source state of each key, by `keyString`: undefined for a key absent from the source. A
 * post-image stands for the source's state when it is exact, or when the version guard keeps an
 * older one from overwriting a newer one; every other key is read back, in one `get`.
 */
export async function readSource(batch: readonly PendingKey[], stores: BatchStores): Promise<ReadonlyMap<string, Row | undefined>> {
  const versioned = stores.versionField !== undefined
  const imageOf = (entry: PendingKey): Row | undefined => (entry.op === 'upsert' && (entry.exact || versioned) ? entry.postImage : undefined)
  const toRead = batch.filter((entry) => imageOf(entry) === undefined)
  const current = toRead.length > 0 ? await stores.source.get(toRead.map((entry) => entry.key)) : new Map<string, Row>()
  return new Map(batch.map((entry) => [keyString(entry.key), imageOf(entry) ?? current.get(keyString(entry.key))]))
}

/** Maps each key's source state to the target: a record to upsert, or a key to delete. */
export function mapForward(batch: readonly PendingKey[], states: ReadonlyMap<string, Row | undefined>, stores: BatchStores): TargetWrites {
  const upserts: Row[] = []
  const deletes: KeyValue[] = []
  const applied: PendingKey[] = []
  const rejected: Rejection[] = []
  for (const entry of batch) {
    const id = keyString(entry.key)
    const state = states.get(id)
    if (state === undefined) {
      deletes.push(stores.targetKey(entry.key))
      applied.push(entry)
      continue
    }
    try {
      upserts.push(stores.translate(state, id))
      applied.push(entry)
    } catch (error) {
      const reasonCode = error instanceof CutoverError ? error.code : 'MAPPER_REJECTED'
      const fields = error instanceof MapperError ? error.fields : []
      rejected.push({ entry, state, reasonCode, reason: describeError(error), fields })
    }
  }
  return { upserts, deletes, applied, rejected }
}

/** One `upsert` (version-guarded if configured) and one `delete`. Throws on store failure. */
export async function writeTarget(writes: TargetWrites, stores: BatchStores): Promise<void> {
  const mode: WriteMode = stores.versionField ? { kind: 'version-guard', field: stores.versionField } : { kind: 'overwrite' }
  if (writes.upserts.length > 0) await stores.target.upsert(writes.upserts, mode)
  if (writes.deletes.length > 0) await stores.target.delete(writes.deletes)
}
