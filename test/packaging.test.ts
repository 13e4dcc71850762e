/**
 * The packages as a user gets them: `pnpm build`, `pnpm pack` of core and both plugins, the
 * tarballs installed into a scratch project in the system temp directory (outside this
 * workspace, so nothing resolves through it) once with npm and once with pnpm, third-party
 * dependencies from the registry. In each project: a script imports every package and mirrors a
 * write through the Kysely plugin on real PostgreSQL, and the installed `cutover` binary runs as
 * a child process with a config in each flavour (.ts, .mts, .js, .mjs), against an unreachable
 * database, and (npm, after `npm uninstall tsx`) with a TypeScript config and no tsx.
 */
import { execFile } from 'node:child_process'
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { promisify } from 'node:util'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTestDatabase, type TestDatabase } from './setup/services.js'

const run = promisify(execFile)
const ROOT = resolve(import.meta.dirname, '..')
const PACKAGES = ['core', 'kysely-plugin', 'mongoose-plugin'] as const
const THIRD_PARTY = ['kysely@^0.28.8', 'pg@^8.16.0', 'mongoose@^8.19.0', 'zod@^4.1.0', 'tsx@^4.20.0']

let scratch: string
let tarballs: string[]
let db: TestDatabase

beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'cutover-packaging-'))
  await run('pnpm', ['build'], { cwd: ROOT })
  await Promise.all(PACKAGES.map((p) => run('pnpm', ['pack', '--pack-destination', scratch], { cwd: join(ROOT, 'packages', p) })))
  tarballs = (await readdir(scratch)).filter((f) => f.endsWith('.tgz')).map((f) => join(scratch, f))
  db = await createTestDatabase('cutover_packaging')
  await sql`create table people (id integer primary key, full_name text not null)`.execute(db.db)
  await sql`create table people_v2 (id integer primary key, first_name text not null, last_name text)`.execute(db.db)
}, 240_000)

afterAll(async () => {
  await db?.drop()
  if (scratch) await rm(scratch, { recursive: true, force: true })
})

/** The script a user might write first: every package imported, one write mirrored. */
const SMOKE_SCRIPT = `
import { createCutover, defineMigration, fieldMapper, copy, split } from '@cutover/core'
import { KyselyTableStore, withCutover } from '@cutover/kysely-plugin'
import { cutoverPlugin, MongooseModelStore } from '@cutover/mongoose-plugin'
import { Kysely, PostgresDialect } from 'kysely'
import mongoose from 'mongoose'
import pg from 'pg'
import { z } from 'zod'

const store = new Kysely({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: process.env.DB_URL }) }) })
const users = defineMigration({
  name: 'people',
  old: new KyselyTableStore(store, 'people', 'id'),
  new: new KyselyTableStore(store, 'people_v2', 'id'),
  mapper: fieldMapper({
    old: z.object({ id: z.number().int(), full_name: z.string() }),
    new: z.object({ id: z.number().int(), first_name: z.string(), last_name: z.string().nullable() }),
    fields: [copy('id'), split('full_name', ['first_name', 'last_name'])],
  }),
})
const cutover = await createCutover({ migrations: [users], control: store, env: { CUTOVER_PHASE: 'shadow' }, pollIntervalMs: false })
const app = new Kysely({
  dialect: withCutover(new PostgresDialect({ pool: new pg.Pool({ connectionString: process.env.DB_URL }) }), { cutover, tables: { people: { migration: 'people', side: 'old' } } }),
})
await app.insertInto('people').values({ id: Number(process.env.ROW_ID), full_name: 'Ada Lovelace' }).execute()
await cutover.close()
const mirrored = await store.selectFrom('people_v2').selectAll().where('id', '=', Number(process.env.ROW_ID)).executeTakeFirst()

const schema = new mongoose.Schema({ name: String })
schema.plugin(cutoverPlugin, { cutover: () => undefined, migration: 'people' })
const model = mongoose.model('Person', schema)
const mongoStore = new MongooseModelStore(model)
console.log(JSON.stringify({ mirrored, mongoStore: mongoStore.name }))
await app.destroy()
await store.destroy()
`

