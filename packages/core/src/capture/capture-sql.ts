/**
 * The SQL of trigger-based change capture, as data and small functions: the `cutover` tables in the
 * captured database, and the per-table trigger function and triggers. Every identifier is quoted and
 * every literal escaped here, so a table or migration name can never change the meaning of the DDL.
 *
 * One trigger function per captured table (not one generic function reading `to_jsonb(NEW)`): it
 * names the key columns directly, so a captured row costs one small INSERT and no row conversion.
 */

/** `name` or `schema.name` as a quoted, schema-qualified identifier (`public` by default). */
export function qualifiedTable(table: string): { readonly schema: string; readonly name: string; readonly sql: string } {
  const [schema, name] = table.includes('.') ? (table.split('.') as [string, string]) : ['public', table]
  return { schema, name, sql: `${quoteIdent(schema)}.${quoteIdent(name)}` }
}

export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`
}

export function quoteLiteral(value: string): string {
  return `'${value.replace(/'/g, "''")}'`
}

/**
 * The session setting Cutover's own writes set (transaction-local) so the triggers skip them: the
 * mirror's and backfill's writes into a captured table are not application changes, and capturing
 * them would send them back the other way.
 */
export const ORIGIN_SETTING = 'cutover.origin'

/** Tables of the `cutover` schema in each captured database; idempotent. */
export const CAPTURE_SCHEMA_SQL: readonly string[] = [
  `create schema if not exists cutover`,
  // Keyed by (capture, id): one index to maintain per captured row. Autovacuum is told to clean up
  // after the worker's batched deletes early, so the table stays the size of the lag, not the history.
  `create table if not exists cutover.change_log (
     capture text not null,
     id bigint generated always as identity,
     op "char" not null,
     key text[],
     logged_at timestamptz not null default now(),
     primary key (capture, id)
   ) with (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 5000, autovacuum_vacuum_insert_scale_factor = 0)`,
  `create table if not exists cutover.captures (
     capture text primary key,
     migration text not null,
     side text not null,
     table_name text not null,
     key_columns text[] not null,
     installed_at timestamptz not null default now(),
     installed_by text not null default current_user
   )`,
  `create table if not exists cutover.capture_resyncs (
     id bigserial primary key,
     capture text not null,
     truncated_at timestamptz not null,
     reported_at timestamptz not null default now(),
     resolved_at timestamptz
   )`,
]

export interface CaptureObjects {
  /** `<migration>/<side>`: the value of `change_log.capture`. */
  readonly capture: string
  readonly table: ReturnType<typeof qualifiedTable>
  readonly keyColumns: readonly string[]
  /** Quoted, schema-qualified trigger function. */
  readonly functionSql: string
  /** Trigger names, unquoted (as `pg_trigger.tgname` holds them). */
  readonly triggers: { readonly rows: string; readonly update: string; readonly truncate: string }
}

/** Names of everything one capture creates; PostgreSQL identifiers are at most 63 bytes. */
export function captureObjects(migration: string, side: 'old' | 'new', table: string, keyColumns: readonly string[]): CaptureObjects {
  const capture = `${migration}/${side}`
  const base = shortName(`cutover_${migration}_${side}`)
  return {
    capture,
    table: qualifiedTable(table),
    keyColumns,
    functionSql: `cutover.${quoteIdent(shortName(`capture_${migration}_${side}`))}`,
    triggers: { rows: `${base}_rows`, update: `${base}_update`, truncate: `${base}_truncate` },
  }
}

function shortName(name: string): string {
  if (Buffer.byteLength(name) <= 50) return name
  let hash = 0
  for (const char of name) hash = (Math.imul(hash, 31) + (char.codePointAt(0) ?? 0)) | 0
  return `${name.slice(0, 40)}_${(hash >>> 0).toString(16)}`
}

/** The statements that install (or re-install) one capture; idempotent. */
export function installSql(objects: CaptureObjects, migration: string, side: string): readonly string[] {
  const { functionSql, table, triggers } = objects
  const capture = quoteLiteral(objects.capture)
  const keyOf = (row: 'new' | 'old') => `array[${objects.keyColumns.map((column) => `${row}.${quoteIdent(column)}::text`).join(', ')}]`
  const keyChanged = objects.keyColumns.map((column) => `old.${quoteIdent(column)} is distinct from new.${quoteIdent(column)}`).join(' or ')
  const insert = (op: string, key: string) => `insert into cutover.change_log (capture, op, key) values (${capture}, '${op}', ${key})`
  // SECURITY DEFINER: application roles need no privilege on the change log. Every name in the body
  // is schema-qualified, so the caller's search_path cannot redirect it.
  const body = `
    begin
      if pg_catalog.current_setting('${ORIGIN_SETTING}', true) = 'cutover' then
        return null;
      end if;
      if tg_op = 'INSERT' then
        ${insert('I', keyOf('new'))};
      elsif tg_op = 'UPDATE' then
        if ${keyChanged} then
          ${insert('D', keyOf('old'))};
        end if;
        ${insert('U', keyOf('new'))};
      elsif tg_op = 'DELETE' then
        ${insert('D', keyOf('old'))};
      else
        ${insert('T', 'null')};
      end if;
      return null;
    end`
  return [
    `create or replace function ${functionSql}() returns trigger language plpgsql security definer as ${dollarQuote(body)}`,
    `revoke all on function ${functionSql}() from public`,
    `create or replace trigger ${quoteIdent(triggers.rows)} after insert or delete on ${table.sql} for each row execute function ${functionSql}()`,
    // An update that changes nothing (a mirror re-applying the same state) is not a change.
    `create or replace trigger ${quoteIdent(triggers.update)} after update on ${table.sql} for each row when (old *<> new) execute function ${functionSql}()`,
    `create or replace trigger ${quoteIdent(triggers.truncate)} after truncate on ${table.sql} for each statement execute function ${functionSql}()`,
    `insert into cutover.captures (capture, migration, side, table_name, key_columns)
       values (${capture}, ${quoteLiteral(migration)}, ${quoteLiteral(side)}, ${quoteLiteral(`${table.schema}.${table.name}`)}, array[${objects.keyColumns.map(quoteLiteral).join(', ')}]::text[])
       on conflict (capture) do update set table_name = excluded.table_name, key_columns = excluded.key_columns, installed_at = now(), installed_by = current_user`,
  ]
}

/** The statements that remove one capture and its pending log entries; idempotent. */
export function removeSql(objects: CaptureObjects): readonly string[] {
  const { table, triggers, functionSql } = objects
  return [
    ...Object.values(triggers).map((name) => `drop trigger if exists ${quoteIdent(name)} on ${table.sql}`),
    `drop function if exists ${functionSql}()`,
    `delete from cutover.change_log where capture = ${quoteLiteral(objects.capture)}`,
    `delete from cutover.captures where capture = ${quoteLiteral(objects.capture)}`,
  ]
}

function dollarQuote(body: string): string {
  let tag = '$cutover$'
  while (body.includes(tag)) tag = `$cutover${Math.random().toString(36).slice(2, 8)}$`
  return `${tag}${body}${tag}`
}
