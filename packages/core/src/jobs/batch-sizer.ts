/** How batch sizes adapt: start small, grow while batches stay fast, shrink when they get slow. */
export interface BatchSizing {
  /** First batch. Default 1,000. */
  readonly initial?: number
  readonly min?: number
  readonly max?: number
  /** Batch latency (read + map + write + verify) to stay under. Default 500 ms. */
  readonly targetMs?: number
}

// 10,000 rows amortize the per-batch queries (checkpoint, control, read-back) to nothing; more only costs memory.
const DEFAULTS = { initial: 1_000, min: 100, max: 10_000, targetMs: 500 } as const

/**
 * Additive-increase is too slow to matter on a million rows and multiplicative growth overshoots;
 * growing by half while under half the target and halving when over the target is the compromise
 * gh-ost-like tools settle on: a few batches to find the size, no oscillation once there.
 *
 * Some stores cost about the same per query whatever its size (FerretDB sorts the whole
 * collection for every keyset page): there, halving only multiplies the queries. When a halving
 * did not bring the latency down by a quarter, the sizer stops aiming at the latency and climbs on
 * throughput instead: it grows while rows per second improve by 10 %, and settles one step back
 * once they stop improving.
 */
export class BatchSizer {
  readonly #settings: Required<BatchSizing>
  #size: number
  #mode: 'latency' | 'throughput' | 'settled' = 'latency'
  #last: { size: number; latencyMs: number; rate: number; shrunk: boolean } | undefined

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
    const size = this.#size
    const rate = size / Math.max(latencyMs, 1)
    const last = this.#last
    let shrunk = false
    if (this.#mode === 'throughput' && last) {
      if (rate > last.rate * 1.1) this.#size = clamp(Math.ceil(size * 1.5), min, max)
      else if (rate < last.rate * 0.9 && last.size < size) {
        this.#size = last.size
        this.#mode = 'settled'
      }
    } else if (this.#mode === 'latency') {
      if (latencyMs > targetMs) {
        if (last?.shrunk && latencyMs > last.latencyMs * 0.75) {
          this.#mode = 'throughput'
          this.#size = clamp(Math.ceil(last.size * 1.5), min, max)
        } else {
          this.#size = clamp(Math.floor(size / 2), min, max)
          shrunk = this.#size < size
        }
      } else if (latencyMs < targetMs / 2) {
        this.#size = clamp(Math.ceil(size * 1.5), min, max)
      }
    }
    this.#last = { size, latencyMs, rate, shrunk }
    return this.#size
  }
}

function clamp(value: number, min: number, max: number): number {
  return Math.max(min, Math.min(max, value))
}
