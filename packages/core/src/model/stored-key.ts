import type { KeyValue } from './store.js'

/**
 * A key as the control tables keep it: its text and its JavaScript type, so that a checkpoint
 * resumes with exactly the value the store scanned (`5`, `"5"` and `5n` order differently).
 */
export interface StoredKey {
  readonly text: string
  readonly type: 'string' | 'number' | 'bigint'
}

export function storeKey(key: KeyValue): StoredKey {
  return { text: typeof key === 'string' ? key : key.toString(), type: typeof key as StoredKey['type'] }
}

export function loadKey(stored: StoredKey): KeyValue {
  switch (stored.type) {
    case 'number':
      return Number(stored.text)
    case 'bigint':
      return BigInt(stored.text)
    default:
      return stored.text
  }
}
