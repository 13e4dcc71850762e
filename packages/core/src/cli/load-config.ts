import { existsSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { UsageError } from './args.js'
import { ConfigModuleError } from './cli-errors.js'
import type { CutoverConfig, CutoverConfigModule } from './cutover-config.js'

const DEFAULT_NAMES = ['cutover.config.ts', 'cutover.config.mts', 'cutover.config.js', 'cutover.config.mjs']

/**
 * Imports the config module (`--config`, else `cutover.config.{ts,mts,js,mjs}` in the working
 * directory) and checks its default export.
 */
export async function loadConfig(path: string | undefined, cwd = process.cwd()): Promise<CutoverConfig> {
  const file = path ? resolve(cwd, path) : DEFAULT_NAMES.map((name) => resolve(cwd, name)).find((candidate) => existsSync(candidate))
  if (!file || !existsSync(file)) {
    // Nothing to load is a usage error (exit 64); a module that fails to load or is wrong is not.
    throw new UsageError(path ? `config file not found: ${file}` : `no --config given and none of ${DEFAULT_NAMES.join(', ')} in ${cwd}`)
  }
  const module = (await importModule(file)) as { default?: CutoverConfigModule }
  const exported = module.default
  if (!exported) throw new ConfigModuleError(file, `${file} has no default export (a CutoverConfig or a function returning one)`)
  const config = typeof exported === 'function' ? await exported() : exported
  if (!config || typeof config !== 'object' || !config.control || !Array.isArray(config.migrations)) {
    throw new ConfigModuleError(file, `${file}: the default export must provide { control, migrations }`)
  }
  return config
}

/**
 * Node imports `.js`/`.mjs` itself, and `.ts` when something already taught it (tsx's `--import`,
 * vitest). Otherwise, and for a JavaScript config that imports TypeScript, tsx's `tsImport` loads
 * it: the tsx the user's project has (resolved from the config's directory, as under pnpm the CLI's
 * own folder cannot see the project's devDependencies), else one beside Cutover. `tsImport` is
 * scoped, so the retry is not answered from Node's cache of the failed first import.
 */
async function importModule(file: string): Promise<unknown> {
  const url = pathToFileURL(file).href
  try {
    return await import(url)
  } catch (error) {
    if ((error as { code?: string }).code !== 'ERR_UNKNOWN_FILE_EXTENSION') throw error
    const tsx = await loadTsx(file)
    return tsx.tsImport(url, import.meta.url)
  }
}

interface TsxApi {
  tsImport(specifier: string, parentURL: string): Promise<unknown>
}

async function loadTsx(file: string): Promise<TsxApi> {
  for (const specifier of [projectTsx(file), 'tsx/esm/api']) {
    if (specifier === undefined) continue
    try {
      const api = (await import(specifier)) as Partial<TsxApi>
      if (typeof api.tsImport === 'function') return api as TsxApi
    } catch {
      // next candidate
    }
  }
  throw new ConfigModuleError(
    file,
    `${file} is TypeScript (or imports TypeScript), which Node cannot load by itself: install tsx in your project (npm install -D tsx, or pnpm add -D tsx), or write the config in JavaScript (cutover.config.mjs)`,
  )
}

/**
 * The ESM entry of `tsx/esm/api` in the project holding `file`, by the exports map of the tsx it
 * resolves (`createRequire` alone would pick the CommonJS build, which cannot load ESM configs).
 */
function projectTsx(file: string): string | undefined {
  try {
    const manifest = createRequire(resolve(dirname(file), 'noop.js')).resolve('tsx/package.json')
    const entry = (JSON.parse(readFileSync(manifest, 'utf8')) as { exports?: Record<string, { import?: { default?: string } | string }> }).exports?.['./esm/api']?.import
    const path = typeof entry === 'string' ? entry : entry?.default
    return path ? pathToFileURL(resolve(dirname(manifest), path)).href : undefined
  } catch {
    return undefined
  }
}
