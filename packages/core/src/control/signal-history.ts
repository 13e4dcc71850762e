import { type Kysely, sql } from 'kysely'

/**
 * What one instance counted for one migration during one interval. The phase gates, the drift
 * signal and the report read these over days, long after the process that counted them is gone,
 * so they live in the control database rather than only in the in-process `Metrics`.
 */
export interface SignalCounts {
  /** Old → new mirror: keys applied, and keys that ended in a dead letter. */
  readonly mirrorApplied: number
  readonly mirrorFailed: number
  /** New → old (the reverse mirror of `cutover`): the same. */
  readonly reverseApplied: number
  readonly reverseFailed: number
  /** Compared reads by outcome (settling reads are neither). */
  readonly compareEqual: number
  readonly compareMismatch: number
  /** Reads served per side, and new-side reads that failed. */
  readonly readsOld: number
  readonly readsNew: number
  readonly readErrorsNew: number
}

/** What an instance saw at its last report: levels, not sums. */
export interface SignalLevels {
  readonly phase: string
  readonly readPercent: number
  /** Keys waiting in the old → new and new → old mirror queues. */
  readonly mirrorDepth: number
  readonly reverseDepth: number
  /** p99 of the time from enqueue to apply over the recent applies (the histogram's reservoir), either direction. */
  readonly mirrorLagMs: number
}

/** One instance's latest report. */
export interface InstanceLevels extends SignalLevels {
  readonly instance: string
  readonly reportedAt: Date
}

/** Sums over one bucket of time, all instances together. */
export interface SignalPoint extends SignalCounts {
  readonly at: Date
  readonly mirrorLagMs: number
  readonly readPercent: number
}

export const NO_SIGNALS: SignalCounts = Object.freeze({
  mirrorApplied: 0,
  mirrorFailed: 0,
  reverseApplied: 0,
  reverseFailed: 0,
  compareEqual: 0,
  compareMismatch: 0,
  readsOld: 0,
  readsNew: 0,
  readErrorsNew: 0,
})

/** Counts are kept per instance and minute: fine enough for gates and charts, small for years. */
export const SIGNAL_BUCKET_MS = 60_000

const COUNT_COLUMNS = {
  mirrorApplied: 'mirror_applied',
  mirrorFailed: 'mirror_failed',
  reverseApplied: 'reverse_applied',
  reverseFailed: 'reverse_failed',
  compareEqual: 'compare_equal',
  compareMismatch: 'compare_mismatch',
  readsOld: 'reads_old',
  readsNew: 'reads_new',
  readErrorsNew: 'read_errors_new',
} as const satisfies Record<keyof SignalCounts, string>

/** `cutover.signals`: per instance, migration and minute, what the runtime counted. */
export class SignalHistory {
  constructor(readonly db: Kysely<any>) {}

  /** Adds one interval's counts to its minute and replaces the instance's levels. */
  async add(migration: string, instance: string, at: Date, counts: SignalCounts, levels: SignalLevels): Promise<void> {
    const bucket = new Date(Math.floor(at.getTime() / SIGNAL_BUCKET_MS) * SIGNAL_BUCKET_MS)
    const countValues = Object.fromEntries(Object.entries(COUNT_COLUMNS).map(([field, column]) => [column, counts[field as keyof SignalCounts]]))
    const levelValues = {
      phase: levels.phase,
      read_percent: levels.readPercent,
      mirror_depth: levels.mirrorDepth,
      reverse_depth: levels.reverseDepth,
      mirror_lag_ms: levels.mirrorLagMs,
      reported_at: at,
    }
    await this.db
      .insertInto('cutover.signals')
      .values({ migration, instance, bucket, ...countValues, ...levelValues })
      .onConflict((oc) =>
        oc.columns(['migration', 'instance', 'bucket']).doUpdateSet((eb) => ({
          ...Object.fromEntries(Object.values(COUNT_COLUMNS).map((column) => [column, sql`${eb.ref(`cutover.signals.${column}`)} + excluded.${sql.ref(column)}`])),
          ...levelValues,
          mirror_lag_ms: sql`greatest(${eb.ref('cutover.signals.mirror_lag_ms')}, excluded.mirror_lag_ms)`,
        })),
      )
      .execute()
  }

