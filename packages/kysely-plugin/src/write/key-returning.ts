import type { CompiledQuery, QueryCompiler } from 'kysely'
import { isPostgresCompiler } from '../dialect/postgres-compiler.js'
import type { WritePlan } from './write-capture.js'

/** Shapes remembered at most; past that the cache starts again (shapes come from the code, so this is a guard). */
const MAX_SHAPES = 1_000

/**
 * Compiles a `returning` plan: the caller's query with the key added to its RETURNING.
 *
 * Recompiling the whole operation node costs more than anything else the wrapper does for such a
 * write. PostgreSQL's compiler emits RETURNING last when no ORDER BY, LIMIT or `modifyEnd` text
 * follows it (the plan's `shape` is set only then), so the recompiled text is the caller's text
 * plus a suffix that depends on the shape alone (` returning "u"."id" as "__cutover_key"`, or
 * `, "u"."id" as …` after the caller's own RETURNING). The first statement of each shape is
 * recompiled, and its suffix is kept only if the recompiled text is indeed the caller's text plus
 * the suffix with the same parameters; later ones get the suffix appended. Any other compiler, and
 * any other shape, is recompiled every time.
 */
export class KeyReturning {
  readonly #compiler: QueryCompiler
  /** Only PostgreSQL's own compiler: a subclass may compile RETURNING differently. */
  readonly #appends: boolean
  readonly #suffixes = new Map<string, string>()

  constructor(compiler: QueryCompiler) {
    this.#compiler = compiler
    this.#appends = isPostgresCompiler(compiler, { exactly: true })
  }

  compile(plan: Extract<WritePlan, { kind: 'returning' }>, original: CompiledQuery): CompiledQuery {
    const shape = this.#appends ? plan.shape : undefined
    if (shape === undefined) return this.#compiler.compileQuery(plan.node, original.queryId)
    const suffix = this.#suffixes.get(shape)
    if (suffix !== undefined) return Object.freeze({ query: plan.node, queryId: original.queryId, sql: original.sql + suffix, parameters: original.parameters })
    const compiled = this.#compiler.compileQuery(plan.node, original.queryId)
    if (compiled.sql.startsWith(original.sql) && sameParameters(compiled.parameters, original.parameters)) {
      if (this.#suffixes.size >= MAX_SHAPES) this.#suffixes.clear()
      this.#suffixes.set(shape, compiled.sql.slice(original.sql.length))
    }
    return compiled
  }
}

function sameParameters(a: readonly unknown[], b: readonly unknown[]): boolean {
  return a.length === b.length && a.every((value, i) => Object.is(value, b[i]))
}
