/**
 * The design source's rollback triggers, each as a one-sided statistical test so that noise does
 * not roll back (confidence 99 % by default, with at least `minSamples` on each side):
 *
 * - error rate: the new side's error rate is more than `maxErrorRateIncrease` (0.005 = 0.5
 *   percentage points) above the old side's — a two-proportion z-test of p_new − p_old > δ;
 * - latency: the new side's p95 is more than `maxP95IncreaseMs` (100 ms) above the old side's — a
 *   quantile test: if it were not, at most 5 % of new reads would exceed old p95 + δ;
 * - consistency: compared reads are consistent less often than `minConsistency` — a binomial test
 *   of the mismatch share against 1 − minConsistency.
 */
export interface TriggerThresholds {
  readonly maxErrorRateIncrease?: number
  readonly maxP95IncreaseMs?: number
  readonly minConsistency?: number
  /** Confidence of each test, 0.9–0.9999. Default 0.99. */
  readonly confidence?: number
  readonly minSamples?: number
}

export interface TriggerInput {
  readonly old: readonly { readonly ok: boolean; readonly latencyMs: number }[]
  readonly new: readonly { readonly ok: boolean; readonly latencyMs: number }[]
  readonly comparisons: readonly boolean[]
}

export interface TriggerVerdict {
  readonly trigger: 'error_rate' | 'latency_p95' | 'consistency'
  readonly reason: string
  /** The measurements that caused it, for the audit and the structured event. */
  readonly measurements: Readonly<Record<string, number>>
}

/** The first trigger whose test rejects "the new side is fine", or undefined. */
export function evaluateTriggers(t: TriggerThresholds, input: TriggerInput): TriggerVerdict | undefined {
  const z = zFor(t.confidence ?? 0.99)
  const min = t.minSamples ?? 100
  return (
    (t.maxErrorRateIncrease !== undefined ? errorRate(t.maxErrorRateIncrease, input, z, min) : undefined) ??
    (t.maxP95IncreaseMs !== undefined ? latency(t.maxP95IncreaseMs, input, z, min) : undefined) ??
    (t.minConsistency !== undefined ? consistency(t.minConsistency, input, z, min) : undefined)
  )
}

function errorRate(delta: number, input: TriggerInput, z: number, min: number): TriggerVerdict | undefined {
  const nNew = input.new.length
  const nOld = input.old.length
  if (nNew < min || nOld < min) return undefined
  // Half a pseudo-count on each side keeps the variance positive when a side saw no errors.
  const pNew = (input.new.filter((r) => !r.ok).length + 0.5) / (nNew + 1)
  const pOld = (input.old.filter((r) => !r.ok).length + 0.5) / (nOld + 1)
  const statistic = (pNew - pOld - delta) / Math.sqrt((pNew * (1 - pNew)) / nNew + (pOld * (1 - pOld)) / nOld)
  if (statistic <= z) return undefined
  return {
    trigger: 'error_rate',
    reason: `new-store error rate ${pct(pNew)} exceeds the old store's ${pct(pOld)} by more than ${pct(delta)} (z = ${statistic.toFixed(2)})`,
    measurements: { newErrorRate: pNew, oldErrorRate: pOld, threshold: delta, z: statistic, newSamples: nNew, oldSamples: nOld },
  }
}

function latency(deltaMs: number, input: TriggerInput, z: number, min: number): TriggerVerdict | undefined {
  const oldOk = input.old.filter((r) => r.ok).map((r) => r.latencyMs)
  const newOk = input.new.filter((r) => r.ok).map((r) => r.latencyMs)
  if (oldOk.length < min || newOk.length < min) return undefined
  const oldP95 = quantile(oldOk, 0.95)
  const bound = oldP95 + deltaMs
  const share = newOk.filter((ms) => ms > bound).length / newOk.length
  const statistic = (share - 0.05) / Math.sqrt((0.05 * 0.95) / newOk.length)
  if (statistic <= z) return undefined
  const newP95 = quantile(newOk, 0.95)
  return {
    trigger: 'latency_p95',
    reason: `new-store p95 ${newP95.toFixed(1)} ms exceeds the old store's ${oldP95.toFixed(1)} ms by more than ${deltaMs} ms (z = ${statistic.toFixed(2)})`,
    measurements: { newP95Ms: newP95, oldP95Ms: oldP95, thresholdMs: deltaMs, shareAboveBound: share, z: statistic, newSamples: newOk.length, oldSamples: oldOk.length },
  }
}

function consistency(minimum: number, input: TriggerInput, z: number, min: number): TriggerVerdict | undefined {
  const n = input.comparisons.length
  if (n < min) return undefined
  const allowed = 1 - minimum
  const mismatch = input.comparisons.filter((equal) => !equal).length / n
  const statistic = (mismatch - allowed) / Math.sqrt((Math.max(allowed, 1e-6) * (1 - allowed)) / n)
  if (statistic <= z) return undefined
  return {
    trigger: 'consistency',
    reason: `compared reads consistent ${pct(1 - mismatch)} of the time, below ${pct(minimum)} (z = ${statistic.toFixed(2)})`,
    measurements: { consistency: 1 - mismatch, threshold: minimum, z: statistic, comparisons: n },
  }
}

function quantile(values: readonly number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number
}

/** The standard normal quantile of `confidence` (Acklam's rational approximation, error < 1.2e-9 in z). */
function zFor(confidence: number): number {
  const p = Math.min(Math.max(confidence, 0.5), 0.999999)
  const a = [-39.69683028665376, 220.9460984245205, -275.9285104469687, 138.357751867269, -30.66479806614716, 2.506628277459239]
  const b = [-54.47609879822406, 161.5858368580409, -155.6989798598866, 66.80131188771972, -13.28068155288572]
  const c = [-0.007784894002430293, -0.3223964580411365, -2.400758277161838, -2.549732539343734, 4.374664141464968, 2.938163982698783]
  const d = [0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416]
  if (p > 0.97575) {
    const q = Math.sqrt(-2 * Math.log(1 - p))
    return -(((((c[0]! * q + c[1]!) * q + c[2]!) * q + c[3]!) * q + c[4]!) * q + c[5]!) / ((((d[0]! * q + d[1]!) * q + d[2]!) * q + d[3]!) * q + 1)
  }
  const q = p - 0.5
  const r = q * q
  return ((((((a[0]! * r + a[1]!) * r + a[2]!) * r + a[3]!) * r + a[4]!) * r + a[5]!) * q) / (((((b[0]! * r + b[1]!) * r + b[2]!) * r + b[3]!) * r + b[4]!) * r + 1)
}

function pct(share: number): string {
  return `${(share * 100).toFixed(2)}%`
}
