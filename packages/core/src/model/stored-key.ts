import type { KeyPart, KeyValue } from './store.js'

/**
 * A key as the control tables keep it: its text and its JavaScript type, so that a checkpoint
 * resumes with exactly the value the store scanned (`5`, `"5"` and `5n` order differently). A
 * composite key is kept as the JSON of its parts' stored forms, with type `composite`.
 */
export interface StoredKey {
  readonly text: string
  readonly type: 'string' | 'number' | 'bigint' | 'composite'
}

export function storeKey(key: KeyValue): StoredKey {
  if (Array.isArray(key)) return { text: JSON.stringify(key.map((part) => storeKey(part))), type: 'composite' }
  const part = key as KeyPart
  return { text: typeof part === 'string' ? part : part.toString(), type: typeof part as 'string' | 'number' | 'bigint' }
}

export function loadKey(stored: StoredKey): KeyValue {
  switch (stored.type) {
    case 'number':
      return Number(stored.text)
    case 'bigint':
      return BigInt(stored.text)
    case 'composite':
      return Object.freeze((JSON.parse(stored.text) as StoredKey[]).map((part) => loadKey(part) as KeyPart))
    default:
      return stored.text
  }
}

/**
 * The key whose `keyString` is `text`, for a store whose keys have `arity` columns: the text
 * itself for a single key, the parts of the JSON array for a composite one (as strings: the types
 * are gone, which a PostgreSQL store does not mind, its parameters being cast to the columns).
 * For entries that kept only the text (`StoredKey` is exact). Returns undefined when `text` is not
 * the key text of a composite key of that arity.
 */
export function keyFromText(text: string, arity: number): KeyValue | undefined {
  if (arity <= 1) return text
  let parts: unknown
  try {
    parts = JSON.parse(text)
  } catch {
    return undefined
  }
  if (!Array.isArray(parts) || parts.length !== arity || !parts.every((part) => typeof part === 'string')) return undefined
  return Object.freeze(parts as string[])
}

/** How many key columns a store's keys have. */
export function keyArity(store: { readonly keyFields?: readonly string[] }): number {
  return Math.max(1, store.keyFields?.length ?? 1)
}
