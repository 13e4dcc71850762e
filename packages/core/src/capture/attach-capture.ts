import type { DeadLetterSink } from '../control/dead-letters.js'
import type { Cutover } from '../runtime/cutover.js'
import { resolveCaptureSettings } from './capture-settings.js'
import { ChangeLogCapture } from './change-log-capture.js'

/**
 * Called by `createCutover`: for each migration with `capture: 'change-log'`, installs the triggers
 * if asked, starts its workers and attaches it to the migration's runtime, so the plugins' writes of
 * captured sides are no longer queued in memory.
 */
export async function attachChangeLogCapture(cutover: Cutover, fallbackDeadLetters: DeadLetterSink | undefined): Promise<void> {
  const deadLetters = fallbackDeadLetters ?? cutover.deadLetters
  for (const runtime of cutover.migrations) {
    const settings = runtime.migration.capture
    if (resolveCaptureSettings(settings).mode !== 'change-log' || !deadLetters || settings === undefined) continue
    const capture = await ChangeLogCapture.start({
      migration: runtime.migration,
      settings,
      phase: () => runtime.phase,
      revertWindowOpen: () => runtime.phase === 'complete' && runtime.behavior.mirror === 'new-to-old',
      deadLetters,
      metrics: cutover.metrics,
      logger: cutover.logger,
    })
    runtime.attachCapture(capture)
  }
}
