import { type Cutover, type KeyValue, keyString, type MigrationRuntime, type Row, type Side, type Store, storeRecordKey } from '@cutover/core'
import type { CompiledQuery, QueryResult, SelectQueryNode } from 'kysely'
import { KyselyTableStore } from '../store/kysely-table-store.js'
import type { MigratedTables } from '../dialect/migrated-tables.js'
import { ComparisonBatch } from './comparison-batch.js'
import { recentlyUnmirrored } from '../write/unmirrored-writes.js'
import { lookedUpKeys, type SimpleSelect, simpleSelect, translateSelect, type TranslatedSelect } from './select-translation.js'

/**
 * Serves the application's SELECTs on migrated tables according to the phase:
 *
 * - from the old table as written, or (ramp, for routing keys in the percentage; cutover;
 *   complete) from the new table, translated through the field map and mapped back to the old
 *   shape. A new-store failure falls back to the old store; a query that cannot be translated
 *   stays on the old store and is counted (`read.untranslatable`). In ramp, a read of keys this
 *   process changed and the mirror has not applied yet (any key, for a read not by key) is served
 *   by the old store, so the application reads its own writes (`read.fresh_fallback`); so is
 *   every read of the migration for a minute after a write this process could not mirror.
 * - a sample (`compareSample`) is compared with the other store after the caller has its rows,
 *   off the request path: nothing the comparison does can delay or fail the caller.
 *
 * Reads inside a transaction are left alone: they may see the transaction's own uncommitted writes,
 * which the other store cannot have.
 */
export class ReadRouter {
  readonly #tables: MigratedTables
  readonly #cutover: Cutover
  readonly #lookups: ComparisonBatch

  constructor(tables: MigratedTables, cutover: Cutover) {
    this.#tables = tables
    this.#cutover = cutover
    this.#lookups = new ComparisonBatch({ onError: (runtime, error) => this.#comparisonFailed(runtime, error) })
  }

  select<R>(query: CompiledQuery, inTransaction: boolean, executeOld: () => Promise<QueryResult<R>>): Promise<QueryResult<R>> {
    const node = query.query as SelectQueryNode
    // Cheap checks first: most SELECTs name no migrated table, or arrive in a phase with nothing
    // to do for reads (off, shadow, rollback), and must cost next to nothing (not even a promise).
    const froms = node.from?.froms
    const table = froms?.length === 1 ? this.#tables.ofFromItem(froms[0])?.table : undefined
    if (!table || inTransaction || !readsMatter(table.runtime)) return executeOld()
    return this.#route(node, query, executeOld)
  }

  /** Not async: a read that stays on the old store is one `then` on the caller's query (`#asWritten`). */
  #route<R>(node: SelectQueryNode, query: CompiledQuery, executeOld: () => Promise<QueryResult<R>>): Promise<QueryResult<R>> {
    const select = simpleSelect(node, this.#tables)
    if (!select) return executeOld()
    const { runtime, side } = select.table
    // Read-your-writes: with a change of these keys (or, not by key, of any) still on its way to the
    // new store, the read goes to the old one (`readSideFor`).
    if (side === 'old' && runtime.readSideFor(lookedUpKeys(select) as readonly KeyValue[] | undefined) === 'new' && !this.#unmirroredLately(runtime)) {
      return this.#fromNewOrOld(select, query, runtime, executeOld)
    }
    return this.#asWritten(select, query, executeOld)
  }

