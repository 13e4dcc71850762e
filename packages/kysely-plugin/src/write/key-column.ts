import type { KeyValue } from '@cutover/core'
import { CompiledQuery, type QueryResult } from 'kysely'
import type { MigratedTable } from '../dialect/migrated-tables.js'

/** Runs a query of Cutover's own on a connection of the real driver, off the application's path. */
export type RunAside = (query: CompiledQuery) => Promise<QueryResult<unknown>>

/**
 * Whether the keys a write names in its text (`statement-keys.ts`) can stand for the keys
 * `RETURNING` would give. They can when the database returns the key column exactly as the value
 * was written (so both name the same key in the mirror queue), and nothing rewrites a row's key on
 * the way in. That depends on the table, so it is looked up once per table, from the PostgreSQL
 * catalog, on a connection of its own while the application's writes go on with `RETURNING`:
 *
 * - the key column is `smallint`/`integer`/`bigint` (values: safe integers, bigints, canonical
 *   decimal strings), `uuid` (lowercase canonical strings: PostgreSQL returns `A0…` as `a0…`), or
 *   `text`/`varchar` under a deterministic collation (any string);
 * - the table is a plain table without inheritance children, without rules, and without
 *   `BEFORE … FOR EACH ROW` triggers on insert or update, which could give a row another key.
 *
 * Anything else, a failed lookup, or a table not found (yet) keeps `RETURNING`. A failed or empty
 * lookup is tried again after `RETRY_MS`, an answer after `REFRESH_MS` (a trigger added later is
 * seen within that time).
 */
export class KeyColumns {
  readonly #runAside: RunAside | undefined
  readonly #now: () => number
  readonly #known = new Map<MigratedTable, KeyForm>()

  /** Without `runAside` (not PostgreSQL) nothing is looked up and every write keeps RETURNING. */
  constructor(runAside: RunAside | undefined, now: () => number = Date.now) {
    this.#runAside = runAside
    this.#now = now
  }

  /**
   * Whether every key is in the form the table's key column returns (for a composite key, each part
   * in the form of its column). False until that is known.
   */
  accepts(table: MigratedTable, keys: readonly KeyValue[]): boolean {
    if (!this.#runAside) return false
    const form = this.#known.get(table)
    if (form?.kind === 'accepts' && this.#now() < form.until) return keys.every(form.accepts)
    // Looked up again now and then: a trigger or a type change may come later. Until the answer is
    // in, RETURNING.
    if (form === undefined || form.kind === 'accepts' || ((form.kind === 'retry' || form.kind === 'returning') && this.#now() >= form.at)) void this.lookUp(table)
    return false
  }

  /** @internal looks the table's key column up now; resolves once `accepts` answers from it. Never rejects. */
  async lookUp(table: MigratedTable): Promise<void> {
    if (!this.#runAside) return
    this.#known.set(table, { kind: 'looking-up' })
    const [schema, name] = table.name.includes('.') ? table.name.split('.') : ['public', table.name]
    try {
      const { rows } = await this.#runAside(CompiledQuery.raw(LOOKUP_SQL, [schema, name, table.keys]))
      const accepts = keyAcceptor(table.keys, rows as CatalogRow[])
      const at = this.#now() + (rows.length > 0 ? REFRESH_MS : RETRY_MS)
      this.#known.set(table, accepts ? { kind: 'accepts', accepts, until: at } : { kind: rows.length > 0 ? 'returning' : 'retry', at })
      table.runtime.logger.debug('write keys of a migrated table', { table: table.name, from: accepts ? 'statements that name them' : 'RETURNING' })
    } catch (error) {
      this.#known.set(table, this.#retry())
      table.runtime.logger.debug('key column lookup failed; write keys come from RETURNING', { table: table.name, error: error instanceof Error ? error.message : String(error) })
    }
  }

  #retry(): KeyForm {
    return { kind: 'retry', at: this.#now() + RETRY_MS }
  }
}

const RETRY_MS = 30_000
const REFRESH_MS = 60_000

type KeyForm =
  | { readonly kind: 'looking-up' }
  | { readonly kind: 'accepts'; readonly accepts: (key: KeyValue) => boolean; readonly until: number }
  | { readonly kind: 'returning' | 'retry'; readonly at: number }

interface CatalogRow {
  readonly column: string
  readonly type: string
  readonly deterministic: boolean
  readonly relkind: string
  readonly children: boolean
  readonly rules: boolean
  readonly rewriting_triggers: boolean
}

/**
 * tgtype bits (pg_trigger.h): 1 row, 2 before, 4 insert, 16 update. `to_regclass` answers NULL rather
 * than failing for a missing table, so the lookup cannot fail on the application's account.
 */
const LOOKUP_SQL = `/* cutover: key column */ select a.attname as "column", t.typname as "type", coalesce(co.collisdeterministic, true) as "deterministic",
  c.relkind as "relkind", c.relhassubclass as "children",
  exists (select 1 from pg_rewrite r where r.ev_class = c.oid) as "rules",
  exists (select 1 from pg_trigger g where g.tgrelid = c.oid and not g.tgisinternal and g.tgtype & 3 = 3 and g.tgtype & 20 <> 0) as "rewriting_triggers"
from pg_class c
join pg_attribute a on a.attrelid = c.oid and a.attname = any($3::text[]) and not a.attisdropped
join pg_type t on t.oid = a.atttypid
left join pg_collation co on co.oid = a.attcollation
where c.oid = to_regclass(format('%I.%I', $1::text, $2::text))`

const INTEGER = /^(?:0|-?[1-9]\d{0,18})$/
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

/** A key's acceptor from its columns' rows: one column's, or each part by its column's for a composite key. */
function keyAcceptor(columns: readonly string[], rows: readonly CatalogRow[]): ((key: KeyValue) => boolean) | undefined {
  const parts = columns.map((column) => acceptorOf(rows.find((row) => row.column === column)))
  if (parts.some((part) => part === undefined)) return undefined
  const accepts = parts as ((value: KeyValue) => boolean)[]
  if (accepts.length === 1) return accepts[0]
  return (key) => Array.isArray(key) && key.length === accepts.length && key.every((part, i) => (accepts[i] as (value: KeyValue) => boolean)(part))
}

function acceptorOf(row: CatalogRow | undefined): ((value: KeyValue) => boolean) | undefined {
  if (!row || row.relkind !== 'r' || row.children || row.rules || row.rewriting_triggers) return undefined
  switch (row.type) {
    case 'int2':
    case 'int4':
    case 'int8':
      return (value) => (typeof value === 'number' ? Number.isSafeInteger(value) : typeof value === 'bigint' || (typeof value === 'string' && INTEGER.test(value)))
    case 'uuid':
      return (value) => typeof value === 'string' && UUID.test(value)
    case 'text':
    case 'varchar':
      return row.deterministic ? (value) => typeof value === 'string' : undefined
    default:
      return undefined
  }
}
