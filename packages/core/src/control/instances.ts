import { type Kysely, sql } from 'kysely'

/** What an instance reports about one migration at each heartbeat. */
export interface InstanceMigrationState {
  /** Phase in force in the instance. */
  readonly phase: string
  /** `migration_state.version` of the control row it applied (0: none, env flags only). */
  readonly version: number
  readonly queueDepth: number
  /** p99 of the mirror lag over the last observations, in ms. */
  readonly mirrorLagMs: number
  /** Why writes are refused right now, if they are: `barrier`, `fenced`, `lease`. */
  readonly writesRefused: string | null
  /** Tenants with a phase of their own in force in the instance, by tenant (absent: none, or an older instance). */
  readonly tenants?: Readonly<Record<string, string>>
  /** Tenants whose writes are refused while the migration's are not, with the reason (absent: an older instance). */
  readonly tenantWritesRefused?: Readonly<Record<string, string>>
  /** Compared reads since the instance started, by result. */
  readonly compared: { readonly equal: number; readonly mismatch: number; readonly settling: number }
}

export interface InstanceRecord {
  readonly instanceId: string
  readonly name: string
  readonly host: string
  readonly pid: number
  readonly startedAt: Date
  readonly heartbeatAt: Date
  /** Seconds since the last heartbeat, by the control database's clock. */
  readonly heartbeatAgeS: number
  readonly migrations: Readonly<Record<string, InstanceMigrationState>>
}

/** `cutover.instances`: one row per running instance, upserted at every heartbeat. */
export class InstanceTable {
  constructor(readonly db: Kysely<any>) {}

  async heartbeat(instance: { instanceId: string; name: string; host: string; pid: number }, migrations: Readonly<Record<string, InstanceMigrationState>>): Promise<void> {
    const state = JSON.stringify({ migrations })
    await this.db
      .insertInto('cutover.instances')
      .values({ instance_id: instance.instanceId, name: instance.name, host: instance.host, pid: instance.pid, state })
      .onConflict((oc) => oc.column('instance_id').doUpdateSet({ heartbeat_at: sql`now()`, state }))
      .execute()
  }

  async remove(instanceId: string): Promise<void> {
    await this.db.deleteFrom('cutover.instances').where('instance_id', '=', instanceId).execute()
  }

  /** Instances whose last heartbeat is at most `withinMs` old (all of them without it), by name. */
  async list(options: { withinMs?: number } = {}): Promise<InstanceRecord[]> {
    let query = this.db
      .selectFrom('cutover.instances')
      .selectAll()
      .select(sql<number>`extract(epoch from now() - heartbeat_at)`.as('age'))
      .orderBy('name')
      .orderBy('instance_id')
    if (options.withinMs !== undefined) query = query.where('heartbeat_at', '>', sql<Date>`now() - ${`${options.withinMs} milliseconds`}::interval`)
    const rows = await query.execute()
    return rows.map((row) => ({
      instanceId: row.instance_id,
      name: row.name,
      host: row.host,
      pid: row.pid,
      startedAt: row.started_at,
      heartbeatAt: row.heartbeat_at,
      heartbeatAgeS: Number(row.age),
      migrations: (row.state?.migrations ?? {}) as Record<string, InstanceMigrationState>,
    }))
  }

  /** Forgets instances silent for longer than `olderThanMs` (they stopped without saying so). */
  async prune(olderThanMs: number): Promise<void> {
    await this.db.deleteFrom('cutover.instances').where('heartbeat_at', '<', sql<Date>`now() - ${`${olderThanMs} milliseconds`}::interval`).execute()
  }
}
