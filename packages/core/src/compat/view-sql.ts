import type { FieldMap, FieldRule } from '../model/field-rule.js'
import { qualifiedName, sqlIdentifier, sqlLiteral, sqlString } from './sql-text.js'
import { TRIGGER_OPERATIONS, type CompatibilityView, type TriggerOperation } from './view-definition.js'

/**
 * The statements that create (or replace) one compatibility view with everything that makes it
 * writable: the view, the new table's column defaults copied onto it, and the INSTEAD OF trigger
 * functions and triggers. The view is dropped and created again rather than `create or replace`d:
 * replace refuses a changed column list, and dropping a view silently drops its triggers, so
 * view and triggers are only ever created together. Run them in one transaction.
 */
export function createViewStatements(view: CompatibilityView): string[] {
  return [
    `drop view if exists ${viewName(view)}`,
    createViewSql(view),
    ...copyDefaultsSql(view),
    ...(view.needsTriggers ? TRIGGER_OPERATIONS.flatMap((op) => [triggerFunctionSql(view, op), triggerSql(view, op)]) : []),
  ]
}

/** Removes the view (and with it its triggers) and the trigger functions; nothing if absent. */
export function dropViewStatements(view: CompatibilityView): string[] {
  return [`drop view if exists ${viewName(view)}`, ...TRIGGER_OPERATIONS.map((op) => `drop function if exists ${functionName(view, op)}()`)]
}

function viewName(view: CompatibilityView): string {
  return qualifiedName(view.viewSchema, view.view)
}

function tableName(view: CompatibilityView): string {
  return qualifiedName(view.schema, view.table)
}

function functionName(view: CompatibilityView, op: TriggerOperation): string {
  return qualifiedName(view.viewSchema, view.functions[op])
}

/** `old field → SQL over the new row`, for every old field the field map can compute in SQL. */
function oldFieldsFrom(fieldMap: FieldMap, row: string): [string, string][] {
  return Object.entries(fieldMap.backwardSql((column) => `${row}.${sqlIdentifier(column)}`))
}

function filterSql(view: CompatibilityView, row: string): string[] {
  return Object.entries(view.where).map(([column, value]) =>
    value === null ? `${row}.${sqlIdentifier(column)} is null` : `${row}.${sqlIdentifier(column)} = ${sqlLiteral(value)}`,
  )
}

function createViewSql(view: CompatibilityView): string {
  const columns = oldFieldsFrom(view.fieldMap, 't').map(([field, expression]) => `${expression} as ${sqlIdentifier(field)}`)
  const filter = filterSql(view, 't')
  return `create view ${viewName(view)} as\nselect\n  ${columns.join(',\n  ')}\nfrom ${tableName(view)} as t${
    filter.length > 0 ? `\nwhere ${filter.join(' and ')}` : ''
  }`
}

/**
 * Without its own defaults a view column is NULL when an INSERT omits it or says DEFAULT, so the
 * new column's default (a sequence, `now()`) is copied onto every old field that is a plain
 * rename of it. Identity columns have no `pg_attrdef` entry: their sequence is used instead. The
 * defaults are read from the catalog when the statements run, so the printed SQL needs no database.
 */
function copyDefaultsSql(view: CompatibilityView): string[] {
  const pairs = view.fieldMap.rules
    .filter((rule) => rule.kind === 'rename')
    .map((rule) => `(${sqlString(rule.oldFields[0] as string)}, ${sqlString(rule.newFields[0] as string)})`)
  if (pairs.length === 0) return []
  const table = sqlString(tableName(view))
  return [
    `do $cutover$
declare
  pair record;
  expression text;
begin
  for pair in select * from (values ${pairs.join(', ')}) as p(field, col) loop
    select case when c.attidentity <> '' then format('nextval(%L::regclass)', pg_get_serial_sequence(${table}, c.attname))
                else pg_get_expr(d.adbin, d.adrelid) end
      into expression
      from pg_attribute c left join pg_attrdef d on d.adrelid = c.attrelid and d.adnum = c.attnum
     where c.attrelid = ${table}::regclass and c.attname = pair.col;
    if expression is not null then
      execute format('alter view %s alter column %I set default %s', ${sqlString(viewName(view))}, pair.field, expression);
    end if;
  end loop;
end
$cutover$`,
  ]
}

