import { type Kysely, sql } from 'kysely'
import type { ComparisonRules } from '../model/compare.js'
import { ConfigError } from '../model/errors.js'
import { sqlIdentifier } from '../model/field-map.js'
import type { FieldMap } from '../model/field-rule.js'
import { BUILTIN_ROW_HASH, ROW_HASH_PROBE_SQL, type RowHashScheme, SHA256_ROW_HASH } from './row-digest.js'
import type { NativeFamily, SegmentChecksum, SegmentLevel, SegmentSource } from './segment-checksum.js'
import { compositeKey, type KeyPart, type KeyValue } from '../model/store.js'

/**
 * How a column's values look in the records the store hands to the core, which decides their
 * canonical text (canonical.ts):
 * - `string`: text, varchar, uuid, citext; and `bigint`/`numeric`, which `pg` returns as strings
 *   (a JSON string, unless the comparison rules declare the field `numeric`);
 * - `integer`: int2/int4 (JS numbers); `float`: float4/float8 (compared through `numeric`,
 *   15 significant digits: the rare value past that shows up as a segment to compare row by row);
 * - `boolean`, `timestamptz`, `timestamp` (taken as UTC, as `pg` does when the process runs in
 *   UTC), `json` (json/jsonb and arrays: `cutover.canonical_json`), `bytea`.
 */
export type ColumnKind = 'string' | 'decimal' | 'integer' | 'float' | 'boolean' | 'timestamptz' | 'timestamp' | 'json' | 'bytea'

/** One field of the hashed record: its name and the SQL computing it from a row aliased `t`. */
export interface HashedField {
  readonly name: string
  readonly sql: string
  readonly kind: ColumnKind
}

export interface PostgresSegmentsOptions {
  readonly db: Kysely<any>
  /** `name` or `schema.name`. */
  readonly table: string
  /** The key column, or the key columns of a composite key in key order. */
  readonly key: string | readonly string[]
  readonly fields: readonly HashedField[]
  readonly rules?: ComparisonRules
  readonly name?: string
  /** The per-row hash. Default SHA-256 (`rowHash`); see `BUILTIN_ROW_HASH` for the other. */
  readonly rowHash?: RowHashScheme
  /**
   * With the built-in hash only: fields rendered by PostgreSQL's own output of their type (see
   * `NativeFamily`) inside one `row(…)::text`, instead of their canonical JSON text. Chosen for a
   * run by `verifyExhaustive`, for the fields both sides hold in the same family.
   */
  readonly native?: ReadonlyMap<string, NativeFamily>
}

/** Type names (`pg_typeof`) of each native family. */
const NATIVE_FAMILIES: Readonly<Record<string, NativeFamily>> = {
  smallint: 'integer',
  integer: 'integer',
  bigint: 'bigint',
  text: 'text',
  'character varying': 'text',
  uuid: 'uuid',
  boolean: 'boolean',
}

const NATIVE_RENDERING: Readonly<Record<NativeFamily, (e: string) => string>> = {
  integer: (e) => `${e}::integer`,
  bigint: (e) => e,
  text: (e) => `${e}::text`,
  uuid: (e) => e,
  boolean: (e) => e,
}

/**
 * A `SegmentSource` computed inside PostgreSQL: one aggregate query per level, the canonical text
 * of each row built in SQL so that its SHA-256 equals `canonicalHash` of the record the store would
 * return. Nothing but `(segment, count, sum)` crosses the wire.
 */
