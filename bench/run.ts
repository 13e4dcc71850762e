/**
 * `pnpm bench [names…]`: runs the benchmark modules (bench/<name>.ts, each exporting
 * `benchmark(): Promise<string>` that returns a markdown section) one after another, so that no two
 * compete for the machine's two cores, and writes docs/benchmarks.md.
 *
 * Every figure is a ratio against a baseline measured in the same run; nothing here asserts a
 * wall-clock limit.
 */
import { execSync } from 'node:child_process'
import { existsSync, writeFileSync } from 'node:fs'
import { cpus, totalmem } from 'node:os'
import { fileURLToPath } from 'node:url'

const MODULES = ['kysely', 'mongoose', 'backfill', 'capture'] as const

const root = fileURLToPath(new URL('../', import.meta.url))
const requested = process.argv.slice(2).filter((arg) => !arg.startsWith('-'))
const names = requested.length > 0 ? requested : [...MODULES]

const sections: string[] = []
for (const name of names) {
  const file = `${root}bench/${name}.ts`
  if (!existsSync(file)) {
    process.stderr.write(`bench: no module bench/${name}.ts\n`)
    process.exitCode = 1
    continue
  }
  process.stderr.write(`bench: running ${name}…\n`)
  const started = Date.now()
  const { benchmark } = (await import(file)) as { benchmark: () => Promise<string> }
  sections.push((await benchmark()).trim())
  process.stderr.write(`bench: ${name} done in ${Math.round((Date.now() - started) / 1000)}s\n`)
}

const commit = (() => {
  try {
    return execSync('git rev-parse --short HEAD', { cwd: root, encoding: 'utf8' }).trim()
  } catch {
    return 'unknown'
  }
})()
const pgVersion = (() => {
  try {
    return execSync('psql --version', { encoding: 'utf8' }).trim()
  } catch {
    return 'PostgreSQL (version unknown)'
  }
})()

const header = `# Benchmarks

Produced by \`pnpm bench${requested.length > 0 ? ` ${requested.join(' ')}` : ''}\` on ${new Date().toISOString().slice(0, 10)} at commit \`${commit}\`.

Machine: ${cpus().length} × ${cpus()[0]?.model ?? 'unknown CPU'}, ${Math.round(totalmem() / 2 ** 30)} GiB RAM, Node ${process.version}, ${pgVersion},
FerretDB v1.24.2 on SQLite (unless MONGODB_URL pointed elsewhere). PostgreSQL and FerretDB run on the
same machine as the benchmark, so client and server share the two cores.

Every ratio compares against a baseline measured in the same run on the same data; ratios, not
absolute times, are what carries over to other machines.
`

const target = `${root}docs/benchmarks.md`
writeFileSync(target, `${header}\n${sections.join('\n\n')}\n`)
process.stderr.write(`bench: wrote ${target}\n`)
