import { PostgresQueryCompiler, type QueryCompiler } from 'kysely'

/**
 * Whether a compiler is PostgreSQL's, by class rather than by `instanceof`: an application can
 * load Kysely twice (its CommonJS build for one dependency, the ESM one for another), and then the
 * dialect's compiler is an instance of the other build's `PostgresQueryCompiler`. A class counts as
 * PostgreSQL's when it is this build's, or is named so and has its methods; `exactly` refuses
 * subclasses, which may compile some clauses otherwise.
 */
export function isPostgresCompiler(compiler: QueryCompiler, options: { readonly exactly?: boolean } = {}): boolean {
  let prototype: unknown = Object.getPrototypeOf(compiler)
  while (prototype !== null && prototype !== Object.prototype) {
    if (isPostgresPrototype(prototype as object)) return true
    if (options.exactly) return false
    prototype = Object.getPrototypeOf(prototype)
  }
  return false
}

const METHODS = Object.getOwnPropertyNames(PostgresQueryCompiler.prototype).filter((name) => name !== 'constructor')

function isPostgresPrototype(prototype: object): boolean {
  if (prototype === PostgresQueryCompiler.prototype) return true
  const constructor = Object.hasOwn(prototype, 'constructor') ? (prototype as { constructor: unknown }).constructor : undefined
  if (typeof constructor !== 'function' || constructor.name !== PostgresQueryCompiler.name) return false
  return METHODS.every((name) => Object.hasOwn(prototype, name))
}
