import type { VersionLifecycle } from './lifecycle.js'
import type { VersionChain } from './version-chain.js'

/** One version in the changelog: what changed from the version before it, and its dates. */
export interface ChangelogEntry {
  readonly version: string
  readonly changes: readonly { readonly resource: string; readonly description: string }[]
  readonly deprecation?: string
  readonly sunset?: string
  readonly link?: string
}

/**
 * The changelog, newest version first, generated from the steps' descriptions: a step from
 * version N describes what a client moving from N to the next version must change.
 */
export function changelog(chains: readonly VersionChain[], lifecycles: ReadonlyMap<string, VersionLifecycle>): ChangelogEntry[] {
  const versions = orderedVersions(chains)
  return versions
    .map((version) => {
      const changes = chains.flatMap((chain) => {
        const index = chain.versions.indexOf(version)
        const step = index > 0 ? chain.steps[index - 1] : undefined
        return step ? [{ resource: chain.resource, description: step.description }] : []
      })
      const lifecycle = lifecycles.get(version)
      return {
        version,
        changes,
        ...(lifecycle?.deprecation ? { deprecation: lifecycle.deprecation.toISOString() } : {}),
        ...(lifecycle?.sunset ? { sunset: lifecycle.sunset.toISOString() } : {}),
        ...(lifecycle?.link ? { link: lifecycle.link } : {}),
      }
    })
    .reverse()
}

/** Every version of every chain, oldest first (chains list theirs oldest first). */
export function orderedVersions(chains: readonly VersionChain[]): string[] {
  const ordered: string[] = []
  for (const chain of chains) {
    for (const [i, version] of chain.versions.entries()) {
      if (ordered.includes(version)) continue
      const next = chain.versions.slice(i + 1).find((v) => ordered.includes(v))
      ordered.splice(next === undefined ? ordered.length : ordered.indexOf(next), 0, version)
    }
  }
  return ordered
}

/** The same changelog as a self-contained HTML page; every value escaped. */
export function changelogHtml(entries: readonly ChangelogEntry[], title = 'API changelog'): string {
  const sections = entries.map((entry) => {
    const dates = [
      entry.deprecation ? `deprecated ${escapeHtml(entry.deprecation.slice(0, 10))}` : '',
      entry.sunset ? `sunset ${escapeHtml(entry.sunset.slice(0, 10))}` : '',
      entry.link ? `<a href="${escapeHtml(entry.link)}">migration guide</a>` : '',
    ].filter(Boolean)
    const changes = entry.changes.length > 0
      ? `<ul>${entry.changes.map((c) => `<li><code>${escapeHtml(c.resource)}</code>: ${escapeHtml(c.description)}</li>`).join('')}</ul>`
      : '<p>The first version.</p>'
    return `<section><h2>Version ${escapeHtml(entry.version)}</h2>${dates.length > 0 ? `<p>${dates.join(' · ')}</p>` : ''}${changes}</section>`
  })
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head><body><h1>${escapeHtml(title)}</h1>${sections.join('')}</body></html>`
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
}
