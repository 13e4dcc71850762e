import { z } from 'zod'
import type { ConfigProblem } from './errors.js'
import { PHASES, type Phase } from './phase.js'

/**
 * The settings of one migration that can change at run time, and the one validation every way
 * they arrive goes through: env flags, `Cutover.setPhase`, the CLI's `phase` command and the rows
 * of `cutover.migration_state`. A value one path would refuse is refused by all of them.
 */
export interface MigrationSettings {
  readonly phase: Phase
  /** Share of routing keys whose reads go to the new store in `ramp`, 0–100, at most two decimals. */
  readonly readPercent: number
  /** Share of reads compared against the other store, 0–1. */
  readonly compareSample: number
}

export type SettingName = keyof MigrationSettings

/** Two decimals at most: the routing bucket has 10,000 values, so 0.01 % is one bucket. */
const hasTwoDecimals = (value: number) => Number(value.toFixed(2)) === value

/** The settings as numbers (setPhase, the typed API). */
export const SETTING_SCHEMAS = {
  phase: z.enum(PHASES),
  readPercent: z.number().min(0).max(100).refine(hasTwoDecimals, 'has more than two decimals'),
  compareSample: z.number().min(0).max(1),
} as const satisfies Record<SettingName, z.ZodType>

/**
 * A decimal as text: digits, optionally a point and digits. No sign, exponent, hex (`0x10`),
 * surrounding whitespace or empty string, which `Number()` would all accept.
 */
const DECIMAL_TEXT = /^\d+(\.\d+)?$/

/** The settings as text (env flags, CLI options, `numeric` columns read back as strings). */
export const SETTING_TEXT_SCHEMAS = {
  phase: SETTING_SCHEMAS.phase,
  readPercent: z.string().regex(DECIMAL_TEXT, 'is not a decimal number').transform(Number).pipe(SETTING_SCHEMAS.readPercent),
  compareSample: z.string().regex(DECIMAL_TEXT, 'is not a decimal number').transform(Number).pipe(SETTING_SCHEMAS.compareSample),
} as const satisfies Record<SettingName, z.ZodType>

/** What each setting allows, for error messages. */
export const SETTING_ALLOWED: Readonly<Record<SettingName, string>> = Object.freeze({
  phase: PHASES.join(', '),
  readPercent: 'a number from 0 to 100 with at most two decimals',
  compareSample: 'a number from 0 to 1',
})

export type SettingResult<N extends SettingName> = { readonly ok: true; readonly value: MigrationSettings[N] } | { readonly ok: false; readonly message: string }

/** Validates one setting given as a number (or phase name); `message` says what is allowed. */
export function checkSetting<N extends SettingName>(name: N, value: unknown): SettingResult<N> {
  return result(name, SETTING_SCHEMAS[name].safeParse(value))
}

/** Validates one setting given as text (env flag, CLI option, a `numeric` column). */
export function parseSettingText<N extends SettingName>(name: N, text: unknown): SettingResult<N> {
  return result(name, SETTING_TEXT_SCHEMAS[name].safeParse(text))
}

function result<N extends SettingName>(name: N, parsed: { success: boolean; data?: unknown }): SettingResult<N> {
  if (parsed.success) return { ok: true, value: parsed.data as MigrationSettings[N] }
  return { ok: false, message: `allowed: ${SETTING_ALLOWED[name]}` }
}

/**
 * A tenant as it keys a control row (`cutover.tenant_state`) and as the request context names it:
 * non-empty, at most 200 characters, no control characters (it is printed in status and the audit).
 */
export const TENANT_SCHEMA = z.string().min(1).max(200).regex(/^\P{Cc}+$/u)

/** Validates a tenant id; `message` says what is allowed. */
export function checkTenant(value: unknown): { readonly ok: true; readonly value: string } | { readonly ok: false; readonly message: string } {
  const parsed = TENANT_SCHEMA.safeParse(value)
  return parsed.success ? { ok: true, value: parsed.data } : { ok: false, message: 'allowed: 1 to 200 characters, no control characters' }
}

/**
 * Every problem of the settings a change gives, as `ConfigError` problems naming `source` (e.g.
 * `setPhase("users")`) and `subject` (`migration "users"`, `tenant "acme" of migration "users"`).
 */
export function settingProblems(source: string, subject: string, given: Partial<Record<SettingName, unknown>>): ConfigProblem[] {
  const problems: ConfigProblem[] = []
  for (const [setting, value] of Object.entries(given) as [SettingName, unknown][]) {
    if (value === undefined) continue
    const checked = checkSetting(setting, value)
    if (!checked.ok) problems.push({ source: `${source}.${setting}`, value, message: `${setting} ${JSON.stringify(value)} for ${subject} is not valid; ${checked.message}` })
  }
  return problems
}

/** Settings read back from a control row: those it holds, or what is wrong with them. */
export type SettingsRowRead = { readonly ok: true; readonly settings: Partial<MigrationSettings> } | { readonly ok: false; readonly problems: readonly string[] }

/**
 * A control row's `phase`, `read_percent` and `compare_sample` (`cutover.migration_state`,
 * `cutover.tenant_state`) through the same validation as env flags and `setPhase`: `numeric`
 * columns arrive as text, null columns are left out, and a row without a phase is a problem.
 */
export function settingsFromRow(row: Record<string, unknown>): SettingsRowRead {
  const settings: { -readonly [N in SettingName]?: MigrationSettings[N] } = {}
  const problems: string[] = []
  const columns = { phase: row.phase, readPercent: row.read_percent, compareSample: row.compare_sample } satisfies Record<SettingName, unknown>
  for (const [setting, value] of Object.entries(columns) as [SettingName, unknown][]) {
    if (value === null || value === undefined) continue
    const checked = typeof value === 'string' && setting !== 'phase' ? parseSettingText(setting, value) : checkSetting(setting, value)
    if (checked.ok) (settings as Record<string, unknown>)[setting] = checked.value
    else problems.push(`${setting} ${JSON.stringify(value)}: ${checked.message}`)
  }
  if (settings.phase === undefined && problems.length === 0) problems.push('no phase')
  return problems.length > 0 ? { ok: false, problems } : { ok: true, settings }
}
