/**
 * Progress for humans and for machines: on a terminal, one line redrawn in place (bar, count, rate,
 * ETA, throttle reason); elsewhere (CI, log collectors), one JSON object per line, at most one a
 * second, so logs stay readable and parseable.
 */
export interface ProgressUpdate {
  readonly label: string
  readonly done: number
  readonly total?: number | undefined
  /** Items per second. */
  readonly rate?: number | undefined
  /** Shown after the numbers: a stage, a throttle reason. */
  readonly note?: string | undefined
  /** Extra fields for the JSON form. */
  readonly fields?: Readonly<Record<string, unknown>>
}

export interface RendererStream {
  write(chunk: string): boolean
  readonly isTTY?: boolean
  readonly columns?: number
}

export class ProgressRenderer {
  readonly #stream: RendererStream
  readonly #tty: boolean
  readonly #now: () => number
  #lastDraw = Number.NEGATIVE_INFINITY
  #drawn = false

  constructor(stream: RendererStream, options: { json?: boolean; now?: () => number } = {}) {
    this.#stream = stream
    this.#tty = !options.json && stream.isTTY === true
    this.#now = options.now ?? Date.now
  }

  get interactive(): boolean {
    return this.#tty
  }

  update(update: ProgressUpdate, options: { force?: boolean } = {}): void {
    const now = this.#now()
    const interval = this.#tty ? 100 : 1_000
    if (!options.force && now - this.#lastDraw < interval) return
    this.#lastDraw = now
    if (this.#tty) {
      this.#stream.write(`\r\x1b[2K${progressLine(update, this.#stream.columns ?? 100)}`)
      this.#drawn = true
    } else {
      this.#stream.write(`${JSON.stringify(progressJson(update, now))}\n`)
    }
  }

  /** Ends the live line (terminal) so that what follows starts on a fresh line. */
  done(): void {
    if (this.#tty && this.#drawn) this.#stream.write('\n')
    this.#drawn = false
  }
}

/** `users  [#########-----------]  45.2%  45,210/100,000  3,210/s  ETA 0:17  rate-limit` */
export function progressLine(update: ProgressUpdate, columns: number): string {
  const parts = [update.label]
  if (update.total !== undefined && update.total > 0) {
    const ratio = Math.min(1, update.done / update.total)
    const width = Math.max(10, Math.min(30, columns - 80))
    const filled = Math.round(ratio * width)
    parts.push(`[${'#'.repeat(filled)}${'-'.repeat(width - filled)}]`, `${(ratio * 100).toFixed(1).padStart(5)}%`, `${formatCount(update.done)}/${formatCount(update.total)}`)
  } else {
    parts.push(formatCount(update.done))
  }
  if (update.rate !== undefined) parts.push(`${formatCount(Math.round(update.rate))}/s`)
  const eta = etaSeconds(update)
  if (eta !== undefined) parts.push(`ETA ${formatDuration(eta)}`)
  if (update.note) parts.push(update.note)
  return parts.join('  ').slice(0, Math.max(20, columns - 1))
}

function progressJson(update: ProgressUpdate, now: number): Record<string, unknown> {
  return {
    type: 'progress',
    time: new Date(now).toISOString(),
    label: update.label,
    done: update.done,
    ...(update.total === undefined ? {} : { total: update.total }),
    ...(update.rate === undefined ? {} : { rate: Math.round(update.rate * 10) / 10 }),
    ...(etaSeconds(update) === undefined ? {} : { etaSeconds: Math.round(etaSeconds(update) as number) }),
    ...(update.note ? { note: update.note } : {}),
    ...update.fields,
  }
}

function etaSeconds(update: ProgressUpdate): number | undefined {
  if (update.total === undefined || !update.rate || update.rate <= 0) return undefined
  return Math.max(0, (update.total - update.done) / update.rate)
}

export function formatCount(n: number): string {
  return n.toLocaleString('en-US')
}

export function formatDuration(seconds: number): string {
  const s = Math.round(seconds)
  const h = Math.floor(s / 3_600)
  const m = Math.floor((s % 3_600) / 60)
  const rest = String(s % 60).padStart(2, '0')
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${rest}` : `${m}:${rest}`
}
