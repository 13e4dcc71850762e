import { describe, expect, it } from 'vitest'
import { ConfigError, DEFAULT_FLAGS, envName, readEnvFlags } from '../src/index.js'

function problemsOf(fn: () => unknown): ConfigError {
  try {
    fn()
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError)
    return error as ConfigError
  }
  throw new Error('expected a ConfigError')
}

describe('env flags', () => {
  it('uses the defaults when nothing is set', () => {
    expect(readEnvFlags(['users'], {}).get('users')).toEqual(DEFAULT_FLAGS)
  })

  it('takes CUTOVER_* as defaults and CUTOVER_<NAME>_* per migration', () => {
    const flags = readEnvFlags(['users', 'orderItems'], {
      CUTOVER_PHASE: 'shadow',
      CUTOVER_READ_PERCENT: '5',
      CUTOVER_COMPARE_SAMPLE: '0.25',
      CUTOVER_ORDER_ITEMS_PHASE: 'ramp',
      CUTOVER_ORDER_ITEMS_READ_PERCENT: '12.5',
    })
    expect(flags.get('users')).toEqual({ phase: 'shadow', readPercent: 5, compareSample: 0.25 })
    expect(flags.get('orderItems')).toEqual({ phase: 'ramp', readPercent: 12.5, compareSample: 0.25 })
  })

  it('turns migration names into upper snake case', () => {
    expect(envName('users')).toBe('USERS')
    expect(envName('orderItems')).toBe('ORDER_ITEMS')
    expect(envName('users-v2')).toBe('USERS_V2')
    expect(envName('billing.invoices')).toBe('BILLING_INVOICES')
  })

  it('rejects a misspelt phase naming the variable, the value and the allowed values', () => {
    const error = problemsOf(() => readEnvFlags(['users'], { CUTOVER_USERS_PHASE: 'shaddow' }))
    expect(error.code).toBe('CONFIG_INVALID')
    expect(error.problems).toHaveLength(1)
    expect(error.problems[0]!.source).toBe('CUTOVER_USERS_PHASE')
    expect(error.message).toContain('CUTOVER_USERS_PHASE="shaddow"')
    expect(error.message).toContain('off, shadow, compare, ramp, cutover, complete, rollback')
  })

  it.each([
    ['CUTOVER_READ_PERCENT', '150', 'a number from 0 to 100'],
    ['CUTOVER_USERS_READ_PERCENT', '-1', 'a number from 0 to 100'],
    ['CUTOVER_USERS_READ_PERCENT', 'ten', 'a number from 0 to 100'],
    ['CUTOVER_COMPARE_SAMPLE', '1.5', 'a number from 0 to 1'],
    ['CUTOVER_USERS_COMPARE_SAMPLE', 'all', 'a number from 0 to 1'],
    ['CUTOVER_PHASE', 'CUTOVER', 'off, shadow'],
    ['CUTOVER_READ_PERCENT', '5.555', 'at most two decimals'],
    ['CUTOVER_READ_PERCENT', ' 5', 'a number from 0 to 100'],
    ['CUTOVER_READ_PERCENT', '0x10', 'a number from 0 to 100'],
    ['CUTOVER_READ_PERCENT', '1e1', 'a number from 0 to 100'],
    ['CUTOVER_COMPARE_SAMPLE', '', 'a number from 0 to 1'],
    ['CUTOVER_USERS_PHASE', 'shadow ', 'off, shadow'],
  ])('rejects %s=%s', (variable, value, allowed) => {
    const error = problemsOf(() => readEnvFlags(['users'], { [variable]: value }))
    expect(error.problems.map((p) => p.source)).toEqual([variable])
    expect(error.message).toContain(`${variable}=${JSON.stringify(value)}`)
    expect(error.message).toContain(allowed)
  })

  it('reports every bad variable at once', () => {
    const error = problemsOf(() => readEnvFlags(['users'], { CUTOVER_USERS_PHASE: 'nope', CUTOVER_USERS_READ_PERCENT: '101' }))
    expect(error.problems.map((p) => p.source).sort()).toEqual(['CUTOVER_USERS_PHASE', 'CUTOVER_USERS_READ_PERCENT'])
  })

  it('rejects a flag that names no migration (a typo would leave the fleet in the wrong phase)', () => {
    const error = problemsOf(() => readEnvFlags(['users'], { CUTOVER_USER_PHASE: 'shadow' }))
    expect(error.problems[0]!.source).toBe('CUTOVER_USER_PHASE')
    expect(error.message).toContain('CUTOVER_USERS_PHASE')
    expect(readEnvFlags(['users'], { CUTOVER_USER_PHASE: 'shadow' }, { rejectUnknownMigrations: false }).get('users')?.phase).toBe('off')
  })

  it('rejects two migrations that share one env name', () => {
    const error = problemsOf(() => readEnvFlags(['order-items', 'orderItems'], {}))
    expect(error.message).toContain('CUTOVER_ORDER_ITEMS_')
  })

  it('accepts two decimals', () => {
    expect(readEnvFlags(['users'], { CUTOVER_READ_PERCENT: '5.55' }).get('users')?.readPercent).toBe(5.55)
  })

  it('rejects a misspelt flag suffix, for a migration or globally, even where unknown migrations are allowed', () => {
    for (const rejectUnknownMigrations of [true, false]) {
      const error = problemsOf(() => readEnvFlags(['users'], { CUTOVER_USERS_READ_PERCNT: '5', CUTOVER_COMPARE_SAMPEL: '0.5' }, { rejectUnknownMigrations }))
      expect(error.problems.map((p) => p.source).sort()).toEqual(['CUTOVER_COMPARE_SAMPEL', 'CUTOVER_USERS_READ_PERCNT'])
      expect(error.message).toContain('did you mean CUTOVER_USERS_READ_PERCENT')
      expect(error.message).toContain('did you mean CUTOVER_COMPARE_SAMPLE')
    }
    // Other tools' CUTOVER_* variables are left alone.
    expect(readEnvFlags(['users'], { CUTOVER_TEST_OLD_URL: 'postgres://x', CUTOVER_BENCH_ROWS: '10' }).get('users')?.phase).toBe('off')
  })
})
