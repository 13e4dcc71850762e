import { Counter, Gauge, Histogram, Registry } from 'prom-client'
import type { Cutover } from '../runtime/cutover.js'
import { DURATION_BUCKETS_S, type ExportedMetric, exportedLabels, labelNames, METRIC_CATALOG, prometheusName, STATE_GAUGES } from './metric-catalog.js'
import type { Labels } from './metrics.js'
import { readRuntimeGauges } from './runtime-gauges.js'

export interface PrometheusMetricsOptions {
  /** Registry to register in (the application's own, to mount on its `/metrics`); default a new one. */
  readonly registry?: Registry
}

/**
 * Registers every Cutover metric in a prom-client registry: counters and histograms fed through the
 * engine's `Metrics` sink seam, gauges of the runtime state read at each scrape. Mount
 * `registry.metrics()` on the application's `/metrics`, or serve it with `startMetricsServer`.
 */
export function prometheusMetrics(cutover: Cutover, options: PrometheusMetricsOptions = {}): { registry: Registry; stop(): void } {
  const registry = options.registry ?? new Registry()
  const series = new Map<string, Counter | Histogram | Gauge>()
  for (const group of groupByName(Object.values(METRIC_CATALOG))) {
    const [first] = group as [ExportedMetric]
    const config = {
      name: prometheusName(first),
      help: group.map((m) => m.description).find((d) => d !== '') ?? first.name,
      labelNames: [...new Set(group.flatMap(labelNames))],
      registers: [registry],
    }
    series.set(
      first.name,
      first.kind === 'counter' ? new Counter(config) : first.kind === 'histogram' ? new Histogram({ ...config, buckets: [...DURATION_BUCKETS_S] }) : new Gauge(config),
    )
  }
  // Each state gauge reads the runtime when it is collected: a scrape sees the state now.
  for (const metric of Object.values(STATE_GAUGES)) {
    const gauge: Gauge = new Gauge({
      name: prometheusName(metric),
      help: metric.description,
      labelNames: labelNames(metric),
      registers: [registry],
      collect: () => {
        gauge.reset()
        for (const reading of readRuntimeGauges(cutover)) if (reading.metric === metric) gauge.set({ ...reading.labels }, reading.value)
      },
    })
  }
  const record = (name: string, value: number, labels: Labels | undefined) => {
    const metric = METRIC_CATALOG[name]
    const target = metric && series.get(metric.name)
    if (!metric || !target) return
    const scaled = value * (metric.scale ?? 1)
    const exported = exportedLabels(metric, labels)
    if (target instanceof Counter) target.inc(exported, scaled)
    else if (target instanceof Histogram) target.observe(exported, scaled)
    else target.set(exported, scaled)
  }
  const detach = cutover.metrics.addSink({ increment: (name, labels, by) => record(name, by, labels), observe: record, set: record })
  return { registry, stop: detach }
}

function groupByName(metrics: readonly ExportedMetric[]): ExportedMetric[][] {
  const groups = new Map<string, ExportedMetric[]>()
  for (const metric of metrics) groups.set(metric.name, [...(groups.get(metric.name) ?? []), metric])
  return [...groups.values()]
}
