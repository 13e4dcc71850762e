import type { Migration } from '../model/migration.js'
import type { KeyPart, KeyValue } from '../model/store.js'
import { keyArity } from '../model/stored-key.js'
import { UsageError } from './args.js'

/**
 * `--keys` is wrong for the migration: not a list of its keys, or keys of the wrong number of
 * columns. A usage error (exit 64) that names the migration and the value.
 */
export class KeysArgumentError extends UsageError {
  constructor(
    readonly migration: string,
    readonly value: string,
    problem: string,
  ) {
    super(`--keys ${JSON.stringify(value)} for ${migration}: ${problem}`, 'reconcile')
  }
}

/**
 * The keys of `--keys`, in one of two forms:
 *
 * - `5,7,9` — single keys separated by commas, each taken as text (a PostgreSQL integer key takes
 *   it as well). Only for a migration with a single-column key; a key holding a comma, or one
 *   starting with `[`, is written in the JSON form.
 * - `[5,"a,b"]` or, for a composite key of N columns, `[[1,"a"],[2,"b"]]` — a JSON array of keys,
 *   each a string or an integer, or for a composite key an array of exactly N of them in the key
 *   columns' order. Integers past 2^53 are written as strings (JSON numbers lose them).
 *
 * A value starting with `[` is always JSON. A composite migration takes only the JSON form: a
 * separator inside the text form would be ambiguous with a comma or colon inside a part.
 */
export function parseKeysArgument(value: string, migration: Migration<any, any>): KeyValue[] {
  const arity = keyArity(migration.old)
  const fail = (problem: string): never => {
    throw new KeysArgumentError(migration.name, value, problem)
  }
  const example = arity > 1 ? exampleOf(arity) : '5,7,9 or ["5","7"]'
  if (!value.trimStart().startsWith('[')) {
    if (arity > 1) fail(`its key has ${arity} columns (${keyColumns(migration)}); write the keys as JSON, e.g. --keys '${example}'`)
    const keys = value.split(',').filter((key) => key !== '')
    if (keys.length === 0) fail(`no keys given; e.g. --keys ${example}`)
    return keys
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(value)
  } catch (error) {
    return fail(`not valid JSON (${(error as Error).message}); e.g. --keys '${example}'`)
  }
  if (!Array.isArray(parsed) || parsed.length === 0) return fail(`expected a non-empty JSON array of keys, e.g. --keys '${example}'`)
  return parsed.map((key, i) => {
    if (arity === 1) return keyPart(key) ?? fail(`key ${i + 1} (${JSON.stringify(key)}) is not a string or an integer (write integers past 2^53 as strings)`)
    if (!Array.isArray(key) || key.length !== arity) {
      return fail(`key ${i + 1} (${JSON.stringify(key)}) is not an array of ${arity} parts (${keyColumns(migration)}), e.g. --keys '${example}'`)
    }
    return Object.freeze(key.map((part, j) => keyPart(part) ?? fail(`part ${j + 1} of key ${i + 1} (${JSON.stringify(part)}) is not a string or an integer (write integers past 2^53 as strings)`)))
  })
}

function keyPart(value: unknown): KeyPart | undefined {
  if (typeof value === 'string') return value
  if (typeof value === 'number' && Number.isSafeInteger(value)) return value
  return undefined
}

function keyColumns(migration: Migration<any, any>): string {
  return (migration.old.keyFields ?? [migration.key.old]).join(', ')
}

function exampleOf(arity: number): string {
  const key = (n: number) => `[${Array.from({ length: arity }, (_, i) => (i === arity - 1 ? `"${String.fromCharCode(97 + n)}"` : String(n + 1))).join(',')}]`
  return `[${key(0)},${key(1)}]`
}
