import { ConfigError, type ConfigProblem } from '@cutover/core'

/**
 * When a version stops being recommended and when it stops being served. `deprecation` and
 * `sunset` are dates (a `Date` or an ISO 8601 string); `link` is a page telling clients how to
 * move on (sent as `Link: <…>; rel="deprecation"`).
 */
export interface VersionLifecycleDefinition {
  readonly deprecation?: Date | string
  readonly sunset?: Date | string
  readonly link?: string
  /**
   * What a request for the version gets once the sunset has passed: `gone` (410, the default) or
   * `fall-forward` (served by the oldest version still supported, with `Api-Version-Fallback` saying so).
   */
  readonly afterSunset?: 'gone' | 'fall-forward'
}

export interface VersionLifecycle {
  readonly version: string
  readonly deprecation: Date | undefined
  readonly sunset: Date | undefined
  readonly link: string | undefined
  readonly afterSunset: 'gone' | 'fall-forward'
}

/**
 * Checks every version's dates at start-up, all problems at once: a date that does not parse, a
 * Sunset before the Deprecation (RFC 8594 §3: a resource is not retired before it is deprecated),
 * a link that is not an absolute http(s) URL, a lifecycle for a version no resource has, a sunset
 * on the newest version (nothing would be left to fall forward to).
 */
export function defineLifecycles(
  definitions: Readonly<Record<string, VersionLifecycleDefinition>>,
  known: { readonly versions: readonly string[]; readonly head: string },
): ReadonlyMap<string, VersionLifecycle> {
  const problems: ConfigProblem[] = []
  const result = new Map<string, VersionLifecycle>()
  for (const [version, definition] of Object.entries(definitions)) {
    const problem = (field: string, value: unknown, message: string) =>
      problems.push({ source: `versions.${version}.${field}`, value, message: `API version ${version}: ${message}` })
    const deprecation = parseDate(definition.deprecation, () => problem('deprecation', definition.deprecation, 'deprecation is not a date'))
    const sunset = parseDate(definition.sunset, () => problem('sunset', definition.sunset, 'sunset is not a date'))
    if (!known.versions.includes(version)) problem('', version, `no resource has this version (known: ${known.versions.join(', ')})`)
    if (sunset && version === known.head) problem('sunset', definition.sunset, 'the newest version cannot have a sunset')
    if (sunset && deprecation && sunset.getTime() < deprecation.getTime()) {
      problem('sunset', definition.sunset, `Sunset (${sunset.toISOString()}) is before Deprecation (${deprecation.toISOString()}); a version is deprecated first, then retired`)
    }
    if (definition.link !== undefined && !/^https?:\/\/\S+$/.test(definition.link)) problem('link', definition.link, 'link must be an absolute http(s) URL')
    if (definition.afterSunset !== undefined && !['gone', 'fall-forward'].includes(definition.afterSunset)) {
      problem('afterSunset', definition.afterSunset, 'afterSunset must be "gone" or "fall-forward"')
    }
    result.set(version, Object.freeze({ version, deprecation, sunset, link: definition.link, afterSunset: definition.afterSunset ?? 'gone' }))
  }
  if (problems.length > 0) throw new ConfigError(problems)
  return result
}

function parseDate(value: Date | string | undefined, onInvalid: () => void): Date | undefined {
  if (value === undefined) return undefined
  const date = value instanceof Date ? value : new Date(value)
  if (Number.isNaN(date.getTime()) || (typeof value === 'string' && !/^\d{4}-\d{2}-\d{2}/.test(value))) {
    onInvalid()
    return undefined
  }
  return date
}

/**
 * The headers a response in this version carries: `Deprecation` as an RFC 9745 structured-field
 * date (`@` + Unix seconds), `Sunset` as an RFC 8594 HTTP-date, and the deprecation link. They are
 * sent from the moment they are configured: a Deprecation date in the future announces it.
 */
export function lifecycleHeaders(lifecycle: VersionLifecycle | undefined): Record<string, string> {
  if (!lifecycle) return {}
  return {
    ...(lifecycle.deprecation ? { deprecation: `@${Math.floor(lifecycle.deprecation.getTime() / 1000)}` } : {}),
    ...(lifecycle.sunset ? { sunset: lifecycle.sunset.toUTCString() } : {}),
    ...(lifecycle.link ? { link: `<${lifecycle.link}>; rel="deprecation"; type="text/html"` } : {}),
  }
}

export function isSunset(lifecycle: VersionLifecycle | undefined, now: Date): boolean {
  return lifecycle?.sunset !== undefined && now.getTime() >= lifecycle.sunset.getTime()
}
