import { type KeyValue, keyString, type Row, type Store } from '@cutover/core'
import { describe, expect, it } from 'vitest'
import { KeyLookupBatch } from '../src/read/key-lookup-batch.js'

function store(rows: Row[], fail = false): Store & { calls: KeyValue[][] } {
  const calls: KeyValue[][] = []
  return {
    name: 'memory',
    keyField: 'id',
    calls,
    async get(keys: readonly KeyValue[]) {
      calls.push([...keys])
      if (fail) throw new Error('store down')
      return new Map(rows.filter((row) => keys.includes(row.id as KeyValue)).map((row) => [keyString(row.id as KeyValue), row]))
    },
  } as unknown as Store & { calls: KeyValue[][] }
}

describe('KeyLookupBatch', () => {
  it('reads the keys of reads that arrive together with one store call, and hands each read only its own records', async () => {
    const s = store([{ id: 1 }, { id: 2 }, { id: 3 }])
    const batch = new KeyLookupBatch(s, { lingerMs: 5 })
    const results = await Promise.all([batch.get([1]), batch.get([2, 1]), batch.get([9])])
    expect(s.calls).toEqual([[1, 2, 9]])
    expect(results.map((found) => [...found.keys()])).toEqual([['1'], ['2', '1'], []])
  })

  it('starts a full batch at once and passes store errors to every waiting read', async () => {
    const s = store([], true)
    const batch = new KeyLookupBatch(s, { lingerMs: 60_000, maxKeys: 2 })
    const outcomes = await Promise.allSettled([batch.get([1]), batch.get([2])])
    expect(outcomes.map((o) => o.status)).toEqual(['rejected', 'rejected'])
    expect(s.calls).toEqual([[1, 2]])
  })
})