/** The same config in each flavour; the TypeScript ones carry types, so they are really compiled. */
const CONFIG_BODY = (typed: boolean) => `
import { defineCutoverConfig, defineMigration, fieldMapper, copy, split } from '@cutover/core'
import { KyselyTableStore } from '@cutover/kysely-plugin'
import { Kysely, PostgresDialect } from 'kysely'
import pg from 'pg'
import { z } from 'zod'

export default defineCutoverConfig(() => {
  const url${typed ? ': string | undefined' : ''} = process.env.DB_URL
  const db = new Kysely${typed ? '<any>' : ''}({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: url }) }) })
  const people = defineMigration({
    name: 'people',
    old: new KyselyTableStore(db, 'people', 'id'),
    new: new KyselyTableStore(db, 'people_v2', 'id'),
    mapper: fieldMapper({
      old: z.object({ id: z.number().int(), full_name: z.string() }),
      new: z.object({ id: z.number().int(), first_name: z.string(), last_name: z.string().nullable() }),
      fields: [copy('id'), split('full_name', ['first_name', 'last_name'])],
    }),
  })
  return { control: db, migrations: [people], close: () => db.destroy() }
})
`

async function writeConfigs(project: string): Promise<void> {
  await writeFile(join(project, 'cutover.config.ts'), CONFIG_BODY(true))
  await writeFile(join(project, 'people.config.mts'), CONFIG_BODY(true))
  await writeFile(join(project, 'people.config.js'), CONFIG_BODY(false))
  await writeFile(join(project, 'people.config.mjs'), CONFIG_BODY(false))
  await writeFile(join(project, 'smoke.mjs'), SMOKE_SCRIPT)
}

interface Outcome {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

/** Runs a command of the scratch project, never throwing: the exit code is part of what is checked. */
async function exec(project: string, command: string, args: readonly string[], env: Record<string, string> = {}): Promise<Outcome> {
  try {
    const { stdout, stderr } = await run(command, args, { cwd: project, env: { ...process.env, DB_URL: db.url, ...env }, maxBuffer: 16 * 1024 * 1024 })
    return { code: 0, stdout, stderr }
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string }
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? String(error) }
  }
}

function resultLine(outcome: Outcome): Record<string, unknown> {
  const line = outcome.stdout.split('\n').filter((l) => l.startsWith('{"type":"result"')).at(-1)
  if (!line) throw new Error(`no result line; exit ${outcome.code}\nstdout: ${outcome.stdout}\nstderr: ${outcome.stderr}`)
  return JSON.parse(line) as Record<string, unknown>
}

describe('the packed tarballs', () => {
  it('each has its README, and the plugins name core as a peer with a real range (no workspace: protocol)', async () => {
    for (const tarball of tarballs) {
      const { stdout: files } = await run('tar', ['tzf', tarball])
      expect(files.split('\n'), tarball).toContain('package/README.md')
      const { stdout: text } = await run('tar', ['xzf', tarball, '-O', 'package/package.json'])
      const manifest = JSON.parse(text) as { name: string; dependencies?: Record<string, string>; peerDependencies?: Record<string, string> }
      expect(text, manifest.name).not.toContain('workspace:')
      if (manifest.name !== '@cutover/core') {
        expect(manifest.peerDependencies?.['@cutover/core'], manifest.name).toBe(`^${(JSON.parse(await readFile(join(ROOT, 'packages/core/package.json'), 'utf8')) as { version: string }).version}`)
        expect(manifest.dependencies?.['@cutover/core'], manifest.name).toBeUndefined()
      }
    }
    expect(tarballs).toHaveLength(PACKAGES.length)
  })
})

