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

/** Process CPU time (user + system, µs) and operations, by the `variant:op` key of the latency samples. */
export type CpuTotals = Map<string, { micros: number; ops: number }>

/**
 * Runs `block` and adds the process's CPU time it took to `cpu` under `variant:op`. CPU time is far
 * less noisy than latency on a shared machine, and counts the background work an operation causes
 * (mirroring, comparing) when `block` includes waiting for it.
 */
export async function measureCpu(cpu: CpuTotals, variant: string, op: string, ops: number, block: () => Promise<void>): Promise<void> {
  const started = process.cpuUsage()
  await block()
  const used = process.cpuUsage(started)
  const id = `${variant}:${op}`
  const total = cpu.get(id) ?? { micros: 0, ops: 0 }
  cpu.set(id, { micros: total.micros + used.user + used.system, ops: total.ops + ops })
}

/**
 * Markdown rows `| op | variant | median | p99 | median ratio | p99 ratio |` for samples keyed
 * `variant:op` (milliseconds), each variant against `plain` of the same op; with `cpu`, two more
 * columns: CPU time per operation and its ratio to plain. Returns the rows and the median ratios
 * by `variant:op` (and the CPU ratios, when measured).
 */
export function latencyRows(
  samples: ReadonlyMap<string, readonly number[]>,
  ops: readonly string[],
  variants: readonly string[],
  label: (variant: string) => string,
  cpu?: CpuTotals,
): { rows: string[]; ratios: Map<string, number>; cpuRatios: Map<string, number> } {
  const us = (ms: number) => `${Math.round(ms * 1000)} µs`
  const cpuPerOp = (id: string) => {
    const total = cpu?.get(id)
    return total && total.ops > 0 ? total.micros / total.ops : Number.NaN
  }
  const header = cpu ? ' CPU per op | CPU ratio |' : ''
  const rows = [`| op | variant | median | p99 | median ratio | p99 ratio |${header}`, `|---|---|---:|---:|---:|---:|${cpu ? '---:|---:|' : ''}`]
  const ratios = new Map<string, number>()
  const cpuRatios = new Map<string, number>()
  for (const op of ops) {
    const base = samples.get(`plain:${op}`) ?? []
    const baseMedian = quantile(base, 0.5)
    const baseP99 = quantile(base, 0.99)
    for (const variant of variants) {
      const id = `${variant}:${op}`
      const values = samples.get(id) ?? []
      const median = quantile(values, 0.5)
      const p99 = quantile(values, 0.99)
      ratios.set(id, median / baseMedian)
      let cpuCells = ''
      if (cpu) {
        const perOp = cpuPerOp(id)
        cpuRatios.set(id, perOp / cpuPerOp(`plain:${op}`))
        cpuCells = ` ${perOp.toFixed(1)} µs | ${(cpuRatios.get(id) as number).toFixed(3)} |`
      }
      rows.push(`| ${op} | ${label(variant)} | ${us(median)} | ${us(p99)} | ${(median / baseMedian).toFixed(3)} | ${(p99 / baseP99).toFixed(3)} |${cpuCells}`)
    }
  }
  return { rows, ratios, cpuRatios }
}

/**
 * The plugin issues' targets as one line: the worst median ratio of the writes in `shadow` at most
 * 1.05, the median ratio of the reads in `compare` at most 1.10, and (with `idleReads`, the
 * variants in which reads have nothing to do) the worst of those reads at most 1.02.
 */
export function targetsLine(ratios: ReadonlyMap<string, number>, writes: readonly string[], read: string, idleReads: readonly string[] = []): string {
  const writeRatio = Math.max(...writes.map((op) => ratios.get(`shadow:${op}`) ?? Infinity))
  const readRatio = ratios.get(`compare:${read}`) ?? Infinity
  const verdict = (ratio: number, target: number) => `**${ratio <= target ? 'met' : 'not met'}** (${ratio.toFixed(3)})`
  const line = `Targets (median ratio): writes in \`shadow\` ≤ 1.05 — ${verdict(writeRatio, 1.05)}; reads in \`compare\` at sample 1.0 ≤ 1.10 — ${verdict(readRatio, 1.1)}`
  if (idleReads.length === 0) return `${line}.`
  const idleRatio = Math.max(...idleReads.map((variant) => ratios.get(`${variant}:${read}`) ?? Infinity))
  return `${line}; reads in ${idleReads.map((variant) => `\`${variant}\``).join('/')} (nothing to do) ≤ 1.02 — ${verdict(idleRatio, 1.02)}.`
}

/**
 * The variants in the order of one round of blocks, rotated by the round: each variant runs first,
 * second, … equally often, so none always follows the same one (whose leftovers — a server's
 * background work, a collection just grown — would then always land on it).
 */
export function rotated<T>(variants: readonly T[], round: number): T[] {
  return variants.map((_, i) => variants[(i + round) % variants.length] as T)
}
