import { copy, fieldMapper, rename } from '@cutover/core'
import mongoose from 'mongoose'
import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import { changedNothing, keysPinnedBy, possiblyApplied } from '../src/write/affected-keys.js'
import { translateFilter, translateQuery } from '../src/read/query-translation.js'

const mapper = fieldMapper({
  old: z.object({ _id: z.string(), name: z.string(), age: z.number(), tags: z.array(z.string()), city: z.string() }),
  new: z.object({ id: z.string(), full_name: z.string(), age: z.number(), tags: z.array(z.string()), town: z.string() }),
  fields: [rename('_id', 'id'), rename('name', 'full_name'), copy('age'), copy('tags'), rename('city', 'town')],
})
const mapping = { oldKey: '_id', newKey: 'id', fieldMap: mapper.fieldMap, arrayPaths: new Set(['tags']) }

describe('query translation', () => {
  it('translates the supported subset through the field map, ObjectIds as hex', () => {
    const id = new mongoose.Types.ObjectId()
    const result = translateQuery(
      {
        filter: { _id: { $in: [id] }, name: 'Ada', age: { $gte: 18, $lt: 65 }, city: { $ne: null, $nin: ['X'] }, $or: [{ age: 1 }, { city: { $exists: false } }] },
        sort: { age: -1, name: 1 },
        limit: 10,
        skip: 5,
      },
      mapping,
    )
    expect(result).toEqual({
      ok: true,
      value: {
        filter: {
          kind: 'and',
          nodes: [
            { kind: 'in', column: 'id', values: [id.toHexString()] },
            { kind: 'compare', column: 'full_name', op: '=', value: 'Ada' },
            { kind: 'compare', column: 'age', op: '>=', value: 18 },
            { kind: 'compare', column: 'age', op: '<', value: 65 },
            { kind: 'compare', column: 'town', op: '<>', value: null },
            { kind: 'not-in', column: 'town', values: ['X'] },
            { kind: 'or', nodes: [{ kind: 'compare', column: 'age', op: '=', value: 1 }, { kind: 'exists', column: 'town', exists: false }] },
          ],
        },
        sort: [{ column: 'age', direction: 'desc' }, { column: 'full_name', direction: 'asc' }],
        limit: 10,
        skip: 5,
      },
    })
    expect(translateFilter({}, mapping)).toEqual({ ok: true, value: undefined })
  })

  it('refuses what it cannot express, saying why', () => {
    const refused = (filter: unknown) => {
      const result = translateFilter(filter, mapping)
      return result.ok ? 'translated' : result.reason
    }
    expect(refused({ name: /Ada/ })).toMatch(/RegExp/)
    expect(refused({ tags: 'x' })).toMatch(/array field/)
    expect(refused({ 'address.city': 'x' })).toMatch(/no renamed column/)
    expect(refused({ $nor: [{ age: 1 }] })).toMatch(/\$nor/)
    expect(refused({ age: { $elemMatch: { $gt: 1 } } })).toMatch(/\$elemMatch/)
    expect(refused({ age: { $gt: null } })).toMatch(/null/)
    expect(translateQuery({ filter: {}, sort: { age: { $meta: 'textScore' } } }, mapping).ok).toBe(false)
  })
})

describe('affected keys', () => {
  it('reads keys a filter pins', () => {
    const id = new mongoose.Types.ObjectId()
    expect(keysPinnedBy({ _id: id }, '_id')).toEqual([id])
    expect(keysPinnedBy({ _id: id, name: 'x' }, '_id')).toEqual([id])
    expect(keysPinnedBy({ _id: { $eq: 5 } }, '_id')).toEqual([5])
    expect(keysPinnedBy({ _id: { $in: [1, 2] } }, '_id')).toEqual([1, 2])
    expect(keysPinnedBy({ _id: { $gt: 1 } }, '_id')).toBeUndefined()
    expect(keysPinnedBy({ name: 'x' }, '_id')).toBeUndefined()
  })

  it('knows which operations of a failed batch may have been applied', () => {
    const error = { writeErrors: [{ index: 1 }, { index: 3 }] }
    expect(possiblyApplied(5, error, true)).toEqual([0])
    expect(possiblyApplied(5, error, false)).toEqual([0, 2, 4])
    expect(possiblyApplied(3, new Error('socket closed'), true)).toEqual([0, 1, 2])
    expect(changedNothing({ code: 11000 })).toBe(true)
    expect(changedNothing({ code: 11000, writeErrors: [] })).toBe(false)
    expect(changedNothing(new Error('timeout'))).toBe(false)
  })
})