  async #fromNewOrOld<R>(select: SimpleSelect, query: CompiledQuery, runtime: MigrationRuntime, executeOld: () => Promise<QueryResult<R>>): Promise<QueryResult<R>> {
    const served = await this.#fromNew<R>(select, query, runtime)
    return served ?? this.#asWritten(select, query, executeOld)
  }

  /** The query as the application wrote it, on the table it names; sampled for comparison. */
  #asWritten<R>(select: SimpleSelect, query: CompiledQuery, execute: () => Promise<QueryResult<R>>): Promise<QueryResult<R>> {
    const { runtime, side } = select.table
    const started = performance.now()
    return execute().then(
      (result) => {
        runtime.recordRead(side, true, performance.now() - started)
        if (runtime.sampleComparison()) this.#sample(select, query, result.rows as Row[], started)
        return result
      },
      (error: unknown) => {
        runtime.recordRead(side, false, performance.now() - started)
        throw error
      },
    )
  }

  /** Queues a read the caller has its rows of for comparison with the other store. */
  #sample(select: SimpleSelect, query: CompiledQuery, rows: Row[], started: number): void {
    const { runtime, side } = select.table
    const keys = lookedUpKeys(select)
    if (keys) {
      // A key lookup: compared together with the other lookups of the next few milliseconds.
      this.#lookups.add({ runtime, side, keys: keys as KeyValue[], wholeRows: select.columns === '*' ? rows : undefined, query: query.sql, since: started })
    } else {
      setImmediate(() => void this.#compareAsWritten(select, query, rows, started).catch((error: unknown) => this.#comparisonFailed(runtime, error)))
    }
  }

  /** The old-table query served by the new store, or undefined to serve it from the old one. */
  async #fromNew<R>(select: SimpleSelect, query: CompiledQuery, runtime: MigrationRuntime): Promise<QueryResult<R> | undefined> {
    const translated = this.#translate(select)
    const store = runtime.migration.new
    if (!translated || !(store instanceof KyselyTableStore)) {
      this.#cutover.metrics.increment('read.untranslatable', { migration: runtime.name })
      if (runtime.phase === 'complete') {
        // In `complete` nothing mirrors to the old table any more: this read may be stale.
        this.#cutover.logger.warn('untranslatable read served by the old table, which no longer receives writes', { migration: runtime.name, query: query.sql })
      }
      return undefined
    }
    const started = performance.now()
    let records: Row[]
    let rows: Row[]
    try {
      records = await store.selectNode(translated.node, query.queryId)
      const { mapper, key } = runtime.migration
      rows = records.map((record) => translated.project(mapper.backward(record, { key: keyString(storeRecordKey(store, key.new, record)), migration: runtime.name })))
    } catch (error) {
      runtime.recordRead('new', false, performance.now() - started)
      this.#cutover.metrics.increment('read.fallback', { migration: runtime.name })
      this.#cutover.logger.warn('new store failed a read; served by the old store', { migration: runtime.name, error })
      return undefined
    }
    runtime.recordRead('new', true, performance.now() - started)
    if (runtime.sampleComparison()) {
      const { key } = runtime.migration
      const keys = lookedUpKeys(select) ?? records.map((record) => storeRecordKey(store, key.new, record))
      this.#lookups.add({ runtime, side: 'new', keys: keys as KeyValue[], wholeRows: records, query: query.sql, since: started })
    }
    return { rows: rows as R[] }
  }

  /**
   * A write this process could not mirror happened lately (`unmirrored-writes.ts`), or one the
   * change log mirrors but whose keys are unknown here is not applied yet: the new store may lack it.
   */
  #unmirroredLately(runtime: MigrationRuntime): boolean {
    const reason = recentlyUnmirrored(runtime) ? 'unmirrored_write' : runtime.unkeyedWritePending('old') ? 'unkeyed_write' : undefined
    if (reason === undefined) return false
    this.#cutover.metrics.increment('read.fresh_fallback', { migration: runtime.name, reason })
    return true
  }

  #translate(select: SimpleSelect): TranslatedSelect | undefined {
    const { migration } = select.table.runtime
    const store = migration.new
    if (!(store instanceof KyselyTableStore)) return undefined
    const shape = (migration.mapper.oldSchema as { shape?: Record<string, unknown> }).shape
    return translateSelect(select, {
      table: store.table,
      key: migration.key,
      fieldMap: migration.mapper.fieldMap,
      oldFields: shape ? Object.keys(shape) : undefined,
    })
  }

  /**
   * Compares what the query returned with the other store. Where the query translates and picks a
   * definite set of rows, the translated query runs on the new store, so rows only the new store
   * returns show up too; otherwise the other store is read by the keys the query returned.
   */
  async #compareAsWritten(select: SimpleSelect, query: CompiledQuery, rows: readonly Row[], since: number): Promise<void> {
    const { runtime, side } = select.table
    const { key, old: oldStore, new: newStore } = runtime.migration
    const keyField = key[side]
    const keyColumns = select.table.keys
    if (rows.some((row) => keyColumns.some((column) => row[column] === undefined || row[column] === null))) {
      this.#cutover.metrics.increment('compare.skipped', { migration: runtime.name, reason: 'no_key_in_result' })
      return
    }
    const keys = rows.map((row) => storeRecordKey(runtime.migration[side], keyField, row))
    const whole = select.columns === '*'
    if (side === 'new') {
      const newRows = whole ? rows : await read(runtime, 'new', newStore, keys)
      runtime.compareRead(await read(runtime, 'old', oldStore, keys), newRows, { query: query.sql, since })
      return
    }
    const oldRows = whole ? rows : await read(runtime, 'old', oldStore, keys)
    const translated = select.arbitrarySubset ? undefined : this.#translate(select)
    let newRows: readonly Row[]
    if (translated && newStore instanceof KyselyTableStore) {
      const started = performance.now()
      try {
        newRows = await newStore.selectNode(translated.node, query.queryId)
      } catch (error) {
        runtime.recordRead('new', false, performance.now() - started)
        throw error
      }
      runtime.recordRead('new', true, performance.now() - started)
    } else {
      newRows = await read(runtime, 'new', newStore, keys)
    }
    runtime.compareRead(oldRows, newRows, { query: query.sql, since })
  }

  #comparisonFailed(runtime: MigrationRuntime, error: unknown): void {
    this.#cutover.metrics.increment('compare.failed', { migration: runtime.name })
    this.#cutover.logger.warn('read comparison failed; the caller was not affected', { migration: runtime.name, error })
  }
}

/** Whether the phase routes reads to the new store or compares them: otherwise reads pass straight through. */
function readsMatter(runtime: MigrationRuntime): boolean {
  const behavior = runtime.behaviorFor()
  return behavior.reads !== 'old' || behavior.compareReads
}

/** Records of `keys` from one store, timed and reported to the guards. */
async function read(runtime: MigrationRuntime, side: Side, store: Store, keys: readonly KeyValue[]): Promise<Row[]> {
  const started = performance.now()
  try {
    const found = keys.length === 0 ? new Map<string, Row>() : await store.get(keys)
    runtime.recordRead(side, true, performance.now() - started)
    return [...found.values()]
  } catch (error) {
    runtime.recordRead(side, false, performance.now() - started)
    throw error
  }
}
