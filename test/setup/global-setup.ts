/**
 * Vitest global setup: makes sure the real services the tests talk to are there.
 *
 * - PostgreSQL at DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres). If nothing
 *   answers, setup fails with how to start it: tests never skip for a missing database.
 * - A MongoDB-wire server at MONGODB_URL, or else FerretDB v1.24.2 built with Go from the module
 *   proxy into .cache/ferretdb (once, reused) and started on a free loopback port for this run.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import type { TestProject } from 'vitest/node'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const FERRET_SOURCE = join(ROOT, 'test/ferretdb')
const FERRET_BIN = join(ROOT, '.cache/ferretdb/ferretdb-v1.24.2')
const DEFAULT_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/postgres'

declare module 'vitest' {
  export interface ProvidedContext {
    databaseUrl: string
    mongodbUrl: string
  }
}

let ferret: ChildProcess | undefined
let ferretDir: string | undefined

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const databaseUrl = process.env.DATABASE_URL ?? DEFAULT_DATABASE_URL
  await checkPostgres(databaseUrl)
  project.provide('databaseUrl', databaseUrl)

  const mongodbUrl = process.env.MONGODB_URL ?? (await startFerretDb())
  await waitForPing(mongodbUrl)
  project.provide('mongodbUrl', mongodbUrl)

  return async () => {
    if (ferret && ferret.exitCode === null) {
      const exited = new Promise((resolve) => ferret!.once('exit', resolve))
      ferret.kill('SIGTERM')
      await Promise.race([exited, sleep(5_000)])
      if (ferret.exitCode === null) ferret.kill('SIGKILL')
    }
    if (ferretDir) rmSync(ferretDir, { recursive: true, force: true })
  }
}

async function checkPostgres(url: string): Promise<void> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 })
  try {
    await client.connect()
    await client.query('select 1')
  } catch (error) {
    throw new Error(
      `PostgreSQL is not reachable at ${redact(url)} (${(error as Error).message}).\n` +
        'Start it (on this machine: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start)\n' +
        'or point DATABASE_URL at a PostgreSQL server the tests may create databases on.',
    )
  } finally {
    await client.end().catch(() => {})
  }
}

function findGo(): string | undefined {
  const candidates = ['go', '/usr/local/go/bin/go']
  for (const candidate of candidates) {
    const probe = spawnSync(candidate, ['version'], { encoding: 'utf8' })
    if (probe.status === 0) return candidate
  }
  return undefined
}

function buildFerretDb(): void {
  if (existsSync(FERRET_BIN)) return
  const go = findGo()
  if (!go) {
    throw new Error(
      'No MONGODB_URL is set and Go was not found (looked for `go` on PATH and /usr/local/go/bin/go).\n' +
        'Install Go 1.24+ so the tests can build FerretDB v1.24.2 from the Go module proxy,\n' +
        'or set MONGODB_URL to a MongoDB-compatible server (e.g. mongodb://127.0.0.1:27017).',
    )
  }
  mkdirSync(dirname(FERRET_BIN), { recursive: true })
  const started = Date.now()
  const build = spawnSync(go, ['build', '-o', FERRET_BIN, '.'], {
    cwd: FERRET_SOURCE,
    encoding: 'utf8',
    env: { ...process.env, GOFLAGS: '-mod=mod', CGO_ENABLED: '0' },
    timeout: 15 * 60_000,
  })
  if (build.status !== 0) {
    rmSync(FERRET_BIN, { force: true })
    throw new Error(`Building FerretDB failed (go build in test/ferretdb):\n${build.stderr}${build.stdout}`)
  }
  process.stderr.write(`[cutover test setup] built FerretDB v1.24.2 in ${Math.round((Date.now() - started) / 1000)}s\n`)
}

async function startFerretDb(): Promise<string> {
  buildFerretDb()
  const port = await freePort()
  ferretDir = mkdtempSync(join(tmpdir(), 'cutover-ferretdb-'))
  const listen = `127.0.0.1:${port}`
  const child = spawn(FERRET_BIN, ['-listen', listen, '-sqlite-dir', ferretDir], {
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  let stderr = ''
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4_000)
  })
  ferret = child
  child.once('exit', (code) => {
    if (code !== 0 && code !== null) process.stderr.write(`[cutover test setup] FerretDB exited with ${code}: ${stderr}\n`)
  })
  await waitForPort(port, child, () => stderr)
  return `mongodb://${listen}/`
}

async function waitForPort(port: number, child: ChildProcess, stderr: () => string): Promise<void> {
  const deadline = Date.now() + 30_000
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`FerretDB exited at start-up: ${stderr()}`)
    if (await canConnect(port)) return
    await sleep(100)
  }
  throw new Error(`FerretDB did not listen on 127.0.0.1:${port} within 30s: ${stderr()}`)
}

async function waitForPing(url: string): Promise<void> {
  const mongoose = await import('mongoose')
  const deadline = Date.now() + 30_000
  let lastError: unknown
  while (Date.now() < deadline) {
    const connection = mongoose.createConnection(url, { serverSelectionTimeoutMS: 2_000 })
    try {
      await connection.asPromise()
      await connection.db!.admin().ping()
      return
    } catch (error) {
      lastError = error
      await sleep(200)
    } finally {
      await connection.close().catch(() => {})
    }
  }
  throw new Error(`The MongoDB-wire server at ${redact(url)} did not answer ping: ${String(lastError)}`)
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    import('node:net').then(({ connect }) => {
      const socket = connect({ host: '127.0.0.1', port })
      socket.once('connect', () => {
        socket.destroy()
        resolve(true)
      })
      socket.once('error', () => resolve(false))
    })
  })
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))))
    })
  })
}

function redact(url: string): string {
  return url.replace(/\/\/([^:@/]+):[^@/]+@/, '//$1:***@')
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}
