import { type Kysely, sql } from 'kysely'
import { createSafetyNetsTable } from './safety-net.js'
import { createSignalsTable } from './signal-history.js'

/** The PostgreSQL schema holding Cutover's own tables. */
export const CONTROL_SCHEMA = 'cutover'

/**
 * Creates Cutover's control tables if they are missing. Idempotent and safe to call from many
 * processes at once (serialized by an advisory lock), so every application instance may call it
 * at start-up.
 *
 * - `dead_letters`: mirrored writes and backfilled records that could not be applied, with the reason;
 * - `migration_state`: run-time phase control, overriding env flags for the whole fleet;
 * - `instances`, `barriers`, `barrier_acks`, `fences`: the fleet (fleet-control tables below);
 * - `tenant_state`: per-tenant phases overriding `migration_state` for that tenant's requests;
 * - `audit`: append-only, hash-chained, numbered and HMAC-authenticated log of phase changes,
 *   replays, reconciliations, quarantines.
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
    await addTypedKeyColumns(trx, 'dead_letters')
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
    await ensureAuditColumns(trx)
    await ensureFleetTables(trx)
    await ensureTenantTables(trx)
    // Backfill, verification and reconciliation jobs (backfill.ts, verification.ts, reconcile.ts).
    await sql`
      create table if not exists cutover.backfill_checkpoints (
        migration text not null,
        range_id text not null,
        fingerprint text not null,
        last_key text,
        last_key_type text,
        status text not null,
        counts jsonb not null default '{}',
        batch_size integer not null,
        started_at timestamptz not null default now(),
        updated_at timestamptz not null default now(),
        finished_at timestamptz,
        primary key (migration, range_id)
      )`.execute(trx)
    await sql`
      create table if not exists cutover.backfill_ranges (
        migration text not null,
        range_id text not null,
        position integer not null,
        after_key text,
        after_key_type text,
        until_key text,
        until_key_type text,
        primary key (migration, range_id)
      )`.execute(trx)
    // Who holds each range (backfill-jobs.ts): the token fences a holder that lost it; the backend
    // pid is its lease connection, whose session advisory lock says whether it is still alive.
    await sql`
      alter table cutover.backfill_ranges
        add column if not exists lease_token bigint not null default 0,
        add column if not exists holder text,
        add column if not exists holder_host text,
        add column if not exists holder_pid integer,
        add column if not exists holder_backend integer,
        add column if not exists leased_at timestamptz`.execute(trx)
    await sql`
      create table if not exists cutover.job_control (
        migration text primary key,
        paused boolean not null default false,
        max_rows_per_second numeric,
        reason text,
        updated_by text not null,
        updated_at timestamptz not null default now()
      )`.execute(trx)
    await sql`
      create table if not exists cutover.quarantine (
        id bigserial primary key,
        migration text not null,
        key text not null,
        reason_code text not null,
        reason text not null,
        fields text[] not null default '{}',
        payload text,
        created_at timestamptz not null default now(),
        resolved_at timestamptz,
        resolution text,
        unique (migration, key)
      )`.execute(trx)
    await addTypedKeyColumns(trx, 'quarantine')
    await sql`
      create table if not exists cutover.verification_reports (
        id bigserial primary key,
        migration text not null,
        kind text not null,
        started_at timestamptz not null,
        finished_at timestamptz not null default now(),
        compared bigint not null,
        consistent boolean not null,
        counts jsonb not null,
        entries jsonb not null,
        truncated boolean not null default false,
        summary text not null
      )`.execute(trx)
    // Phase gates (phase-gates.ts): what instances counted over time, and the safety net after `complete`.
    await createSignalsTable(trx)
    await createSafetyNetsTable(trx)
  })
}

/**
 * A dead letter's or quarantined record's key with its parts' types (`StoredKey`: `key_type`,
 * `key_value`), beside the `key` text they are matched by; added after the tables first shipped.
 */
async function addTypedKeyColumns(trx: Kysely<any>, table: 'dead_letters' | 'quarantine'): Promise<void> {
  await sql`alter table ${sql.table(`cutover.${table}`)} add column if not exists key_type text, add column if not exists key_value text`.execute(trx)
}

