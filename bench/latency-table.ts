/** Shared by the plugin benchmarks: per-op latency quantiles and their ratios to the plain baseline. */

export function quantile(values: readonly number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0
}

/** Adds one latency (milliseconds) to `samples` under the `variant:op` key the tables read. */
export function addSample(samples: Map<string, number[]>, variant: string, op: string, ms: number): void {
  const id = `${variant}:${op}`
  const list = samples.get(id)
  if (list) list.push(ms)
  else samples.set(id, [ms])
}

/**
 * Markdown rows `| op | variant | median | p99 | median ratio | p99 ratio |` for samples keyed
 * `variant:op` (milliseconds), each variant against `plain` of the same op; returns the rows and
 * the median ratios by `variant:op`.
 */
export function latencyRows(
  samples: ReadonlyMap<string, readonly number[]>,
  ops: readonly string[],
  variants: readonly string[],
  label: (variant: string) => string,
): { rows: string[]; ratios: Map<string, number> } {
  const us = (ms: number) => `${Math.round(ms * 1000)} µs`
  const rows = ['| op | variant | median | p99 | median ratio | p99 ratio |', '|---|---|---:|---:|---:|---:|']
  const ratios = new Map<string, number>()
  for (const op of ops) {
    const base = samples.get(`plain:${op}`) ?? []
    const baseMedian = quantile(base, 0.5)
    const baseP99 = quantile(base, 0.99)
    for (const variant of variants) {
      const values = samples.get(`${variant}:${op}`) ?? []
      const median = quantile(values, 0.5)
      const p99 = quantile(values, 0.99)
      ratios.set(`${variant}:${op}`, median / baseMedian)
      rows.push(`| ${op} | ${label(variant)} | ${us(median)} | ${us(p99)} | ${(median / baseMedian).toFixed(3)} | ${(p99 / baseP99).toFixed(3)} |`)
    }
  }
  return { rows, ratios }
}

/**
 * The plugin issues' targets as one line: the worst median ratio of the writes in `shadow` at most
 * 1.05, the median ratio of the reads in `compare` at most 1.10.
 */
export function targetsLine(ratios: ReadonlyMap<string, number>, writes: readonly string[], read: string): string {
  const writeRatio = Math.max(...writes.map((op) => ratios.get(`shadow:${op}`) ?? Infinity))
  const readRatio = ratios.get(`compare:${read}`) ?? Infinity
  const verdict = (ratio: number, target: number) => `**${ratio <= target ? 'met' : 'not met'}** (${ratio.toFixed(3)})`
  return `Targets (median ratio): writes in \`shadow\` ≤ 1.05 — ${verdict(writeRatio, 1.05)}; reads in \`compare\` at sample 1.0 ≤ 1.10 — ${verdict(readRatio, 1.1)}.`
}

/**
 * The variants in the order of one round of blocks, rotated by the round: each variant runs first,
 * second, … equally often, so none always follows the same one (whose leftovers — a server's
 * background work, a collection just grown — would then always land on it).
 */
export function rotated<T>(variants: readonly T[], round: number): T[] {
  return variants.map((_, i) => variants[(i + round) % variants.length] as T)
}
