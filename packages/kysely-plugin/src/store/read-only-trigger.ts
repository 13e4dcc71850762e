import { type Kysely, sql } from 'kysely'

/** The trigger that makes a migrated table read-only; one name, so installing twice replaces it. */
export const READ_ONLY_TRIGGER = 'cutover_read_only'

/**
 * Makes `table` refuse every INSERT, UPDATE, DELETE and TRUNCATE from `from` on, with SQLSTATE
 * 25006 (read_only_sql_transaction) and a message naming the way out. Before `from` writes pass:
 * the reverse mirror still keeps the table current during the revert window. Reversible with
 * `removeReadOnlyTrigger`; idempotent; in one transaction, so the table is never half protected.
 */
export async function installReadOnlyTrigger(db: Kysely<any>, table: string, migration: string, from: Date): Promise<void> {
  await db.transaction().execute(async (trx) => {
    await sql`create schema if not exists cutover`.execute(trx)
    await sql`
      create or replace function cutover.refuse_write() returns trigger language plpgsql as $$
      begin
        if tg_nargs > 1 and now() < tg_argv[1]::timestamptz then
          return case when tg_op = 'DELETE' then old else new end;
        end if;
        raise exception 'table % is read-only: migration % completed (cutover release % lifts it)', tg_table_name, tg_argv[0], tg_argv[0]
          using errcode = '25006';
      end $$`.execute(trx)
    const target = sql.table(table)
    const args = sql.join([sql.lit(migration), sql.lit(from.toISOString())])
    await sql`drop trigger if exists ${sql.id(READ_ONLY_TRIGGER)} on ${target}`.execute(trx)
    await sql`drop trigger if exists ${sql.id(`${READ_ONLY_TRIGGER}_truncate`)} on ${target}`.execute(trx)
    await sql`create trigger ${sql.id(READ_ONLY_TRIGGER)} before insert or update or delete on ${target}
              for each row execute function cutover.refuse_write(${args})`.execute(trx)
    await sql`create trigger ${sql.id(`${READ_ONLY_TRIGGER}_truncate`)} before truncate on ${target}
              for each statement execute function cutover.refuse_write(${args})`.execute(trx)
  })
}

export async function removeReadOnlyTrigger(db: Kysely<any>, table: string): Promise<void> {
  await db.transaction().execute(async (trx) => {
    await sql`drop trigger if exists ${sql.id(READ_ONLY_TRIGGER)} on ${sql.table(table)}`.execute(trx)
    await sql`drop trigger if exists ${sql.id(`${READ_ONLY_TRIGGER}_truncate`)} on ${sql.table(table)}`.execute(trx)
  })
}