/**
 * The audit's sequence number and HMAC (added after the table first shipped, hence `alter`). Entries
 * written before get numbers in id order; they carry no HMAC, so a verifier holding a key reports them.
 */
async function ensureAuditColumns(trx: Kysely<any>): Promise<void> {
  await sql`alter table cutover.audit add column if not exists seq bigint, add column if not exists key_id text, add column if not exists mac text`.execute(trx)
  await sql`
    update cutover.audit a set seq = n.seq
    from (select id, row_number() over (order by id) + coalesce((select max(seq) from cutover.audit), 0) as seq
          from cutover.audit where seq is null) n
    where a.id = n.id`.execute(trx)
  await sql`alter table cutover.audit alter column seq set not null`.execute(trx)
  await sql`create unique index if not exists audit_seq on cutover.audit (seq)`.execute(trx)
}

/**
 * Fleet control (`control/instances.ts`, `control/barriers.ts`, `runtime/fleet-member.ts`): every
 * instance's heartbeat and state, the barriers a change of write authority passes, who acknowledged
 * them, and the instances fenced for missing one. `migration_state.version` counts changes of a
 * migration's control row, so an instance can say which one it follows.
 */
async function ensureFleetTables(trx: Kysely<any>): Promise<void> {
  await sql`alter table cutover.migration_state add column if not exists version bigint not null default 1`.execute(trx)
  await sql`
    create table if not exists cutover.instances (
      instance_id text primary key,
      name text not null,
      host text not null,
      pid integer not null,
      started_at timestamptz not null default now(),
      heartbeat_at timestamptz not null default now(),
      state jsonb not null default '{}'
    )`.execute(trx)
  await sql`
    create table if not exists cutover.barriers (
      id bigserial primary key,
      migration text not null,
      from_phase text not null,
      to_phase text not null,
      actor text not null,
      announced_at timestamptz not null default now(),
      deadline timestamptz not null,
      status text not null default 'announced',
      finished_at timestamptz
    )`.execute(trx)
  await sql`create index if not exists barriers_open on cutover.barriers (migration) where status = 'announced'`.execute(trx)
  await sql`
    create table if not exists cutover.barrier_acks (
      barrier_id bigint not null references cutover.barriers (id) on delete cascade,
      instance_id text not null,
      acked_at timestamptz not null default now(),
      primary key (barrier_id, instance_id)
    )`.execute(trx)
  await sql`
    create table if not exists cutover.fences (
      instance_id text not null,
      migration text not null,
      barrier_id bigint not null,
      until_version bigint not null,
      fenced_at timestamptz not null default now(),
      primary key (instance_id, migration)
    )`.execute(trx)
}

/**
 * Tenant by tenant (`control/tenant-state.ts`): a row per migration and tenant whose phase (when not
 * null) overrides the migration's for that tenant's requests. Clearing an override keeps the row
 * with a null phase, so its `version` keeps counting and a fence waiting on it can still be lifted.
 * Barriers and fences name the tenant they are scoped to; `''` is the whole migration (a primary
 * key column cannot be null, hence the empty string rather than null).
 */
async function ensureTenantTables(trx: Kysely<any>): Promise<void> {
  await sql`
    create table if not exists cutover.tenant_state (
      migration text not null,
      tenant text not null,
      phase text,
      read_percent numeric,
      compare_sample numeric,
      updated_by text not null,
      updated_at timestamptz not null default now(),
      version bigint not null default 1,
      primary key (migration, tenant)
    )`.execute(trx)
  await sql`alter table cutover.barriers add column if not exists tenant text not null default ''`.execute(trx)
  await sql`alter table cutover.fences add column if not exists tenant text not null default ''`.execute(trx)
  // The fence's key gains the tenant: one instance can be fenced for several tenants of a migration.
  await sql`alter table cutover.fences drop constraint if exists fences_pkey`.execute(trx)
  await sql`create unique index if not exists fences_scope on cutover.fences (instance_id, migration, tenant)`.execute(trx)
}
