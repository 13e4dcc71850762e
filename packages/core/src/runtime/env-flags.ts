import { z } from 'zod'
import { ConfigError, type ConfigProblem } from '../model/errors.js'
import { PHASES, type Phase } from '../model/phase.js'

/** The settings env flags give one migration. Run-time control (the control table) may override them. */
export interface MigrationFlags {
  readonly phase: Phase
  /** Share of routing keys whose reads go to the new store in `ramp`, 0–100 (two decimals). */
  readonly readPercent: number
  /** Share of reads compared against the other store, 0–1. */
  readonly compareSample: number
}

export const DEFAULT_FLAGS: MigrationFlags = Object.freeze({ phase: 'off', readPercent: 0, compareSample: 0.1 })

const FLAG_SCHEMAS = {
  PHASE: z.enum(PHASES),
  READ_PERCENT: z.coerce.number().min(0).max(100),
  COMPARE_SAMPLE: z.coerce.number().min(0).max(1),
} as const

type FlagName = keyof typeof FLAG_SCHEMAS

const ALLOWED: Readonly<Record<FlagName, string>> = {
  PHASE: PHASES.join(', '),
  READ_PERCENT: 'a number from 0 to 100',
  COMPARE_SAMPLE: 'a number from 0 to 1',
}

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
    if (raw === undefined || raw.trim() === '') return undefined
    const parsed = FLAG_SCHEMAS[flag].safeParse(raw.trim())
    if (parsed.success) return parsed.data
    problems.push({
      source: variable,
      value: raw,
      message: `${variable}=${JSON.stringify(raw)} is not valid; allowed: ${ALLOWED[flag]}`,
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

  // A per-migration flag that names no migration is almost always a typo (CUTOVER_USER_PHASE for
  // migration "users"); silently ignoring it would leave the fleet in the wrong phase. Processes
  // that share one environment with other services turn this off with `rejectUnknownMigrations: false`.
  for (const variable of options.rejectUnknownMigrations === false ? [] : Object.keys(env)) {
    const match = /^CUTOVER_(.+)_(PHASE|READ_PERCENT|COMPARE_SAMPLE)$/.exec(variable)
    if (!match || match[1] === undefined) continue
    if (!byName.has(match[1])) {
      problems.push({
        source: variable,
        value: env[variable],
        message: `${variable} names no migration; known: ${[...byName.keys()].map((n) => `CUTOVER_${n}_${match[2]}`).join(', ') || '(none)'}`,
      })
    }
  }

  if (problems.length > 0) throw new ConfigError(problems)
  return result
}
