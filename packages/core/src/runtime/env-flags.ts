import { ConfigError, type ConfigProblem } from '../model/errors.js'
import type { Phase } from '../model/phase.js'
import { type MigrationSettings, parseSettingText, SETTING_ALLOWED } from '../model/settings.js'
import { editDistance } from '../model/edit-distance.js'

/** The settings env flags give one migration. Run-time control (the control table) may override them. */
export type MigrationFlags = MigrationSettings

export const DEFAULT_FLAGS: MigrationFlags = Object.freeze({ phase: 'off', readPercent: 0, compareSample: 0.1 })

/** The env flag suffixes and the setting each one sets: `CUTOVER_<SUFFIX>`, `CUTOVER_<NAME>_<SUFFIX>`. */
const FLAG_SETTINGS = Object.freeze({ PHASE: 'phase', READ_PERCENT: 'readPercent', COMPARE_SAMPLE: 'compareSample' } as const)

type FlagName = keyof typeof FLAG_SETTINGS

const FLAG_NAMES = Object.keys(FLAG_SETTINGS) as FlagName[]

/** `userProfiles` → `USER_PROFILES`, `users-v2` → `USERS_V2`: the NAME in `CUTOVER_<NAME>_PHASE`. */
export function envName(migration: string): string {
  return migration
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .replace(/[^A-Za-z0-9]+/g, '_')
    .replace(/^_+|_+$/g, '')
    .toUpperCase()
}

/**
 * Reads `CUTOVER_PHASE`, `CUTOVER_READ_PERCENT`, `CUTOVER_COMPARE_SAMPLE` as defaults and
 * `CUTOVER_<NAME>_…` per migration. Every bad value is collected and thrown as one `ConfigError`
 * naming the variable, the value and what is allowed, so a typo fails at start-up.
 */
export function readEnvFlags(
  migrations: readonly string[],
  env: Readonly<Record<string, string | undefined>> = process.env,
  options: { rejectUnknownMigrations?: boolean } = {},
): ReadonlyMap<string, MigrationFlags> {
  const problems: ConfigProblem[] = []

  const read = (variable: string, flag: FlagName): unknown => {
    const raw = env[variable]
    if (raw === undefined) return undefined
    // The same validation as setPhase, the CLI and the control table: an empty or padded value is
    // refused too, since it is as likely a mistake as a typo.
    const parsed = parseSettingText(FLAG_SETTINGS[flag], raw)
    if (parsed.ok) return parsed.value
    problems.push({
      source: variable,
      value: raw,
      message: `${variable}=${JSON.stringify(raw)} is not valid; allowed: ${SETTING_ALLOWED[FLAG_SETTINGS[flag]]}`,
    })
    return undefined
  }

  const defaults = {
    phase: (read('CUTOVER_PHASE', 'PHASE') as Phase | undefined) ?? DEFAULT_FLAGS.phase,
    readPercent: (read('CUTOVER_READ_PERCENT', 'READ_PERCENT') as number | undefined) ?? DEFAULT_FLAGS.readPercent,
    compareSample: (read('CUTOVER_COMPARE_SAMPLE', 'COMPARE_SAMPLE') as number | undefined) ?? DEFAULT_FLAGS.compareSample,
  }

  const byName = new Map<string, string>()
  for (const migration of migrations) {
    const name = envName(migration)
    const clash = byName.get(name)
    if (clash !== undefined) {
      problems.push({
        source: migration,
        value: migration,
        message: `migrations "${clash}" and "${migration}" share the env name CUTOVER_${name}_*`,
      })
    }
    byName.set(name, migration)
  }

  const result = new Map<string, MigrationFlags>()
  for (const [name, migration] of byName) {
    result.set(
      migration,
      Object.freeze({
        phase: (read(`CUTOVER_${name}_PHASE`, 'PHASE') as Phase | undefined) ?? defaults.phase,
        readPercent: (read(`CUTOVER_${name}_READ_PERCENT`, 'READ_PERCENT') as number | undefined) ?? defaults.readPercent,
        compareSample:
          (read(`CUTOVER_${name}_COMPARE_SAMPLE`, 'COMPARE_SAMPLE') as number | undefined) ?? defaults.compareSample,
      }),
    )
  }

  problems.push(...unknownFlags(env, [...byName.keys()], options.rejectUnknownMigrations !== false))
  if (problems.length > 0) throw new ConfigError(problems)
  return result
}

/**
 * `CUTOVER_*` variables that look meant for Cutover but set nothing: a misspelled suffix
 * (`CUTOVER_USERS_READ_PERCNT`, `CUTOVER_READ_PERCNT`) is always an error, since it would leave the
 * setting at its default without a word. A per-migration flag naming no migration
 * (`CUTOVER_USER_PHASE` for migration "users") is one too, unless `unknownMigrations` is off for
 * processes that share one environment with other services.
 */
function unknownFlags(env: Readonly<Record<string, string | undefined>>, names: readonly string[], unknownMigrations: boolean): ConfigProblem[] {
  const known = new Set([...FLAG_NAMES.map((flag) => `CUTOVER_${flag}`), ...names.flatMap((name) => FLAG_NAMES.map((flag) => `CUTOVER_${name}_${flag}`))])
  const problems: ConfigProblem[] = []
  for (const variable of Object.keys(env)) {
    if (!variable.startsWith('CUTOVER_') || known.has(variable)) continue
    const message = misspelledSuffix(variable, names) ?? (unknownMigrations ? unknownMigration(variable, names) : undefined)
    if (message !== undefined) problems.push({ source: variable, value: env[variable], message })
  }
  return problems
}

function misspelledSuffix(variable: string, names: readonly string[]): string | undefined {
  const name = names.filter((n) => variable.startsWith(`CUTOVER_${n}_`)).sort((a, b) => b.length - a.length)[0]
  const prefix = name === undefined ? 'CUTOVER_' : `CUTOVER_${name}_`
  const suffix = variable.slice(prefix.length)
  // Under a migration's prefix every suffix is ours; a global one only when it is close to a flag.
  const nearest = FLAG_NAMES.map((flag) => ({ flag, distance: editDistance(suffix, flag) })).sort((a, b) => a.distance - b.distance)[0]
  if (nearest === undefined || (name === undefined && nearest.distance > 2)) return undefined
  if (name !== undefined && FLAG_NAMES.some((flag) => suffix.endsWith(`_${flag}`)) && nearest.distance > 2) return undefined
  return `${variable} is not a Cutover flag; did you mean ${prefix}${nearest.flag}? (flags: ${FLAG_NAMES.map((flag) => prefix + flag).join(', ')})`
}

function unknownMigration(variable: string, names: readonly string[]): string | undefined {
  const match = /^CUTOVER_(.+)_(PHASE|READ_PERCENT|COMPARE_SAMPLE)$/.exec(variable)
  if (!match) return undefined
  return `${variable} names no migration; known: ${names.map((n) => `CUTOVER_${n}_${match[2]}`).join(', ') || '(none)'}`
}

