import { type Attributes, type Counter, type Gauge, type Histogram, type Meter, metrics as otelMetrics } from '@opentelemetry/api'
import type { Cutover } from '../runtime/cutover.js'
import { DURATION_BUCKETS_S, type ExportedMetric, exportedLabels, METRIC_CATALOG, STATE_GAUGES } from './metric-catalog.js'
import type { Labels, MetricsSink } from './metrics.js'
import { readRuntimeGauges } from './runtime-gauges.js'

export interface OpenTelemetryMetricsOptions {
  /** Default: `metrics.getMeter('@cutover/core')` from the application's global MeterProvider. */
  readonly meter?: Meter
}

/**
 * Sends every Cutover metric through the OpenTelemetry metrics API: the application's SDK (its
 * MeterProvider, readers and exporters) decides where they go; without one they cost nothing.
 * Measurements arrive through the engine's `Metrics` sink seam; the state gauges (phase, read
 * share, queue depth, guard) are observable gauges read at each collection. Returns `stop()`.
 */
export function exportMetricsToOpenTelemetry(cutover: Cutover, options: OpenTelemetryMetricsOptions = {}): { stop(): void } {
  const meter = options.meter ?? otelMetrics.getMeter('@cutover/core')
  const instruments = new Map<string, Counter | Histogram | Gauge>()
  const instrument = (metric: ExportedMetric) => {
    let found = instruments.get(metric.name)
    if (!found) {
      const common = { unit: metric.unit, description: metric.description }
      found =
        metric.kind === 'counter'
          ? meter.createCounter(metric.name, common)
          : metric.kind === 'histogram'
            ? meter.createHistogram(metric.name, { ...common, advice: { explicitBucketBoundaries: [...DURATION_BUCKETS_S] } })
            : meter.createGauge(metric.name, common)
      instruments.set(metric.name, found)
    }
    return found
  }
  const record = (name: string, value: number, labels: Labels | undefined) => {
    const metric = METRIC_CATALOG[name]
    if (!metric) return
    const attributes = otelAttributes(exportedLabels(metric, labels))
    const target = instrument(metric)
    const scaled = value * (metric.scale ?? 1)
    if (metric.kind === 'counter') (target as Counter).add(scaled, attributes)
    else if (metric.kind === 'histogram') (target as Histogram).record(scaled, attributes)
    else (target as Gauge).record(scaled, attributes)
  }
  const sink: MetricsSink = { increment: (name, labels, by) => record(name, by, labels), observe: record, set: record }
  const detach = cutover.metrics.addSink(sink)

  const gauges = Object.values(STATE_GAUGES).map((metric) => meter.createObservableGauge(metric.name, { unit: metric.unit, description: metric.description }))
  const byName = new Map(Object.values(STATE_GAUGES).map((metric, i) => [metric.name, gauges[i]]))
  const collect = (result: import('@opentelemetry/api').BatchObservableResult) => {
    for (const reading of readRuntimeGauges(cutover)) {
      const gauge = byName.get(reading.metric.name)
      if (gauge) result.observe(gauge, reading.value, otelAttributes(reading.labels))
    }
  }
  meter.addBatchObservableCallback(collect, gauges)
  return {
    stop() {
      detach()
      meter.removeBatchObservableCallback(collect, gauges)
    },
  }
}

/** `migration` → `cutover.migration`: attributes in a namespace of their own. */
function otelAttributes(labels: Readonly<Record<string, string>>): Attributes {
  const attributes: Attributes = {}
  for (const [key, value] of Object.entries(labels)) attributes[`cutover.${key}`] = value
  return attributes
}
