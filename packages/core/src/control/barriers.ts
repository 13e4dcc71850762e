import { type Kysely, sql } from 'kysely'

export interface OpenBarrier {
  readonly id: string
  readonly migration: string
  readonly fromPhase: string
  readonly toPhase: string
  /** The tenant the change is scoped to; undefined: the whole migration. */
  readonly tenant: string | undefined
  /** Milliseconds left until the coordinator stops waiting, by the control database's clock. */
  readonly remainingMs: number
}

export interface Fence {
  readonly instanceId: string
  readonly migration: string
  readonly barrierId: string
  /** The tenant whose writes are fenced; undefined: the whole migration. */
  readonly tenant: string | undefined
  /** The control row version (`tenant_state.version` for a tenant's fence) the instance must have applied to be let through again. */
  readonly untilVersion: number
}

/**
 * `cutover.barriers`, `cutover.barrier_acks` and `cutover.fences`: a change of write authority is
 * announced, acknowledged by each live instance, then committed (or abandoned); the instances that
 * did not acknowledge in time are fenced until they follow the control row's new version. A change
 * of one tenant's phase is scoped to that tenant (`tenant`): only that tenant's writes are held and
 * fenced; the column holds `''` for the whole migration.
 */
export class BarrierTable {
  constructor(readonly db: Kysely<any>) {}

  async announce(barrier: { migration: string; tenant?: string | undefined; fromPhase: string; toPhase: string; actor: string; timeoutMs: number }): Promise<string> {
    const row = await this.db
      .insertInto('cutover.barriers')
      .values({
        migration: barrier.migration,
        tenant: barrier.tenant ?? '',
        from_phase: barrier.fromPhase,
        to_phase: barrier.toPhase,
        actor: barrier.actor,
        deadline: sql`now() + ${`${barrier.timeoutMs} milliseconds`}::interval`,
      })
      .returning('id')
      .executeTakeFirstOrThrow()
    return String(row.id)
  }

  /** Barriers still announced, of these migrations, that `instanceId` has not acknowledged. */
  async pendingFor(instanceId: string, migrations: readonly string[]): Promise<OpenBarrier[]> {
    if (migrations.length === 0) return []
    const rows = await this.db
      .selectFrom('cutover.barriers as b')
      .select(['b.id', 'b.migration', 'b.tenant', 'b.from_phase', 'b.to_phase', sql<number>`extract(epoch from b.deadline - now()) * 1000`.as('remaining')])
      .where('b.status', '=', 'announced')
      .where('b.migration', 'in', [...migrations])
      .where('b.deadline', '>', sql<Date>`now()`)
      .where((eb) => eb.not(eb.exists(eb.selectFrom('cutover.barrier_acks as a').select('a.instance_id').whereRef('a.barrier_id', '=', 'b.id').where('a.instance_id', '=', instanceId))))
      .execute()
    return rows.map((row) => ({ id: String(row.id), migration: row.migration, tenant: row.tenant === '' ? undefined : row.tenant, fromPhase: row.from_phase, toPhase: row.to_phase, remainingMs: Number(row.remaining) }))
  }

  async acknowledge(barrierId: string, instanceId: string): Promise<void> {
    await this.db.insertInto('cutover.barrier_acks').values({ barrier_id: barrierId, instance_id: instanceId }).onConflict((oc) => oc.doNothing()).execute()
  }

  async acknowledged(barrierId: string): Promise<Set<string>> {
    const rows = await this.db.selectFrom('cutover.barrier_acks').select('instance_id').where('barrier_id', '=', barrierId).execute()
    return new Set(rows.map((row) => row.instance_id as string))
  }

  async finish(barrierId: string, status: 'committed' | 'abandoned'): Promise<void> {
    await this.db.updateTable('cutover.barriers').set({ status, finished_at: sql`now()` }).where('id', '=', barrierId).execute()
  }

  /** Whether the barrier is still open (announced, before its deadline). */
  async isOpen(barrierId: string): Promise<boolean> {
    const row = await this.db.selectFrom('cutover.barriers').select('id').where('id', '=', barrierId).where('status', '=', 'announced').where('deadline', '>', sql<Date>`now()`).executeTakeFirst()
    return row !== undefined
  }

  async fence(fences: readonly Fence[]): Promise<void> {
    if (fences.length === 0) return
    await this.db
      .insertInto('cutover.fences')
      .values(fences.map((f) => ({ instance_id: f.instanceId, migration: f.migration, tenant: f.tenant ?? '', barrier_id: f.barrierId, until_version: f.untilVersion })))
      .onConflict((oc) => oc.columns(['instance_id', 'migration', 'tenant']).doUpdateSet({ barrier_id: sql.ref('excluded.barrier_id'), until_version: sql.ref('excluded.until_version'), fenced_at: sql`now()` }))
      .execute()
  }

  async fencesOf(instanceId: string): Promise<Fence[]> {
    const rows = await this.db.selectFrom('cutover.fences').selectAll().where('instance_id', '=', instanceId).execute()
    return rows.map(toFence)
  }

  async allFences(migration?: string): Promise<Fence[]> {
    let query = this.db.selectFrom('cutover.fences').selectAll().orderBy('instance_id').orderBy('tenant')
    if (migration) query = query.where('migration', '=', migration)
    return (await query.execute()).map(toFence)
  }

  /** Lifts a fence once the instance follows `untilVersion` (it caught up). */
  async lift(instanceId: string, migration: string, tenant: string | undefined, untilVersion: number): Promise<void> {
    await this.db.deleteFrom('cutover.fences').where('instance_id', '=', instanceId).where('migration', '=', migration).where('tenant', '=', tenant ?? '').where('until_version', '<=', untilVersion).execute()
  }
}

function toFence(row: Record<string, any>): Fence {
  return { instanceId: row.instance_id, migration: row.migration, tenant: row.tenant ? row.tenant : undefined, barrierId: String(row.barrier_id), untilVersion: Number(row.until_version) }
}
