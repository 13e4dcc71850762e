/**
 * `cutover report <migration> --html FILE` on real PostgreSQL, rendered in headless Chromium
 * (Debian's, driven by playwright-core): the page loads with no console error and shows each part
 * a person needs, and every text from the database is escaped. A screenshot goes to
 * .cache/report.png for a person to look at.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { backfill, createCutover, silentLogger, verifyExhaustive } from '@cutover/core'
import { chromium } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { main } from '../packages/core/src/cli/main.js'
import { createPeopleTables, peopleMigration, peopleSegments } from './fixtures/people.js'
import { createTestDatabase, type TestDatabase } from './setup/services.js'

/** Debian's Chromium; `.ci/run` installs it. */
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'

let oldDb: TestDatabase
let newDb: TestDatabase

beforeAll(async () => {
  ;[oldDb, newDb] = await Promise.all([createTestDatabase('cutover_report_old'), createTestDatabase('cutover_report_new')])
  await createPeopleTables(oldDb.db, newDb.db, 500)
  const migration = peopleMigration(oldDb.db, newDb.db)
  const cutover = await createCutover({ migrations: [migration], control: newDb.db, env: {}, pollIntervalMs: false, signalIntervalMs: false, logger: silentLogger })
  await cutover.setPhase('people', 'shadow', { actor: 'alice' })
  await backfill({ migration, control: newDb.db })
  await cutover.setPhase('people', 'compare', { actor: 'bob <script>alert(1)</script>', compareSample: 1 })
  const runtime = cutover.migration('people')
  const rows = (await oldDb.db.selectFrom('people').selectAll().where('id', '<=', 50).execute()) as Record<string, unknown>[]
  for (const row of rows) runtime.compareRead([row], [migration.mapper.forward(row)])
  for (const row of rows.slice(0, 2)) runtime.compareRead([row], [{ ...migration.mapper.forward(row), email: 'x@example.com' }])
  for (let i = 0; i < 40; i++) runtime.recordRead(i % 4 === 0 ? 'new' : 'old', true, 2)
  await verifyExhaustive({ migration, control: newDb.db, ...(await peopleSegments(oldDb.db, newDb.db, migration)) })
  await newDb.db.insertInto('cutover.quarantine').values({ migration: 'people', key: '9', reason_code: 'MAPPER_REJECTED', reason: 'full_name: <b>empty</b>' }).execute()
  await newDb.db.insertInto('cutover.dead_letters').values({ migration: 'people', direction: 'old-to-new', key: '8', op: 'upsert', reason_code: 'STORE_FAILED', reason: 'planted' }).execute()
  await cutover.recordSignals()
  await cutover.close()
  process.env.CUTOVER_TEST_OLD_URL = oldDb.url
  process.env.CUTOVER_TEST_NEW_URL = newDb.url
})
afterAll(async () => {
  await Promise.all([oldDb?.drop(), newDb?.drop()])
})

describe('cutover report --html', () => {
  it('writes one self-contained page that renders in Chromium with no console error and shows the migration', { timeout: 60_000 }, async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`Chromium not found at ${CHROMIUM}: apt-get install chromium (or set CHROMIUM_PATH)`)
    const file = join(mkdtempSync(join(tmpdir(), 'cutover-report-')), 'people.html')
    let out = ''
    const stream = { isTTY: false, write: (chunk: string) => ((out += chunk), true) } as unknown as NodeJS.WriteStream
    const code = await main(['report', 'people', '--html', file, '--config', 'test/fixtures/people.config.ts'], { stdout: stream, stderr: stream })
    expect(code, out).toBe(0)
    const html = readFileSync(file, 'utf8')
    expect(html).not.toMatch(/<script|<link|src=|https?:\/\//)
    expect(html).not.toContain('<script>alert(1)</script>')
    expect(html).not.toContain('<b>empty</b>')

    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    })
    try {
      const page = await browser.newPage({ viewport: { width: 1200, height: 900 } })
      const problems: string[] = []
      page.on('console', (message) => {
        if (message.type() === 'error' || message.type() === 'warning') problems.push(message.text())
      })
      page.on('pageerror', (error) => problems.push(error.message))
      await page.goto(`file://${file}`)
      const section = (title: string) => page.locator('section').filter({ has: page.locator('h2', { hasText: new RegExp(`^${title}$`) }) })
      expect(await page.locator('h1').textContent()).toBe('Cutover report: people')
      const headings = await page.locator('h2').allTextContents()
      expect(headings).toEqual(expect.arrayContaining(['Phases over time', 'Consistency of compared reads', 'Reads served from the new store', 'Mirror lag (p99)', 'Backfill', 'Quarantine by reason', 'Open dead letters by reason', 'Verifications', 'Audit chain', 'Next move']))
      // The timeline has one bar per phase entered; the consistency chart a line; the audit is intact.
      expect(await page.locator('svg[aria-label="phase timeline"] rect').count()).toBe(2)
      expect(await section('Consistency of compared reads').locator('svg path, svg circle').count()).toBeGreaterThan(0)
      expect(await section('Audit chain').textContent()).toContain('Intact')
      expect(await section('Backfill').textContent()).toContain('500 read of 500')
      expect(await section('Quarantine by reason').textContent()).toContain('MAPPER_REJECTED: full_name: <b>empty</b>')
      expect(await page.locator('td', { hasText: 'bob <script>' }).count()).toBe(1)
      mkdirSync('.cache', { recursive: true })
      await page.screenshot({ path: '.cache/report.png', fullPage: true })
      expect(problems).toEqual([])
    } finally {
      await browser.close()
    }
  })
})
