import { type Kysely, sql } from 'kysely'

/** The PostgreSQL schema holding Cutover's own tables. */
export const CONTROL_SCHEMA = 'cutover'

/**
 * Creates Cutover's control tables if they are missing. Idempotent and safe to call from many
 * processes at once (serialized by an advisory lock), so every application instance may call it
 * at start-up.
 *
 * - `dead_letters`: mirrored writes and backfilled records that could not be applied, with the reason;
 * - `migration_state`: run-time phase control, overriding env flags for the whole fleet;
 * - `audit`: append-only, hash-chained log of phase changes, replays, reconciliations, quarantines.
 */
export async function ensureSchema(db: Kysely<any>): Promise<void> {
  await db.transaction().execute(async (trx) => {
    await sql`select pg_advisory_xact_lock(hashtext('cutover.ensureSchema'))`.execute(trx)
    await sql`create schema if not exists cutover`.execute(trx)
    await sql`
      create table if not exists cutover.dead_letters (
        id bigserial primary key,
        migration text not null,
        direction text not null,
        key text not null,
        op text not null,
        reason_code text not null,
        reason text not null,
        fields text[] not null default '{}',
        payload text,
        attempts integer not null default 1,
        created_at timestamptz not null default now(),
        resolved_at timestamptz,
        resolution text
      )`.execute(trx)
    await sql`create index if not exists dead_letters_open on cutover.dead_letters (migration, direction, id) where resolved_at is null`.execute(trx)
    await sql`
      create table if not exists cutover.migration_state (
        migration text primary key,
        phase text not null,
        read_percent numeric,
        compare_sample numeric,
        updated_by text not null,
        updated_at timestamptz not null default now()
      )`.execute(trx)
    await sql`
      create table if not exists cutover.audit (
        id bigserial primary key,
        at timestamptz not null default now(),
        actor text not null,
        migration text not null,
        action text not null,
        details jsonb not null default '{}',
        prev_hash text not null,
        hash text not null
      )`.execute(trx)
  })
}