  /** Sums since `since` (inclusive of the minute it falls in), all instances together. */
  async totals(migration: string, since: Date): Promise<SignalCounts> {
    const points = await this.series(migration, since, Number.MAX_SAFE_INTEGER)
    return points.reduce<SignalCounts>((sum, point) => addSignals(sum, point), NO_SIGNALS)
  }

  /** Sums per bucket of `bucketMs` since `since`, oldest first; buckets without reports are left out. */
  async series(migration: string, since: Date, bucketMs: number): Promise<SignalPoint[]> {
    const width = Math.max(SIGNAL_BUCKET_MS, Math.min(bucketMs, 1e15))
    const start = Math.floor(since.getTime() / SIGNAL_BUCKET_MS) * SIGNAL_BUCKET_MS
    const rows = await sql<Record<string, unknown>>`
      select floor(extract(epoch from bucket) * 1000 / ${width}) as slot,
             ${sql.join(Object.values(COUNT_COLUMNS).map((column) => sql`sum(${sql.ref(column)})::float8 as ${sql.ref(column)}`))},
             max(mirror_lag_ms)::float8 as mirror_lag_ms,
             max(read_percent)::float8 as read_percent
        from cutover.signals
       where migration = ${migration} and bucket >= ${new Date(start)}
       group by slot
       order by slot`.execute(this.db)
    return rows.rows.map((row) => ({
      at: new Date(Number(row.slot) * width),
      ...(Object.fromEntries(Object.entries(COUNT_COLUMNS).map(([field, column]) => [field, Number(row[column] ?? 0)])) as unknown as SignalCounts),
      mirrorLagMs: Number(row.mirror_lag_ms ?? 0),
      readPercent: Number(row.read_percent ?? 0),
    }))
  }

  /** Each instance's latest report, if it came within `freshWithinMs` of `now`. */
  async latestLevels(migration: string, now: Date, freshWithinMs: number): Promise<InstanceLevels[]> {
    const rows = await sql<Record<string, unknown>>`
      select distinct on (instance) instance, reported_at, phase, read_percent::float8 as read_percent,
             mirror_depth, reverse_depth, mirror_lag_ms
        from cutover.signals
       where migration = ${migration} and reported_at >= ${new Date(now.getTime() - freshWithinMs)}
       order by instance, reported_at desc`.execute(this.db)
    return rows.rows.map((row) => ({
      instance: String(row.instance),
      reportedAt: row.reported_at as Date,
      phase: String(row.phase),
      readPercent: Number(row.read_percent),
      mirrorDepth: Number(row.mirror_depth),
      reverseDepth: Number(row.reverse_depth),
      mirrorLagMs: Number(row.mirror_lag_ms),
    }))
  }
}

export function addSignals(a: SignalCounts, b: SignalCounts): SignalCounts {
  return Object.fromEntries(Object.keys(COUNT_COLUMNS).map((field) => [field, a[field as keyof SignalCounts] + b[field as keyof SignalCounts]])) as unknown as SignalCounts
}

export function subtractSignals(a: SignalCounts, b: SignalCounts): SignalCounts {
  return Object.fromEntries(Object.keys(COUNT_COLUMNS).map((field) => [field, a[field as keyof SignalCounts] - b[field as keyof SignalCounts]])) as unknown as SignalCounts
}

/** The `cutover.signals` table; part of `ensureSchema`. */
export async function createSignalsTable(db: Kysely<any>): Promise<void> {
  await sql`
    create table if not exists cutover.signals (
      migration text not null,
      instance text not null,
      bucket timestamptz not null,
      ${sql.join(Object.values(COUNT_COLUMNS).map((column) => sql`${sql.ref(column)} bigint not null default 0`))},
      phase text not null,
      read_percent numeric not null,
      mirror_depth integer not null default 0,
      reverse_depth integer not null default 0,
      mirror_lag_ms double precision not null default 0,
      reported_at timestamptz not null,
      primary key (migration, instance, bucket)
    )`.execute(db)
  await sql`create index if not exists signals_reported on cutover.signals (migration, reported_at)`.execute(db)
}
