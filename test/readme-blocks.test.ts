/**
 * The TypeScript in the READMEs compiles as written, under `tsc --strict` (the repository's
 * tsconfig.base.json: strict, noUncheckedIndexedAccess, NodeNext modules), against the packages'
 * sources.
 *
 * Rules for README authors:
 * - Every ```ts (or ```typescript) block of README.md and packages/* /README.md is checked, each as
 *   a module of its own (its imports are its own; top-level await is fine).
 * - A block is skipped only when the line before it is `<!-- not checked: the reason -->`.
 * - Names a block uses without defining are the things the prose says the application already
 *   has (its Kysely instances, its pool, a mapper defined in an earlier block, …). They are
 *   declared, with types a user would have, in `CONTEXT` below; add a name there, typed, rather
 *   than an `any` in the README.
 * A failure names the README, its line, and the compiler's message.
 */
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join, relative, resolve } from 'node:path'
import ts from 'typescript'
import { beforeAll, describe, expect, it } from 'vitest'

const ROOT = resolve(import.meta.dirname, '..')
const OUT = join(ROOT, '.cache', 'readme-blocks')

/** What the READMEs' prose says the application already has. */
const CONTEXT = `
import type { Kysely } from 'kysely'
import type pg from 'pg'
import type { Connection } from 'mongoose'
import type { Cutover, Mapper, Migration, Store } from '@cutover/core'
import type { NewStoreReader } from '@cutover/mongoose-plugin'

declare global {
  /** The application's Kysely database interface. */
  interface DB {
    users: { user_id: number; full_name: string | null; email: string }
  }
  /** The application's pg pool, and Kysely instances on the old, the new and the control database. */
  const pool: pg.Pool
  const oldDb: Kysely<any>
  const newDb: Kysely<any>
  const db: Kysely<any>
  const pgDb: Kysely<any>
  const control: Kysely<any>
  const controlKysely: Kysely<any>
  /** A Mongoose connection of the application's. */
  const connection: Connection
  /** Stores and mappers defined as the README shows earlier. */
  const oldUsersStore: Store
  const newUsersStore: Store
  const usersMapper: Mapper<any, any>
  const appointmentsMapper: Mapper<any, any>
  const mapper: Mapper<any, any>
  const users: Migration<any, any>
  const cutover: Cutover
  /** A NewStoreReader the application wrote for its new store. */
  const postgresReader: NewStoreReader
  const myPostgresReader: NewStoreReader
}
`

interface Block {
  readonly readme: string
  /** 1-based line of the block's first code line in the README. */
  readonly line: number
  readonly code: string
}

function readmes(): string[] {
  const packages = readdirSync(join(ROOT, 'packages')).map((p) => join('packages', p, 'README.md'))
  return ['README.md', ...packages].filter((file) => {
    try {
      readFileSync(join(ROOT, file))
      return true
    } catch {
      return false
    }
  })
}

function tsBlocks(readme: string, text: string): Block[] {
  const lines = text.split('\n')
  const blocks: Block[] = []
  for (let i = 0; i < lines.length; i++) {
    if (!/^```(ts|typescript)\s*$/.test(lines[i] as string)) continue
    const end = lines.findIndex((l, j) => j > i && /^```\s*$/.test(l))
    if (end < 0) throw new Error(`${readme}:${i + 1}: unclosed code block`)
    const before = lines.slice(0, i).reverse().find((l) => l.trim() !== '') ?? ''
    if (!/^<!--\s*not checked:\s*\S.*-->\s*$/.test(before)) blocks.push({ readme, line: i + 2, code: lines.slice(i + 1, end).join('\n') })
    i = end
  }
  return blocks
}

function compilerOptions(): ts.CompilerOptions {
  const base = ts.readConfigFile(join(ROOT, 'tsconfig.base.json'), ts.sys.readFile)
  const { options } = ts.parseJsonConfigFileContent(base.config, ts.sys, ROOT)
  return {
    ...options,
    strict: true,
    noEmit: true,
    declaration: false,
    declarationMap: false,
    sourceMap: false,
    baseUrl: ROOT,
    paths: {
      '@cutover/core': ['packages/core/src/index.ts'],
      '@cutover/kysely-plugin': ['packages/kysely-plugin/src/index.ts'],
      '@cutover/mongoose-plugin': ['packages/mongoose-plugin/src/index.ts'],
      '@cutover/http': ['packages/http/src/index.ts'],
    },
  }
}

/** Type-checks the blocks; the diagnostics of each, by README and line. */
function check(blocks: readonly Block[]): string[] {
  rmSync(OUT, { recursive: true, force: true })
  mkdirSync(OUT, { recursive: true })
  writeFileSync(join(OUT, 'context.d.ts'), CONTEXT)
  const files = new Map<string, Block>()
  blocks.forEach((block, n) => {
    const file = join(OUT, `${block.readme.replaceAll('/', '_').replace(/\.md$/, '')}_${block.line}_${n}.ts`)
    writeFileSync(file, `${block.code}\nexport {}\n`)
    files.set(file, block)
  })
  const program = ts.createProgram([join(OUT, 'context.d.ts'), ...files.keys()], compilerOptions())
  return ts.getPreEmitDiagnostics(program).map((d) => {
    const message = ts.flattenDiagnosticMessageText(d.messageText, '\n')
    const block = d.file ? files.get(resolve(d.file.fileName)) : undefined
    if (!d.file || d.start === undefined) return message
    const { line } = d.file.getLineAndCharacterOfPosition(d.start)
    return block ? `${block.readme}:${block.line + line}: ${message}` : `${relative(ROOT, d.file.fileName)}:${line + 1}: ${message}`
  })
}

/** A block that must fail, checked in the same program as the READMEs' (one compile of the sources). */
const CANARY: Block = { readme: 'CANARY.md', line: 7, code: "import { createCutover } from '@cutover/core'\n\nconst n: number = createCutover" }

describe('README TypeScript blocks', () => {
  let errors: string[] = []
  let count = 0

  beforeAll(() => {
    const blocks = readmes().flatMap((file) => tsBlocks(file, readFileSync(join(ROOT, file), 'utf8')))
    count = blocks.length
    errors = check([...blocks, CANARY])
  }, 180_000)

  it('finds blocks, honours `<!-- not checked: … -->` and reports README lines', () => {
    const sample = ['# x', '```ts', 'const a: number = 1', '```', '<!-- not checked: pseudo-code -->', '```ts', 'nonsense(', '```', '```typescript', 'let b = 2', '```'].join('\n')
    expect(tsBlocks('X.md', sample)).toEqual([
      { readme: 'X.md', line: 3, code: 'const a: number = 1' },
      { readme: 'X.md', line: 10, code: 'let b = 2' },
    ])
  })

  it('the checker can fail: a wrong block is reported at its README line', () => {
    const canary = errors.filter((e) => e.startsWith('CANARY.md'))
    expect(canary).toHaveLength(1)
    expect(canary[0]).toMatch(/^CANARY\.md:9: Type .* is not assignable to type 'number'/)
  })

  it('every checked block of README.md and the package READMEs compiles under --strict', () => {
    expect(count).toBeGreaterThanOrEqual(7)
    expect(errors.filter((e) => !e.startsWith('CANARY.md'))).toEqual([])
  })
})
