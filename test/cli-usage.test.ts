/**
 * The `cutover` command line as data: every command answers `--help` from its option table, the
 * help never sends a user to a source file, and every unknown option or missing value is a usage
 * error (exit 64) naming the option, before any config is loaded or database touched.
 */
import { describe, expect, it } from 'vitest'
import { parseArgs } from '../packages/core/src/cli/args.js'
import { COMMANDS, main } from '../packages/core/src/cli/main.js'
import { GLOBAL_OPTIONS } from '../packages/core/src/cli/usage.js'

async function cutover(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = ''
  let stderr = ''
  const stream = (append: (s: string) => void) => ({ isTTY: false, write: (chunk: string) => (append(chunk), true) }) as unknown as NodeJS.WriteStream
  const code = await main(args, { stdout: stream((s) => (stdout += s)), stderr: stream((s) => (stderr += s)) })
  return { code, stdout, stderr }
}

const NAMES = Object.keys(COMMANDS)
/** Paths a user of the installed package does not have (the config's own name aside). */
const SOURCE_REFERENCE = /packages\/|\bsrc\/|\w\.ts\b|header of/
const withoutConfigName = (text: string) => text.replaceAll('cutover.config.ts', '')

describe('cutover --help', () => {
  it('lists every command with its summary, and no source file', async () => {
    for (const args of [['--help'], ['help'], ['-h']]) {
      const { code, stdout } = await cutover(...args)
      expect(code).toBe(0)
      for (const name of NAMES) expect(stdout).toContain(`  ${name}  `.replace(/ {2}$/, ''))
      expect(withoutConfigName(stdout)).not.toMatch(SOURCE_REFERENCE)
    }
  })

  it.each(NAMES)('cutover %s --help shows its usage and every option of its table, and no source file', async (name) => {
    const spec = COMMANDS[name]!
    for (const args of [[name, '--help'], ['help', name]]) {
      const { code, stdout } = await cutover(...args)
      expect(code).toBe(0)
      expect(stdout).toMatch(new RegExp(`^usage: cutover ${name}\\b`))
      for (const option of [...spec.options, ...GLOBAL_OPTIONS]) expect(stdout).toMatch(new RegExp(`--${option.name}\\b.*  ${option.help.slice(0, 20).replace(/[()$.|*+?[\]\\]/g, '\\$&')}`))
      expect(withoutConfigName(stdout)).not.toMatch(SOURCE_REFERENCE)
    }
  })

  it('without a command, shows the overview on stderr and exits 64', async () => {
    const { code, stderr } = await cutover()
    expect(code).toBe(64)
    expect(stderr).toContain('usage: cutover <command>')
  })
})

describe('usage errors name the option', () => {
  it('an unknown option is refused (--rat 5 never runs an unthrottled backfill), with the near option suggested', async () => {
    const { code, stderr } = await cutover('backfill', 'people', '--rat', '5', '--config', 'does-not-matter.ts')
    expect(code).toBe(64)
    expect(stderr).toContain('unknown option --rat for cutover backfill; did you mean --rate?')
    expect(stderr).toContain('usage: cutover backfill <migration>')
  })

  it.each(NAMES)('cutover %s refuses an option that is not in its table', async (name) => {
    const { code, stderr } = await cutover(name, 'people', '--frobnicate')
    expect(code).toBe(64)
    expect(stderr).toContain(`unknown option --frobnicate for cutover ${name}`)
  })

  it("one command's option is unknown to another", async () => {
    const { code, stderr } = await cutover('verify', 'people', '--restart')
    expect(code).toBe(64)
    expect(stderr).toContain('unknown option --restart for cutover verify')
  })

  it.each([
    [['backfill', 'people', '--rate'], '--rate needs a value: N'],
    [['backfill', 'people', '--rate', '--restart'], '--rate needs a value: N'],
    [['backfill', 'people', '--rate', 'fast'], '--rate needs a number, got "fast"'],
    [['backfill', 'people', '--rate='], '--rate needs a number, got ""'],
    [['phase', 'people', 'ramp', '--read-percent', '0x10'], '--read-percent needs a number'],
    [['status', '--json=yes'], '--json takes no value'],
    [['status', '--config'], '--config needs a value: FILE'],
    [['frobnicate'], 'unknown command "frobnicate"'],
    [['help', 'frobnicate'], 'unknown command "frobnicate"'],
  ])('%j is a usage error: %s', async (args, message) => {
    const { code, stderr } = await cutover(...args)
    expect(code).toBe(64)
    expect(stderr).toContain(message)
  })
})

describe('parseArgs', () => {
  const table = { global: GLOBAL_OPTIONS, commands: { verify: COMMANDS.verify!.options, backfill: COMMANDS.backfill!.options } }

  it('reads positionals, valued and boolean flags in any order, inline or separate', () => {
    expect(parseArgs(['--config=c.ts', 'backfill', 'users', '--rate', '1', '--json', '--restart', 'x', '--nice', '-0.5'], table)).toEqual({
      positionals: ['backfill', 'users', 'x'],
      flags: { config: 'c.ts', rate: '1', json: true, restart: true, nice: '-0.5' },
    })
  })

  it('allows only global options before the command', () => {
    expect(() => parseArgs(['--rate', '5', 'backfill', 'users'], table)).toThrow('unknown option --rate for cutover')
  })
})