export function postgresSegments(options: PostgresSegmentsOptions): SegmentSource {
  const { db } = options
  const table = qualified(options.table)
  const keyColumns = typeof options.key === 'string' ? [options.key] : [...options.key]
  const keyRefs = keyColumns.map((column) => `t.${sqlIdentifier(column)}`)
  for (const [i, ref] of keyRefs.entries()) {
    if (!options.fields.some((field) => field.sql === ref)) {
      throw new ConfigError([{ source: 'fields', value: keyColumns[i], message: `the hashed fields of ${options.table} must include its key column "${keyColumns[i]}"` }])
    }
  }
  const scheme = options.rowHash ?? SHA256_ROW_HASH
  const rules = options.rules ?? {}
  const native = scheme === BUILTIN_ROW_HASH ? options.native : undefined
  // A native row carries no field names (canonical text does): they seed its hash instead, so two
  // sides hashing different fields never agree by position.
  const hash = native ? scheme.value(nativeRowSql(options.fields, native, rules), fieldNamesSeed(options.fields, rules)) : scheme.value(canonicalTextSql(options.fields, rules))
  // The row hash is computed once per row and used twice (segment, digest): a set-returning
  // `unnest` keeps PostgreSQL from inlining the subquery (which would hash twice) while, unlike
  // `offset 0`, still allowing a parallel scan with partial aggregation.
  const keyList = keyRefs.map((ref, i) => `${ref} as k${i}`).join(', ')
  const hashed = (withKeys = false) =>
    `(select ${scheme.segment('x')} as h, ${scheme.digest('x')} as d${withKeys ? `, ${keyRefs.map((_, i) => `k${i}`).join(', ')}` : ''} from (select unnest(array[${hash}]) as x${withKeys ? `, ${keyList}` : ''} from ${table} as t) as r) as y`
  const segment = (bits: number) => (bits === 0 ? '0' : `(h >> ${32 - bits})`)
  let prepared: Promise<void> | undefined
  const prepare = () => (prepared ??= options.fields.some((f) => f.kind === 'json') ? ensureCanonicalJsonFunction(db) : Promise.resolve())
  return {
    name: options.name ?? `postgres:${options.table}`,
    rowHash: scheme.name,
    ...(scheme === BUILTIN_ROW_HASH
      ? {}
      : {
          builtinHash: {
            probe: async () => (await sql<{ probe: string }>`${sql.raw(ROW_HASH_PROBE_SQL)}`.execute(db)).rows[0]?.probe ?? '',
            nativeFamilies: () => nativeFamilies(db, options.table, options.fields, rules),
            source: (native?: ReadonlyMap<string, NativeFamily>) => postgresSegments({ ...options, rowHash: BUILTIN_ROW_HASH, ...(native ? { native } : {}) }),
          },
        }),
    async checksums(level: SegmentLevel): Promise<ReadonlyMap<number, SegmentChecksum>> {
      await prepare()
      const within = level.within ? sql`where ${sql.raw(segment(level.within.bits))} = any(${level.within.segments.map(String)}::bigint[])` : sql``
      const rows = await sql<{ segment: string; n: string; s: string }>`
        select ${sql.raw(segment(level.bits))} as segment, count(*) as n, sum(d)::text as s
        from ${sql.raw(hashed())} ${within} group by 1`.execute(db)
      return new Map(rows.rows.map((row) => [Number(row.segment), { count: Number(row.n), sum: BigInt(row.s) }]))
    },
    async keys(level): Promise<KeyValue[]> {
      await prepare()
      const rows = await sql<Record<string, KeyPart>>`
        select ${sql.raw(keyRefs.map((_, i) => `k${i}`).join(', '))} from ${sql.raw(hashed(true))}
        where ${sql.raw(segment(level.bits))} = any(${level.segments.map(String)}::bigint[])`.execute(db)
      return rows.rows.map((row) => (keyRefs.length === 1 ? (row.k0 as KeyPart) : compositeKey(...keyRefs.map((_, i) => row[`k${i}`] as KeyPart))))
    },
  }
}

/**
 * The native family of each hashed field that may be rendered natively (`NativeFamily`), from the
 * types PostgreSQL gives the fields' expressions on this table (read on a row of NULLs, so an
 * empty table answers too). Fields under a `numeric` rule keep their canonical text.
 */