function triggerSql(view: CompatibilityView, op: TriggerOperation): string {
  return `create trigger ${sqlIdentifier(view.triggers[op])} instead of ${op} on ${viewName(view)} for each row execute function ${functionName(view, op)}()`
}

function triggerFunctionSql(view: CompatibilityView, op: TriggerOperation): string {
  const body = TRIGGER_BODIES[op](view)
  return `create or replace function ${functionName(view, op)}() returns trigger language plpgsql as $cutover$
declare
  written ${tableName(view)}%rowtype;
begin
${body.map((line) => `  ${line}`).join('\n')}
end
$cutover$`
}

const TRIGGER_BODIES: Readonly<Record<TriggerOperation, (view: CompatibilityView) => string[]>> = {
  insert: (view) => {
    const values = new Map(Object.entries(view.fieldMap.forwardSql((field) => `NEW.${sqlIdentifier(field)}`)))
    for (const [column, value] of Object.entries(view.where)) values.set(column, sqlLiteral(value))
    const columns = [...values.keys()]
    return [
      `insert into ${tableName(view)} (${columns.map(sqlIdentifier).join(', ')})`,
      `  values (${columns.map((column) => values.get(column)).join(', ')})`,
      `  returning * into written;`,
      ...refreshNew(view),
      `return NEW;`,
    ]
  },
  update: (view) => {
    const assignments = view.fieldMap.rules.filter((rule) => rule.oldFields.length > 0).flatMap((rule) => changedColumns(rule))
    if (assignments.length === 0) return [`raise exception 'no column of % is writable through this view', ${sqlString(view.view)};`]
    return [
      `update ${tableName(view)} as t set`,
      `  ${assignments.join(',\n    ')}`,
      ` where ${[`t.${sqlIdentifier(view.key.new)} = OLD.${sqlIdentifier(view.key.old)}`, ...filterSql(view, 't')].join(' and ')}`,
      `  returning t.* into written;`,
      `if not found then return null; end if;`,
      ...refreshNew(view),
      `return NEW;`,
    ]
  },
  delete: (view) => [
    `delete from ${tableName(view)} as t`,
    ` where ${[`t.${sqlIdentifier(view.key.new)} = OLD.${sqlIdentifier(view.key.old)}`, ...filterSql(view, 't')].join(' and ')};`,
    `if not found then return null; end if;`,
    `return OLD;`,
  ],
}

/**
 * An UPDATE through the view rewrites a new column only when one of the old fields it comes from
 * changed: a v1 write leaves alone what v1 cannot see (a new-only column, the precision a
 * conversion would round away).
 */
function changedColumns(rule: FieldRule): string[] {
  const changed = rule.oldFields.map((field) => `NEW.${sqlIdentifier(field)} is distinct from OLD.${sqlIdentifier(field)}`).join(' or ')
  return Object.entries(rule.forwardSql).map(([column, sql]) => {
    const expression = sql((field) => `NEW.${sqlIdentifier(field)}`)
    return `${sqlIdentifier(column)} = case when ${changed} then ${expression} else t.${sqlIdentifier(column)} end`
  })
}

/** What the view shows for the row just written, so `RETURNING` through the view sees stored values. */
function refreshNew(view: CompatibilityView): string[] {
  return oldFieldsFrom(view.fieldMap, 'written').map(([field, expression]) => `NEW.${sqlIdentifier(field)} := ${expression};`)
}

/**
 * `CREATE OR REPLACE VIEW` presenting the new table in the old shape, read-only, from the same
 * field map the mapper uses. Fields without a SQL backward expression are left out. For a
 * writable view with its triggers, see `compatibilityViewsSql`.
 */
export function compatibilityViewSql(fieldMap: FieldMap, options: { view: string; table: string; schema?: string; viewSchema?: string }): string {
  const columns = oldFieldsFrom(fieldMap, 't')
    .map(([field, expression]) => `${expression} as ${sqlIdentifier(field)}`)
    .join(',\n  ')
  return `create or replace view ${qualifiedName(options.viewSchema ?? options.schema, options.view)} as\nselect\n  ${columns}\nfrom ${qualifiedName(options.schema, options.table)} as t`
}
