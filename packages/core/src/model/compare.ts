import {
  CanonicalNumber,
  type CanonicalOptions,
  type CanonicalValue,
  canonicalize,
  canonicalRecordText,
  canonicalText,
  formatPath,
  hasPathRules,
  matchesAny,
  type Path,
} from './canonical.js'

/** What is expected to differ and what must not be shown. */
export interface ComparisonRules extends CanonicalOptions {
  /** Absolute numeric tolerance per path pattern, e.g. `{ 'price': 0.005 }`. */
  readonly tolerance?: Readonly<Record<string, number>>
  /** Paths whose values never appear in a report (only the path and the kind of difference). */
  readonly sensitive?: readonly string[]
}

/**
 * - `missing`: present in the expected record, absent from the actual one;
 * - `unexpected`: present only in the actual record;
 * - `changed`: present in both with different values (or types).
 */
export type DifferenceKind = 'missing' | 'unexpected' | 'changed'

export interface Difference {
  readonly path: string
  readonly kind: DifferenceKind
  /** Canonical values; left out for sensitive paths, where `redacted` is true. */
  readonly expected?: unknown
  readonly actual?: unknown
  readonly redacted?: true
}

export interface Comparison {
  readonly equal: boolean
  readonly differences: readonly Difference[]
}

const EQUAL: Comparison = Object.freeze({ equal: true, differences: Object.freeze([]) })

/**
 * Compares two records in canonical form. `expected` is the side being trusted (the old store's
 * record mapped forward, usually); `actual` the side under test.
 */
export function compareRecords(expected: unknown, actual: unknown, rules: ComparisonRules = {}): Comparison {
  // Equal canonical texts are equal under every rule (tolerances only forgive differences), and
  // the text is cheap to write when no rule needs paths: most comparisons end here.
  if (!hasPathRules(rules) && canonicalRecordText(expected, rules) === canonicalRecordText(actual, rules)) return EQUAL
  const differences: Difference[] = []
  diff(canonicalize(expected, rules), canonicalize(actual, rules), [], rules, differences)
  return { equal: differences.length === 0, differences }
}

function diff(a: CanonicalValue, b: CanonicalValue, path: Path, rules: ComparisonRules, out: Difference[]): void {
  if (isObject(a) && isObject(b)) {
    const keys = new Set([...Object.keys(a), ...Object.keys(b)])
    for (const key of [...keys].sort()) {
      const childPath = [...path, key]
      const inA = Object.hasOwn(a, key)
      const inB = Object.hasOwn(b, key)
      if (inA && inB) diff(a[key] as CanonicalValue, b[key] as CanonicalValue, childPath, rules, out)
      else out.push(difference(childPath, inA ? 'missing' : 'unexpected', inA ? a[key] : undefined, inB ? b[key] : undefined, rules))
    }
    return
  }
  if (Array.isArray(a) && Array.isArray(b) && !(rules.unordered && matchesAny(path, rules.unordered))) {
    const length = Math.max(a.length, b.length)
    for (let i = 0; i < length; i++) {
      const childPath = [...path, i]
      if (i >= b.length) out.push(difference(childPath, 'missing', a[i], undefined, rules))
      else if (i >= a.length) out.push(difference(childPath, 'unexpected', undefined, b[i], rules))
      else diff(a[i] as CanonicalValue, b[i] as CanonicalValue, childPath, rules, out)
    }
    return
  }
  if (a instanceof CanonicalNumber && b instanceof CanonicalNumber) {
    const tolerance = toleranceFor(path, rules)
    if (tolerance !== undefined && Math.abs(Number(a.text) - Number(b.text)) <= tolerance) return
  }
  if (canonicalText(a) !== canonicalText(b)) out.push(difference(path, 'changed', a, b, rules))
}

function difference(path: Path, kind: DifferenceKind, a: unknown, b: unknown, rules: ComparisonRules): Difference {
  const formatted = formatPath(path)
  if (rules.sensitive && matchesAny(path, rules.sensitive)) return { path: formatted, kind, redacted: true }
  return {
    path: formatted,
    kind,
    ...(a === undefined ? {} : { expected: plain(a as CanonicalValue) }),
    ...(b === undefined ? {} : { actual: plain(b as CanonicalValue) }),
  }
}

function toleranceFor(path: Path, rules: ComparisonRules): number | undefined {
  if (!rules.tolerance) return undefined
  for (const [pattern, tolerance] of Object.entries(rules.tolerance)) {
    if (matchesAny(path, [pattern])) return tolerance
  }
  return undefined
}

function isObject(value: CanonicalValue): value is { readonly [key: string]: CanonicalValue } {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof CanonicalNumber)
}

/** A canonical value as plain JSON-able data for reports (numbers stay exact as strings when large). */
function plain(value: CanonicalValue): unknown {
  if (value instanceof CanonicalNumber) {
    const n = Number(value.text)
    return Number.isSafeInteger(n) || (Number.isFinite(n) && String(n) === value.text) ? n : value.text
  }
  if (Array.isArray(value)) return value.map(plain)
  if (isObject(value)) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)]))
  return value
}
