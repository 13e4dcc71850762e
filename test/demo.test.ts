/**
 * `pnpm demo` as a newcomer runs it: a child process on the embedded PostgreSQL (no DATABASE_URL),
 * with the test setup's MongoDB-wire server for its MongoDB part. It must walk every phase, show
 * the guard's own rollback and the read-only old table, stay consistent, and end with a report.
 */
import { spawn } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { mongodbUrl } from './setup/services.js'

function runDemo(): Promise<{ code: number | null; out: string }> {
  const env: NodeJS.ProcessEnv = { ...process.env, MONGODB_URL: mongodbUrl() }
  delete env.DATABASE_URL
  return new Promise((resolve) => {
    const child = spawn('node_modules/.bin/tsx', ['examples/demo/main.ts'], { env, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', (chunk) => (out += chunk))
    child.stderr.on('data', (chunk) => (out += chunk))
    child.on('close', (code) => resolve({ code, out }))
  })
}

describe('pnpm demo', () => {
  it('walks a live migration on embedded PostgreSQL from shadow to complete, with the guard rolling back by itself, and ends with a report', { timeout: 240_000 }, async () => {
    const { code, out } = await runDemo()
    expect(code, out).toBe(0)
    for (const heading of ['[shadow]', '[operator]', '[compare]', '[ramp 5 %]', '[ramp 15 %]', '[ramp 40 %]', '[ramp 75 %]', '[ramp 100 %]', '[fault]', '[recovery]', '[cutover]', '[complete]', '[mongodb]']) {
      expect(out, heading).toContain(heading)
    }
    expect(out).toContain('phase now rollback, by cutover:guard')
    expect(out).toContain('a direct write to the old users table: refused (SQLSTATE 25006)')
    expect(out).toMatch(/appointments \d+ written, \d+ quarantined/)
    expect(out).not.toContain('INCONSISTENT')
    expect(out).not.toContain('gates refuse')
    expect(out).not.toMatch(/v1 client: (\d+) of (?!\1)\d+/)
    const report = /Report: (.+\.html)/.exec(out)?.[1]
    expect(report && existsSync(report), out).toBe(true)
    expect(readFileSync(report as string, 'utf8')).toContain('Cutover report: users')
  })
})