async function nativeFamilies(db: Kysely<any>, table: string, fields: readonly HashedField[], rules: ComparisonRules): Promise<ReadonlyMap<string, NativeFamily>> {
  if (fields.length === 0) return new Map()
  const numeric = new Set(rules.numeric ?? [])
  const types = fields.map((field, i) => `pg_typeof(${field.sql})::text as "f${i}"`).join(', ')
  const { rows } = await sql<Record<string, string>>`select ${sql.raw(types)} from (select (null::${sql.raw(qualified(table))}).*) as t`.execute(db)
  const row = rows[0] ?? {}
  const result = new Map<string, NativeFamily>()
  for (const [i, field] of fields.entries()) {
    const family = NATIVE_FAMILIES[row[`f${i}`] ?? '']
    if (family && !numeric.has(field.name) && !numeric.has('*')) result.set(field.name, family)
  }
  return result
}

/** A 31-bit FNV-1a of the kept field names, in order: the same on both sides when they hash the same fields. */
function fieldNamesSeed(fields: readonly HashedField[], rules: ComparisonRules): number {
  let hash = 0x811c9dc5
  for (const char of JSON.stringify(keptFields(fields, rules).map((field) => field.name))) {
    hash = Math.imul(hash ^ char.charCodeAt(0), 0x01000193) >>> 0
  }
  return hash & 0x7fffffff
}

/**
 * SQL for a row's text when both sides render it alike (built-in hash only): the kept fields in
 * name order as one `row(…)::text`, each native field as its type's output, the others as their
 * canonical value text (NULL where canonical.ts drops or writes null). Not the canonical text, so
 * only comparable with another source built with the same `native` map.
 */
function nativeRowSql(fields: readonly HashedField[], native: ReadonlyMap<string, NativeFamily>, rules: ComparisonRules): string {
  const kept = keptFields(fields, rules)
  if (kept.length === 0) return `'()'`
  const dropNulls = rules.nullEqualsMissing ?? true
  const values = kept.map((field) => {
    const family = native.get(field.name)
    if (family) return NATIVE_RENDERING[family](`(${field.sql})`)
    const isNull = nullTestSql(field)
    return `case when ${isNull} then ${dropNulls ? 'null' : `'null'`} else ${valueTextSql(field, rules)} end`
  })
  return `row(${values.join(', ')})::text`
}

/** The column kinds of a table, from the catalog. */
export async function columnKinds(db: Kysely<any>, table: string): Promise<Record<string, ColumnKind>> {
  const [schema, name] = table.includes('.') ? (table.split('.') as [string, string]) : ['public', table]
  const rows = await sql<{ column_name: string; udt_name: string; data_type: string }>`
    select column_name, udt_name, data_type from information_schema.columns
    where table_schema = ${schema} and table_name = ${name}`.execute(db)
  if (rows.rows.length === 0) throw new ConfigError([{ source: 'table', value: table, message: `table ${table} not found (or has no columns)` }])
  return Object.fromEntries(rows.rows.map((row) => [row.column_name, kindOf(row.udt_name, row.data_type)]))
}

function kindOf(udt: string, dataType: string): ColumnKind {
  if (dataType === 'ARRAY') return 'json'
  switch (udt) {
    case 'int2':
    case 'int4':
    case 'oid':
      return 'integer'
    case 'int8':
    case 'numeric':
      return 'decimal'
    case 'float4':
    case 'float8':
      return 'float'
    case 'bool':
      return 'boolean'
    case 'timestamptz':
      return 'timestamptz'
    case 'timestamp':
    case 'date':
      return 'timestamp'
    case 'json':
    case 'jsonb':
      return 'json'
    case 'bytea':
      return 'bytea'
    default:
      return 'string'
  }
}

/**
 * The segments of a table as it is: the new side, hashing `fields` (the fields the mapper
 * produces) with the kinds of their columns.
 */
