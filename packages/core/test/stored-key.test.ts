import { describe, expect, it } from 'vitest'
import { compositeKey, keyString } from '../src/model/store.js'
import { keyArity, keyFromText, loadKey, storeKey } from '../src/model/stored-key.js'

describe('stored keys', () => {
  it('keep a composite key with its parts and their types', () => {
    const key = compositeKey(7, 'a,"b"', 9007199254740993n)
    expect(storeKey(key).type).toBe('composite')
    expect(loadKey(storeKey(key))).toEqual([7, 'a,"b"', 9007199254740993n])
    expect(loadKey(storeKey('5'))).toBe('5')
    expect(loadKey(storeKey(5))).toBe(5)
  })

  it('rebuild a key kept as text only from the number of key columns, and nothing that is not one', () => {
    const text = keyString(compositeKey(1, 'x'))
    expect(keyFromText(text, 2)).toEqual(['1', 'x'])
    expect(keyString(keyFromText(text, 2)!)).toBe(text)
    // A single text key that looks like a composite one stays text.
    expect(keyFromText(text, 1)).toBe(text)
    expect(keyFromText(text, 3)).toBeUndefined()
    expect(keyFromText('not json', 2)).toBeUndefined()
    expect(keyFromText('[1,2]', 2)).toBeUndefined()
    expect(keyArity({ keyFields: ['a', 'b'] })).toBe(2)
    expect(keyArity({})).toBe(1)
  })
})
