import { PHASES } from '../model/phase.js'
import type { Cutover } from '../runtime/cutover.js'
import { type ExportedMetric, STATE_GAUGES } from './metric-catalog.js'

export interface GaugeReading {
  readonly metric: ExportedMetric
  readonly value: number
  readonly labels: Readonly<Record<string, string>>
}

/**
 * The gauges read from the running engine at collection time: phase in force (its index in
 * `PHASES`), the share of reads the phase routes to the new store, mirror queue depth, and whether a
 * guard holds the process in rollback. Nothing is sampled in between: a scrape sees the state now.
 */
export function readRuntimeGauges(cutover: Cutover): GaugeReading[] {
  const readings: GaugeReading[] = []
  for (const runtime of cutover.migrations) {
    const migration = { migration: runtime.name }
    const reads = runtime.behavior.reads
    readings.push(
      { metric: STATE_GAUGES.phase as ExportedMetric, value: PHASES.indexOf(runtime.phase), labels: migration },
      { metric: STATE_GAUGES.readShare as ExportedMetric, value: reads === 'split' ? runtime.readPercent / 100 : reads === 'new' ? 1 : 0, labels: migration },
      { metric: STATE_GAUGES.guardTripped as ExportedMetric, value: runtime.phase === 'rollback' && runtime.configuredPhase !== 'rollback' ? 1 : 0, labels: migration },
    )
    for (const direction of ['old-to-new', 'new-to-old'] as const) {
      readings.push({ metric: STATE_GAUGES.queueDepth as ExportedMetric, value: runtime.queue(direction).depth, labels: { ...migration, direction } })
    }
  }
  return readings
}