export async function postgresTableSegments(options: {
  readonly db: Kysely<any>
  readonly table: string
  readonly key: string | readonly string[]
  readonly fields: readonly string[]
  readonly rules?: ComparisonRules
  readonly kinds?: Readonly<Record<string, ColumnKind>>
}): Promise<SegmentSource> {
  const kinds = { ...(await columnKinds(options.db, options.table)), ...options.kinds }
  const fields = options.fields.map((name) => {
    const kind = kinds[name]
    if (!kind) throw new ConfigError([{ source: 'fields', value: name, message: `table ${options.table} has no column "${name}"` }])
    return { name, sql: `t.${sqlIdentifier(name)}`, kind }
  })
  return postgresSegments({ db: options.db, table: options.table, key: options.key, fields, ...(options.rules ? { rules: options.rules } : {}) })
}

/**
 * The segments of the old table as the mapper would make it: each new field computed by the field
 * map's `forwardSql`, hashed with the kind of the new table's column (the mapped record has the new
 * shape). Throws `ConfigError` if a field has no SQL form (a `convert` without `forwardSql`):
 * stream that side with `oldStoreSegments` instead.
 */
export async function postgresMappedSegments(options: {
  readonly db: Kysely<any>
  /** The old table. */
  readonly table: string
  readonly key: string | readonly string[]
  readonly fieldMap: FieldMap
  /** The new table's column kinds (`columnKinds(newDb, newTable)`). */
  readonly kinds: Readonly<Record<string, ColumnKind>>
  /** The new fields to hash; default every field the map produces. */
  readonly fields?: readonly string[]
  readonly rules?: ComparisonRules
}): Promise<SegmentSource> {
  const expressions = options.fieldMap.forwardSql((field) => `t.${sqlIdentifier(field)}`)
  const produced = options.fieldMap.rules.flatMap((rule) => rule.newFields)
  const names = options.fields ?? produced
  const fields = names.map((name) => {
    const expression = expressions[name]
    const kind = options.kinds[name]
    if (expression === undefined || kind === undefined) {
      throw new ConfigError([
        { source: 'fieldMap', value: name, message: `field "${name}" has no SQL form in the field map (or no column in the new table); verify this side with oldStoreSegments` },
      ])
    }
    return { name, sql: expression, kind }
  })
  return postgresSegments({ db: options.db, table: options.table, key: options.key, fields, ...(options.rules ? { rules: options.rules } : {}) })
}

/** SQL for the canonical text of the record `{ field: value, … }` (canonical.ts, top-level object). */
export function canonicalTextSql(fields: readonly HashedField[], rules: ComparisonRules): string {
  const kept = keptFields(fields, rules)
  if (kept.length > 99) throw new ConfigError([{ source: 'fields', value: kept.length, message: 'in-database checksums support up to 99 fields' }])
  if (kept.length === 0) return `'{}'`
  const dropNulls = rules.nullEqualsMissing ?? true
  const pieces = kept.map((field) => {
    const name = sqlStringLiteral(`${JSON.stringify(field.name)}:`)
    const isNull = nullTestSql(field)
    const value = valueTextSql(field, rules)
    return dropNulls ? `case when ${isNull} then null else ${name} || ${value} end` : `${name} || case when ${isNull} then 'null' else ${value} end`
  })
  return `'{' || concat_ws(',', ${pieces.join(', ')}) || '}'`
}

/** The fields the comparison rules keep, in name order; rules SQL cannot follow are refused. */
function keptFields(fields: readonly HashedField[], rules: ComparisonRules): HashedField[] {
  const unsupported = [...(rules.ignore ?? []).filter((pattern) => pattern.includes('.')), ...(rules.unordered ?? [])]
  if (unsupported.length > 0) {
    throw new ConfigError(
      unsupported.map((pattern) => ({
        source: 'compare',
        value: pattern,
        message: `comparison rule "${pattern}" reaches inside a field or reorders an array; in-database checksums support top-level ignore rules only: stream this side (storeSegments)`,
      })),
    )
  }
  const ignored = new Set(rules.ignore ?? [])
  return fields.filter((field) => !ignored.has(field.name) && !ignored.has('*')).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
}

