import { existsSync } from 'node:fs'
import { resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import type { CutoverConfig, CutoverConfigModule } from './cutover-config.js'
import { UsageError } from './args.js'

const DEFAULT_NAMES = ['cutover.config.ts', 'cutover.config.mts', 'cutover.config.js', 'cutover.config.mjs']

/**
 * Imports the config module (`--config`, else `cutover.config.{ts,mts,js,mjs}` in the working
 * directory). TypeScript configs load through tsx when Node cannot import them by itself.
 */
export async function loadConfig(path: string | undefined, cwd = process.cwd()): Promise<CutoverConfig> {
  const file = path ? resolve(cwd, path) : DEFAULT_NAMES.map((name) => resolve(cwd, name)).find((candidate) => existsSync(candidate))
  if (!file || !existsSync(file)) throw new UsageError(path ? `config file not found: ${path}` : `no --config given and none of ${DEFAULT_NAMES.join(', ')} in ${cwd}`)
  const module = (await importModule(file)) as { default?: CutoverConfigModule }
  const exported = module.default
  if (!exported) throw new UsageError(`${file} has no default export (a CutoverConfig or a function returning one)`)
  const config = typeof exported === 'function' ? await exported() : exported
  if (!config || typeof config !== 'object' || !config.control || !Array.isArray(config.migrations)) {
    throw new UsageError(`${file}: the default export must provide { control, migrations }`)
  }
  return config
}

async function importModule(file: string): Promise<unknown> {
  const url = pathToFileURL(file).href
  try {
    return await import(url)
  } catch (error) {
    if (!/\.[mc]?ts$/.test(file) || (error as { code?: string }).code !== 'ERR_UNKNOWN_FILE_EXTENSION') throw error
    // Not under tsx or a TypeScript-aware Node: register tsx's loader, if installed, and retry.
    const specifier = 'tsx/esm/api'
    const tsx = (await import(specifier).catch(() => {
      throw new UsageError(`${file} is TypeScript: install tsx, run under \`node --import tsx\`, or write the config in JavaScript`)
    })) as { register(): unknown }
    tsx.register()
    return import(url)
  }
}
