/**
 * `ChangeLogCapture`: change-log capture of one migration inside a running `Cutover`: the workers
 * that apply its captured sides' logs, and the keys this process wrote, for read-your-writes.
 */
import type { DeadLetterSink } from '../control/dead-letters.js'
import type { Migration } from '../model/migration.js'
import type { Phase, Side } from '../model/phase.js'
import type { KeyValue } from '../model/store.js'
import type { Logger } from '../observe/logger.js'
import type { Metrics } from '../observe/metrics.js'
import { capturableSides, captureStatus, captureTable, installCapture, objectsFor } from './capture-install.js'
import { type CaptureSettings, resolveCaptureSettings } from './capture-settings.js'
import { ChangeLogWorker } from './change-log-worker.js'
import { NotedWrites } from './noted-writes.js'
import type { RuntimeCapture } from './runtime-capture.js'

export interface ChangeLogCaptureOptions {
  readonly migration: Migration<any, any>
  readonly settings: CaptureSettings
  readonly phase: () => Phase
  /** Whether `complete`'s revert window is open (the reverse mirror still runs). */
  readonly revertWindowOpen?: () => boolean
  readonly deadLetters: DeadLetterSink
  readonly metrics: Metrics
  readonly logger: Logger
}

export class ChangeLogCapture implements RuntimeCapture {
  readonly #sides: ReadonlySet<Side>
  readonly #workers: ChangeLogWorker[] = []
  readonly #noted = new Map<Side, NotedWrites>()

  /** Installs the triggers if the settings ask for it, then starts the workers. */
  static async start(options: ChangeLogCaptureOptions): Promise<ChangeLogCapture> {
    const settings = resolveCaptureSettings(options.settings)
    const wanted = settings.sides ?? capturableSides(options.migration)
    if (settings.install) await installCapture(options.migration, wanted)
    // A side whose triggers are not installed stays with interception, so nothing goes unmirrored
    // while an operator has yet to run `cutover capture install` (seen at the next start).
    const installed = (await captureStatus(options.migration, wanted)).filter((status) => status.installed).map((status) => status.side)
    for (const side of wanted.filter((s) => !installed.includes(s))) {
      options.logger.warn('change-log capture is not installed for this side; its writes are intercepted instead', { migration: options.migration.name, side })
    }
    const capture = new ChangeLogCapture(options, installed)
    capture.#startWorkers(options, settings.workers, settings.batchSize, settings.pollIntervalMs)
    return capture
  }

  private constructor(options: ChangeLogCaptureOptions, sides: readonly Side[]) {
    this.#sides = new Set(sides)
    for (const side of sides) {
      this.#noted.set(side, new NotedWrites(captureTable(options.migration, side), objectsFor(options.migration, side).capture, options.logger))
    }
  }

  /** The workers of this process, old side first (tests, `drain`). */
  get workers(): readonly ChangeLogWorker[] {
    return this.#workers
  }

  captures(side: Side): boolean {
    return this.#sides.has(side)
  }

  noteWrite(side: Side, key: KeyValue): void {
    this.#noted.get(side)?.note(key)
  }

  noteUnkeyedWrite(side: Side): void {
    this.#noted.get(side)?.noteUnkeyed()
  }

  hasUnkeyedPending(side: Side): boolean {
    return this.#noted.get(side)?.unkeyedPending ?? false
  }

  hasUnapplied(side: Side, key?: KeyValue): boolean {
    return this.#noted.get(side)?.has(key) ?? false
  }

  isSettling(side: Side, key: KeyValue, since?: number): boolean {
    return this.#noted.get(side)?.isSettling(key, since) ?? false
  }

  phaseChanged(): void {
    for (const worker of this.#workers) worker.phaseChanged()
  }

  async drain(): Promise<void> {
    for (const worker of this.#workers) await worker.drain()
  }

  async close(): Promise<void> {
    await Promise.all(this.#workers.map((worker) => worker.stop()))
    for (const noted of this.#noted.values()) noted.close()
  }

  #startWorkers(options: ChangeLogCaptureOptions, count: number, batchSize: number, pollIntervalMs: number): void {
    for (const side of this.#sides) {
      const noted = this.#noted.get(side) as NotedWrites
      for (let i = 0; i < count; i++) {
        const worker = new ChangeLogWorker({
          migration: options.migration,
          direction: side === 'old' ? 'old-to-new' : 'new-to-old',
          deadLetters: options.deadLetters,
          phase: options.phase,
          ...(options.revertWindowOpen ? { revertWindowOpen: options.revertWindowOpen } : {}),
          batchSize,
          pollIntervalMs,
          metrics: options.metrics,
          logger: options.logger,
          onApplied: (keys) => noted.settle(keys),
        })
        worker.start()
        this.#workers.push(worker)
      }
    }
  }
}
