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
