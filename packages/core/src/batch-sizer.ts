/** How batch sizes adapt: start small, grow while batches stay fast, shrink when they get slow. */
export interface BatchSizing {
  /** First batch. Default 1,000. */
  readonly initial?: number
  readonly min?: number
  readonly max?: number
  /** Batch latency (read + map + write + verify) to stay under. Default 500 ms. */
  readonly targetMs?: number
}

const DEFAULTS = { initial: 1_000, min: 100, max: 20_000, targetMs: 500 } as const

/**
 * Additive-increase is too slow to matter on a million rows and multiplicative growth overshoots;
 * growing by half while under half the target and halving when over the target is the compromise
 * gh-ost-like tools settle on: a few batches to find the size, no oscillation once there.
 */
export class BatchSizer {
  readonly #settings: Required<BatchSizing>
  #size: number

  constructor(settings: BatchSizing = {}, resumeAt?: number) {
    this.#settings = { ...DEFAULTS, ...settings }
    const start = resumeAt ?? this.#settings.initial
    this.#size = clamp(start, this.#settings.min, this.#settings.max)
  }

  get size(): number {
    return this.#size
  }

  get targetMs(): number {
    return this.#settings.targetMs
  }

  /** Feeds back how long a full batch took; returns the next size. */
  observe(latencyMs: number): number {
    const { min, max, targetMs } = this.#settings
    if (latencyMs > targetMs) this.#size = clamp(Math.floor(this.#size / 2), min, max)
    else if (latencyMs < targetMs / 2) this.#size = clamp(Math.ceil(this.#size * 1.5), min, max)
    return this.#size
  }
}

function clamp(value: number, min: number, max: number): number {
  return Math.max(min, Math.min(max, value))
}
