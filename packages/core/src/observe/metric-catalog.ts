/**
 * Every metric Cutover exports, listed once: which in-process measurement (`Metrics` name) feeds
 * which OpenTelemetry instrument and Prometheus series, with which labels. Labels not listed for a
 * metric are dropped on export, so a key, a tenant or a query text can never become a label.
 *
 * OpenTelemetry names follow its conventions (`cutover.operation.duration`, in seconds, like
 * `db.client.operation.duration`); attributes are `cutover.<label>`. Prometheus names are the same
 * with `_` and the unit (`cutover_operation_duration_seconds`, `cutover_operations_total`).
 */
export type MetricKind = 'counter' | 'histogram' | 'gauge'

export interface ExportedMetric {
  /** The OpenTelemetry instrument name. */
  readonly name: string
  readonly kind: MetricKind
  /** UCUM unit: `s`, `1`, `{row}`, … */
  readonly unit: string
  readonly description: string
  /** Labels kept from the measurement (all of bounded cardinality). */
  readonly labels: readonly string[]
  /** Labels every measurement of this source adds (e.g. `operation: read`). */
  readonly fixed?: Readonly<Record<string, string>>
  /** Multiplies the measured value (milliseconds → seconds). */
  readonly scale?: number
}

const MS = 1 / 1_000

const op = (operation: string, outcome: string): ExportedMetric => ({
  name: 'cutover.operations',
  kind: 'counter',
  unit: '{operation}',
  description: 'Operations Cutover saw or made, by migration, side, operation and outcome',
  labels: ['migration', 'side'],
  fixed: { operation, outcome },
})

const duration = (operation: string): ExportedMetric => ({
  name: 'cutover.operation.duration',
  kind: 'histogram',
  unit: 's',
  description: 'Duration of reads served and of mirrored writes, by migration, side and operation',
  labels: ['migration', 'side'],
  fixed: { operation },
  scale: MS,
})

const mirror = (event: string): ExportedMetric => ({
  name: 'cutover.mirror.events',
  kind: 'counter',
  unit: '{key}',
  description: 'Mirror queue events by migration, direction and event',
  labels: ['migration', 'direction'],
  fixed: { event },
})

const compared = (result: string): ExportedMetric => ({
  name: 'cutover.compare.reads',
  kind: 'counter',
  unit: '{read}',
  description: 'Compared reads by result: equal, mismatch, settling (mirror lag), skipped, failed',
  labels: ['migration', 'reason'],
  fixed: { result },
})

const counter = (name: string, description: string, labels: readonly string[], unit = '1', fixed?: Readonly<Record<string, string>>): ExportedMetric => ({
  name,
  kind: 'counter',
  unit,
  description,
  labels,
  ...(fixed ? { fixed } : {}),
})

