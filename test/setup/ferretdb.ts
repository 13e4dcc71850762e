/**
 * Starts the FerretDB binary the test setup builds (.cache/ferretdb/ferretdb-v1.24.2, see
 * global-setup.ts) on a free loopback port with a throw-away SQLite directory, for programs that
 * run outside vitest (the benchmarks). Use MONGODB_URL instead when a MongoDB-wire server exists.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { connect, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const FERRETDB_BINARY = fileURLToPath(new URL('../../.cache/ferretdb/ferretdb-v1.24.2', import.meta.url))

export interface RunningFerretDb {
  readonly url: string
  stop(): Promise<void>
}

export async function startFerretDb(): Promise<RunningFerretDb> {
  if (!existsSync(FERRETDB_BINARY)) {
    throw new Error(`FerretDB is not built at ${FERRETDB_BINARY}: run the tests once (pnpm test) to build it, or set MONGODB_URL`)
  }
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
