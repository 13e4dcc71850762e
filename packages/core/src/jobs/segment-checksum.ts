import type { ComparisonRules } from '../model/compare.js'
import { MapperError } from '../model/errors.js'
import type { Migration } from '../model/migration.js'
import { projectOnto, type RowHash, rowHash } from './row-digest.js'
import { type KeyValue, keyString, type Row, type Store, storeRecordKey } from '../model/store.js'

/** Count and sum of the row digests (`rowHash`) of the records in one segment. */
export interface SegmentChecksum {
  readonly count: number
  readonly sum: bigint
}

/**
 * Which segments to checksum: a segment at `bits` is the top `bits` bits of a record's
 * `rowHash().segment`. `within` restricts to the sub-segments of differing parents (bisection).
 */
export interface SegmentLevel {
  readonly bits: number
  readonly within?: { readonly bits: number; readonly segments: readonly number[] }
}

/**
 * One side of an exhaustive verification, as checksums of the records in the new shape. Both sides
 * must produce identical hashes for equal records: `rowHash` over the canonical text.
 */
export interface SegmentSource {
  readonly name: string
  /** The per-row hash it computes. Default `sha256` (`rowHash`). */
  readonly rowHash?: 'sha256' | 'hashtextextended'
  /**
   * A cheaper built-in hash this source can compute instead: used for a run only when both sides
   * offer it and their `probe`s (the hashes of known inputs) are equal. `nativeFamilies` names the
   * fields this side could render by their type's own output; `source(native)` renders so the
   * fields both sides hold in one family (and the canonical text of the rest).
   */
  readonly builtinHash?: BuiltinRowHash
  checksums(level: SegmentLevel): Promise<ReadonlyMap<number, SegmentChecksum>>
  /** The keys of the records in these segments (at `bits`). */
  keys(level: { readonly bits: number; readonly segments: readonly number[] }): Promise<KeyValue[]>
}

/**
 * Types whose text output depends on nothing but the value (no session setting: DateStyle,
 * TimeZone, extra_float_digits, bytea_output), so two servers render equal values equally, and
 * which reach the core as the same JavaScript value on both sides: `integer` (int2, int4: numbers),
 * `bigint` (int8: strings), `text` (text, varchar), `uuid`, `boolean`. Two sides' fields of one
 * family render identically exactly when their values are equal: the rendering is injective, as
 * `record_out` is, so it neither invents nor hides a difference. (`char(n)`, numeric, floats,
 * timestamps, json and bytea keep their canonical text.)
 */
export type NativeFamily = 'integer' | 'bigint' | 'text' | 'uuid' | 'boolean'

/** The built-in row hash a PostgreSQL source offers (see `postgresSegments`). */
export interface BuiltinRowHash {
  probe(): Promise<string>
  nativeFamilies?(): Promise<ReadonlyMap<string, NativeFamily>>
  source(native?: ReadonlyMap<string, NativeFamily>): SegmentSource
}

export function segmentOf(hash: number, bits: number): number {
  return bits === 0 ? 0 : hash >>> (32 - bits)
}

/**
 * A `SegmentSource` for any store, streamed through `Store.scan` in batches (constant memory): the
 * MongoDB side, or any side whose shape SQL cannot compute (a mapper in code). `project` turns a
 * stored record into the record to hash (the mapper's forward for the old side); a record it
 * rejects still counts, with a digest no real record has, so its segment differs and the row
 * comparison reports it.
 */
export function storeSegments(
  store: Store,
  options: { readonly project: (record: Row, key: string) => Row; readonly rules?: ComparisonRules; readonly batchSize?: number },
): SegmentSource {
  // Large pages: some stores (FerretDB) pay a fixed cost per keyset page; memory stays bounded.
  const batchSize = options.batchSize ?? 10_000
  const keyOf = (row: Row) => storeRecordKey(store, store.keyField, row)
  async function walk(visit: (key: KeyValue, hash: RowHash) => void): Promise<void> {
    let after: KeyValue | undefined
    for (;;) {
      const rows = await store.scan({ ...(after === undefined ? {} : { after }), limit: batchSize })
      for (const row of rows) {
        const key = keyOf(row)
        let hash: RowHash
        try {
          hash = rowHash(options.project(row, keyString(key)), options.rules)
        } catch (error) {
          if (!(error instanceof MapperError)) throw error
          hash = rowHash({ '\u0000unmappable': keyString(key) })
        }
        visit(key, hash)
      }
      if (rows.length < batchSize) return
      after = keyOf(rows.at(-1) as Row)
    }
  }
  return {
    name: store.name,
    async checksums(level) {
      const result = new Map<number, { count: number; sum: bigint }>()
      const parents = level.within ? new Set(level.within.segments) : undefined
      await walk((_key, hash) => {
        if (level.within && !(parents as Set<number>).has(segmentOf(hash.segment, level.within.bits))) return
        const segment = segmentOf(hash.segment, level.bits)
        const entry = result.get(segment) ?? { count: 0, sum: 0n }
        entry.count++
        entry.sum += hash.digest
        result.set(segment, entry)
      })
      return result
    },
    async keys(level) {
      const wanted = new Set(level.segments)
      const keys: KeyValue[] = []
      await walk((key, hash) => {
        if (wanted.has(segmentOf(hash.segment, level.bits))) keys.push(key)
      })
      return keys
    },
  }
}

/** The old side of a migration, streamed: old records mapped forward. */
export function oldStoreSegments(migration: Migration<any, any>, options: { batchSize?: number } = {}): SegmentSource {
  return storeSegments(migration.old, {
    project: (record, key) => migration.mapper.forward(record, { key, migration: migration.name }),
    ...(migration.compare ? { rules: migration.compare } : {}),
    ...options,
  })
}

/**
 * The new side of a migration, streamed: new records reduced to `fields` (default: the new
 * schema's fields), so columns the mapper does not produce (defaults, timestamps) do not count.
 */
export function newStoreSegments(migration: Migration<any, any>, options: { fields?: readonly string[]; batchSize?: number } = {}): SegmentSource {
  const fields = options.fields ?? mappedFields(migration)
  return storeSegments(migration.new, {
    project: (record) => projectOnto(record, fields),
    ...(migration.compare ? { rules: migration.compare } : {}),
    ...(options.batchSize ? { batchSize: options.batchSize } : {}),
  })
}

/** The fields the mapper produces: the new schema's object shape. */
export function mappedFields(migration: Migration<any, any>): string[] {
  const shape = (migration.mapper.newSchema as { shape?: Record<string, unknown> }).shape
  if (!shape) throw new TypeError(`migration "${migration.name}": the mapper's new schema is not a zod object; pass the fields to verify explicitly`)
  return Object.keys(shape)
}