/** In-process measurement name → exported metric. */
export const METRIC_CATALOG: Readonly<Record<string, ExportedMetric>> = Object.freeze({
  'read.ok': op('read', 'ok'),
  'read.error': op('read', 'error'),
  'write.recorded': op('write', 'ok'),
  'read.latency_ms': duration('read'),
  'mirror.apply_ms': duration('mirror_write'),
  'read.fallback': counter('cutover.read.fallbacks', 'Reads served from the old store because the new one failed, or was behind for the read\'s keys', ['migration', 'reason'], '{read}', { reason: 'new_store_error' }),
  'read.fresh_fallback': counter('cutover.read.fallbacks', '', ['migration', 'reason'], '{read}', { reason: 'read_your_writes' }),
  'read.untranslatable': counter('cutover.read.untranslatable', 'Reads that could not be translated for the new store and stayed on the old one', ['migration'], '{read}'),
  'mirror.enqueued': mirror('enqueued'),
  'mirror.applied': mirror('applied'),
  'mirror.coalesced': mirror('coalesced'),
  'mirror.retried': mirror('retried'),
  'mirror.overflow': mirror('overflow'),
  'mirror.rejected': mirror('rejected'),
  'mirror.lost': mirror('lost'),
  'mirror.recheck_repaired': mirror('recheck_repaired'),
  'mirror.recheck_gave_up': mirror('recheck_gave_up'),
  'mirror.lag_ms': {
    name: 'cutover.mirror.lag',
    kind: 'histogram',
    unit: 's',
    description: 'Time from a committed write being queued to its mirror being applied',
    labels: ['migration', 'direction'],
    scale: MS,
  },
  'mirror.dead_lettered': counter('cutover.dead_letters', 'Mirrored changes given up on and dead-lettered, by reason code', ['migration', 'direction', 'reason'], '{key}'),
  'compare.equal': compared('equal'),
  'compare.mismatch': compared('mismatch'),
  'compare.settling': compared('settling'),
  'compare.skipped': compared('skipped'),
  'compare.failed': compared('failed'),
  'compare.mismatch_field': counter('cutover.compare.mismatched_fields', 'Differences found by compared reads, by field path (array positions as *)', ['migration', 'field'], '{difference}'),
  'write.unmirrored': counter('cutover.write.unmirrored', 'Writes seen whose keys could not be attributed, by target table or collection', ['migration', 'target'], '{write}'),
  'write.stale_side': counter('cutover.write.stale_side', 'Writes that reached the store that is no longer authoritative', ['migration'], '{write}'),
  'write.fenced': counter('cutover.write.fenced', 'Writes refused because this instance is fenced or waiting at a barrier', ['migration'], '{write}'),
  'guard.rollback': counter('cutover.guard.rollbacks', 'Rollbacks a guard triggered', ['migration'], '{rollback}'),
  'backfill.rows': counter('cutover.backfill.rows', 'Rows a backfill read from the old store', ['migration'], '{row}'),
  'backfill.rate': { name: 'cutover.backfill.rate', kind: 'gauge', unit: '{row}/s', description: 'Rows per second of the running backfill', labels: ['migration'] },
  'api.v1': counter('cutover.api.v1.calls', 'Calls served through a v1 API adapter (still relying on the old shape)', ['migration'], '{call}'),
})

/**
 * Gauges read from the runtime's state when a reader collects (not from measurements): see
 * `readRuntimeGauges`.
 */
export const STATE_GAUGES: Readonly<Record<string, ExportedMetric>> = Object.freeze({
  phase: { name: 'cutover.phase', kind: 'gauge', unit: '1', description: 'Phase in force in this process: 0 off, 1 shadow, 2 compare, 3 ramp, 4 cutover, 5 complete, 6 rollback', labels: ['migration'] },
  readShare: { name: 'cutover.read.routed_share', kind: 'gauge', unit: '1', description: 'Share of reads routed to the new store by the phase and read percent (0–1)', labels: ['migration'] },
  queueDepth: { name: 'cutover.mirror.queue.depth', kind: 'gauge', unit: '{key}', description: 'Keys waiting in the mirror queue', labels: ['migration', 'direction'] },
  guardTripped: { name: 'cutover.guard.tripped', kind: 'gauge', unit: '1', description: '1 while a guard holds this process in rollback, else 0', labels: ['migration'] },
})

/** The Prometheus name of an exported metric. */
export function prometheusName(metric: ExportedMetric): string {
  const base = metric.name.replace(/\./g, '_')
  if (metric.kind === 'counter') return `${base}_total`
  if (metric.unit === 's') return `${base}_seconds`
  return base
}

/** Labels of a measurement as exported: the listed ones, plus the fixed ones, nothing else. */
export function exportedLabels(metric: ExportedMetric, labels: Readonly<Record<string, string>> | undefined): Record<string, string> {
  const out: Record<string, string> = {}
  for (const label of metric.labels) {
    const value = labels?.[label]
    if (value !== undefined) out[label] = value
  }
  return { ...out, ...metric.fixed }
}

/** Every label an exported metric can carry, for declaring Prometheus series. */
export function labelNames(metric: ExportedMetric): string[] {
  return [...new Set([...metric.labels, ...Object.keys(metric.fixed ?? {})])]
}

/** Bucket bounds in seconds for the duration histograms: 0.5 ms to 10 s. */
export const DURATION_BUCKETS_S: readonly number[] = Object.freeze([0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10])
