/** Labels of a metric, e.g. `{ migration: 'users', side: 'new' }`. */
export type Labels = Readonly<Record<string, string>>

export interface HistogramSummary {
  readonly count: number
  readonly mean: number
  readonly p50: number
  readonly p99: number
  readonly max: number
}

export interface MetricsSnapshot {
  readonly counters: Readonly<Record<string, number>>
  readonly histograms: Readonly<Record<string, HistogramSummary>>
  readonly gauges: Readonly<Record<string, number>>
}

/**
 * Receives every measurement as it is made: the seam through which OpenTelemetry and Prometheus
 * (`observe/otel-metrics.ts`, `observe/prometheus-metrics.ts`) see the same numbers as `snapshot()`,
 * without a call site knowing about either. A sink must not throw; if it does, it is skipped.
 */
export interface MetricsSink {
  increment(name: string, labels: Labels | undefined, by: number): void
  observe(name: string, value: number, labels: Labels | undefined): void
  set(name: string, value: number, labels: Labels | undefined): void
}

/** How many recent observations a histogram keeps for its quantiles. */
const RESERVOIR = 4_096

class Histogram {
  readonly #recent = new Float64Array(RESERVOIR)
  #count = 0
  #sum = 0
  #max = 0

  observe(value: number): void {
    this.#recent[this.#count % RESERVOIR] = value
    this.#count++
    this.#sum += value
    if (value > this.#max) this.#max = value
  }

  summary(): HistogramSummary {
    const kept = this.#recent.slice(0, Math.min(this.#count, RESERVOIR)).sort()
    const at = (q: number) => (kept.length === 0 ? 0 : (kept[Math.min(kept.length - 1, Math.floor(q * kept.length))] as number))
    return { count: this.#count, mean: this.#count === 0 ? 0 : this.#sum / this.#count, p50: at(0.5), p99: at(0.99), max: this.#max }
  }
}

/**
 * In-process counters and latency histograms (quantiles over the last 4,096 observations). Export
 * `snapshot()` to your metrics system; names are stable and documented in the README.
 */
export class Metrics {
  readonly #counters = new Map<string, number>()
  readonly #histograms = new Map<string, Histogram>()
  readonly #gauges = new Map<string, number>()
  #sinks: readonly MetricsSink[] = []

  increment(name: string, labels?: Labels, by = 1): void {
    const id = metricId(name, labels)
    this.#counters.set(id, (this.#counters.get(id) ?? 0) + by)
    for (const sink of this.#sinks) guarded(() => sink.increment(name, labels, by))
  }

  observe(name: string, value: number, labels?: Labels): void {
    const id = metricId(name, labels)
    let histogram = this.#histograms.get(id)
    if (!histogram) this.#histograms.set(id, (histogram = new Histogram()))
    histogram.observe(value)
    for (const sink of this.#sinks) guarded(() => sink.observe(name, value, labels))
  }

  /** Sets a gauge (a value that goes up and down: a rate, a depth). */
  set(name: string, value: number, labels?: Labels): void {
    this.#gauges.set(metricId(name, labels), value)
    for (const sink of this.#sinks) guarded(() => sink.set(name, value, labels))
  }

  gauge(name: string, labels?: Labels): number | undefined {
    return this.#gauges.get(metricId(name, labels))
  }

  /** Forwards every later measurement to `sink` too; returns the function that detaches it. */
  addSink(sink: MetricsSink): () => void {
    this.#sinks = [...this.#sinks, sink]
    return () => {
      this.#sinks = this.#sinks.filter((s) => s !== sink)
    }
  }

  counter(name: string, labels?: Labels): number {
    return this.#counters.get(metricId(name, labels)) ?? 0
  }

  histogram(name: string, labels?: Labels): HistogramSummary | undefined {
    return this.#histograms.get(metricId(name, labels))?.summary()
  }

  snapshot(): MetricsSnapshot {
    return {
      counters: Object.fromEntries(this.#counters),
      histograms: Object.fromEntries([...this.#histograms].map(([id, h]) => [id, h.summary()])),
      gauges: Object.fromEntries(this.#gauges),
    }
  }
}

/** `mirror.applied{migration=users,side=new}`: labels sorted, so one series has one id. */
export function metricId(name: string, labels?: Labels): string {
  if (!labels) return name
  const keys = Object.keys(labels).sort()
  return keys.length === 0 ? name : `${name}{${keys.map((k) => `${k}=${labels[k]}`).join(',')}}`
}

/** Reads an id of `metricId` back into its name and labels. */
export function parseMetricId(id: string): { name: string; labels: Record<string, string> } {
  const brace = id.indexOf('{')
  if (brace < 0) return { name: id, labels: {} }
  const labels: Record<string, string> = {}
  for (const pair of id.slice(brace + 1, -1).split(',')) {
    const eq = pair.indexOf('=')
    labels[pair.slice(0, eq)] = pair.slice(eq + 1)
  }
  return { name: id.slice(0, brace), labels }
}

/** Metrics never throw into the code that measures. */
function guarded(run: () => void): void {
  try {
    run()
  } catch {
    // An exporter's failure is its own; the measurement stays in the in-process snapshot.
  }
}