const MANAGERS = [
  { name: 'npm', install: (deps: string[]) => ['npm', ['install', '--no-audit', '--no-fund', ...deps]] as const, exec: ['npx', '--no-install'] as const, row: 1 },
  { name: 'pnpm', install: (deps: string[]) => ['pnpm', ['add', ...deps]] as const, exec: ['pnpm', 'exec'] as const, row: 2 },
] as const

describe.each(MANAGERS)('packed tarballs installed with $name', (manager) => {
  let project: string
  const cli = (...args: string[]) => exec(project, manager.exec[0], [...manager.exec.slice(1), 'cutover', ...args])

  beforeAll(async () => {
    project = join(scratch, `${manager.name}-app`)
    await run('mkdir', ['-p', project])
    await writeFile(join(project, 'package.json'), JSON.stringify({ name: `${manager.name}-app`, private: true, type: 'module' }))
    await writeConfigs(project)
    const [command, args] = manager.install([...tarballs, ...THIRD_PARTY])
    await run(command, args, { cwd: project, maxBuffer: 16 * 1024 * 1024 })
  }, 240_000)

  it('imports every package, and a write through the Kysely plugin is mirrored', async () => {
    const outcome = await exec(project, 'node', ['smoke.mjs'], { ROW_ID: String(manager.row) })
    expect(outcome.code, outcome.stderr).toBe(0)
    expect(JSON.parse(outcome.stdout.trim().split('\n').at(-1) as string)).toEqual({
      mirrored: { id: manager.row, first_name: 'Ada', last_name: 'Lovelace' },
      mongoStore: expect.stringContaining('people'),
    })
  })

  // Concurrent: each is a child process waiting on Node's start-up and a connection.
  it.concurrent.each([
    ['cutover.config.ts (found by default)', []],
    ['people.config.mts', ['--config', 'people.config.mts']],
    ['people.config.js', ['--config', 'people.config.js']],
    ['people.config.mjs', ['--config', 'people.config.mjs']],
  ])('the installed cutover binary loads %s', async (_flavour, configArgs) => {
    const outcome = await cli('status', 'people', '--json', ...configArgs)
    expect(outcome.code, outcome.stderr).toBe(0)
    expect(resultLine(outcome)).toMatchObject({ command: 'status', migrations: [{ migration: 'people', phase: 'off' }] })
  })

  it('names an unreachable control database with its host and port', async () => {
    const outcome = await exec(project, manager.exec[0], [...manager.exec.slice(1), 'cutover', 'status'], { DB_URL: 'postgres://postgres@127.0.0.1:1/nowhere' })
    expect(outcome.code).toBe(1)
    expect(outcome.stderr).toContain('cannot reach the control database (config.control) at 127.0.0.1:1 (ECONNREFUSED)')
    expect(outcome.stderr).toContain('[DATABASE_UNREACHABLE]')
  })

  it('rejects an unknown option before touching any database', async () => {
    const outcome = await cli('backfill', 'people', '--rat', '5')
    expect(outcome.code).toBe(64)
    expect(outcome.stderr).toContain('unknown option --rat for cutover backfill; did you mean --rate?')
  })

  if (manager.name === 'npm') {
    it('without tsx, a TypeScript config fails with a typed error saying to install it, and a JavaScript one still loads', async () => {
      await run('npm', ['uninstall', '--no-audit', '--no-fund', 'tsx'], { cwd: project })
      const ts = await cli('status', '--config', 'people.config.mts')
      expect(ts.code).toBe(1)
      expect(ts.stderr).toMatch(/install tsx in your project .*\[CONFIG_MODULE\]/s)
      const mjs = await cli('status', '--json', '--config', 'people.config.mjs')
      expect(mjs.code, mjs.stderr).toBe(0)
      expect(resultLine(mjs)).toMatchObject({ command: 'status' })
    }, 120_000)
  }
})