/** Whether a field is null as canonical.ts sees it (a JSON null inside json/jsonb too). */
function nullTestSql(field: HashedField): string {
  return field.kind === 'json' ? `(${field.sql}) is null or jsonb_typeof(to_jsonb(${field.sql})) = 'null'` : `(${field.sql}) is null`
}

function valueTextSql(field: HashedField, rules: ComparisonRules): string {
  const e = `(${field.sql})`
  const precision = rules.timestampPrecision ?? 'ms'
  const format = precision === 's' ? 'YYYY-MM-DD"T"HH24:MI:SS"Z"' : precision === 'us' ? 'YYYY-MM-DD"T"HH24:MI:SS.MS"000Z"' : 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'
  const numeric = (rules.numeric ?? []).some((pattern) => pattern === field.name || pattern === '*')
  switch (field.kind) {
    case 'integer':
      return `${e}::text`
    case 'float':
      return `trim_scale(${e}::numeric)::text`
    case 'decimal':
      return numeric ? `trim_scale(${e}::numeric)::text` : `to_json(${e}::text)::text`
    case 'boolean':
      return `case when ${e} then 'true' else 'false' end`
    case 'timestamptz':
      return `to_json(to_char(${e} at time zone 'UTC', '${format}'))::text`
    case 'timestamp':
      return `to_json(to_char(${e}::timestamp, '${format}'))::text`
    case 'json':
      return `cutover.canonical_json(to_jsonb(${e}), ${rules.nullEqualsMissing === false ? 'true' : 'false'})`
    case 'bytea':
      return `to_json('\\x' || encode(${e}, 'hex'))::text`
    default:
      // A numeric path holding text that is not a decimal stays a string, as in normalizeDecimal.
      return numeric
        ? `case when ${e}::text ~ '^\\s*[+-]?([0-9]+\\.?[0-9]*|\\.[0-9]+)([eE][+-]?[0-9]+)?\\s*$' then trim_scale(${e}::text::numeric)::text else to_json(${e}::text)::text end`
        : `to_json(${e}::text)::text`
  }
}

function qualified(table: string): string {
  return table.split('.').map(sqlIdentifier).join('.')
}

function sqlStringLiteral(value: string): string {
  return `'${value.replace(/'/g, "''")}'`
}

/**
 * Creates `cutover.canonical_json(jsonb, keep_nulls)` in the database being checksummed: the
 * canonical text (canonical.ts) of a JSON value, so json/jsonb columns hash as `canonicalHash`
 * hashes the parsed value. Null members are dropped unless `keep_nulls` (nullEqualsMissing false).
 * Keys sort by byte order, equal to canonical.ts's UTF-16 order for keys outside U+E000–U+FFFF.
 */
export async function ensureCanonicalJsonFunction(db: Kysely<any>): Promise<void> {
  await db.transaction().execute(async (trx) => {
    await sql`select pg_advisory_xact_lock(hashtext('cutover.canonical_json'))`.execute(trx)
    await sql`create schema if not exists cutover`.execute(trx)
    await sql.raw(CANONICAL_JSON_FUNCTION).execute(trx)
  })
}

const CANONICAL_JSON_FUNCTION = `
create or replace function cutover.canonical_json(v jsonb, keep_nulls boolean) returns text
language sql immutable parallel safe as $fn$
  select case jsonb_typeof(v)
    when 'object' then '{' || coalesce((
      select string_agg(to_json(k)::text || ':' || cutover.canonical_json(e, keep_nulls), ',' order by k collate "C")
      from jsonb_each(v) as m(k, e) where keep_nulls or jsonb_typeof(e) <> 'null'), '') || '}'
    when 'array' then '[' || coalesce((
      select string_agg(cutover.canonical_json(e, keep_nulls), ',' order by i)
      from jsonb_array_elements(v) with ordinality as a(e, i)), '') || ']'
    when 'string' then to_json(v #>> '{}')::text
    when 'number' then trim_scale((v #>> '{}')::numeric)::text
    when 'boolean' then v #>> '{}'
    else 'null'
  end
$fn$`
