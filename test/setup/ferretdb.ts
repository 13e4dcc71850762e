/**
 * FerretDB v1.24.2 (a MongoDB wire-protocol server, Apache-2.0) for the tests and benchmarks:
 * built once with Go from the Go module proxy into .cache/ferretdb, then started on a free
 * loopback port with a throw-away SQLite directory. Use MONGODB_URL instead when a
 * MongoDB-wire server exists.
 *
 * Why a small main module (test/ferretdb/main.go) and not `go install
 * github.com/FerretDB/FerretDB/cmd/ferretdb@v1.24.2`: that binary panics at start-up because the
 * module zip lacks build/version/version.txt, and `go install pkg@version` also asks the proxy for
 * the module's deprecation list, which may be refused. The embedded `ferretdb` package is the same
 * server code from the same module version.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { connect, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const FERRETDB_BINARY = fileURLToPath(new URL('../../.cache/ferretdb/ferretdb-v1.24.2', import.meta.url))
const FERRETDB_SOURCE = fileURLToPath(new URL('../ferretdb/', import.meta.url))

export interface RunningFerretDb {
  readonly url: string
  stop(): Promise<void>
}

/** Builds the FerretDB binary unless it is there already. Throws saying how to proceed without Go. */
export function buildFerretDb(log: (line: string) => void = () => {}): void {
  if (existsSync(FERRETDB_BINARY)) return
  const go = ['go', '/usr/local/go/bin/go'].find((candidate) => spawnSync(candidate, ['version']).status === 0)
  if (!go) {
    throw new Error(
      'No MONGODB_URL is set and Go was not found (looked for `go` on PATH and /usr/local/go/bin/go).\n' +
        'Install Go 1.24+ so the tests can build FerretDB v1.24.2 from the Go module proxy,\n' +
        'or set MONGODB_URL to a MongoDB-compatible server (e.g. mongodb://127.0.0.1:27017).',
    )
  }
  mkdirSync(dirname(FERRETDB_BINARY), { recursive: true })
  const started = Date.now()
  const build = spawnSync(go, ['build', '-o', FERRETDB_BINARY, '.'], {
    cwd: FERRETDB_SOURCE,
    encoding: 'utf8',
    env: { ...process.env, GOFLAGS: '-mod=mod', CGO_ENABLED: '0' },
    timeout: 15 * 60_000,
  })
  if (build.status !== 0) {
    rmSync(FERRETDB_BINARY, { force: true })
    throw new Error(`Building FerretDB failed (go build in test/ferretdb):\n${build.stderr}${build.stdout}`)
  }
  log(`built FerretDB v1.24.2 in ${Math.round((Date.now() - started) / 1000)}s`)
}

/** Builds FerretDB if needed and starts it; `stop()` ends it and removes its data. */
export async function startFerretDb(log?: (line: string) => void): Promise<RunningFerretDb> {
  buildFerretDb(log)
  const port = await freePort()
  const dir = mkdtempSync(join(tmpdir(), 'cutover-ferretdb-'))
  const child: ChildProcess = spawn(FERRETDB_BINARY, ['-listen', `127.0.0.1:${port}`, '-sqlite-dir', dir], { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4_000)
  })
  const deadline = Date.now() + 30_000
  while (!(await canConnect(port))) {
    if (child.exitCode !== null) throw new Error(`FerretDB exited at start-up: ${stderr}`)
    if (Date.now() > deadline) throw new Error(`FerretDB did not listen on 127.0.0.1:${port} within 30s: ${stderr}`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  return {
    url: `mongodb://127.0.0.1:${port}/`,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve))
        child.kill('SIGTERM')
        await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 5_000))])
        if (child.exitCode === null) child.kill('SIGKILL')
      }
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port })
    socket.once('connect', () => {
      socket.destroy()
      resolve(true)
    })
    socket.once('error', () => resolve(false))
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
