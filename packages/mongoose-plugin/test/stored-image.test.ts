import mongoose from 'mongoose'
import { describe, expect, it } from 'vitest'
import { storedImagesFor } from '../src/write/stored-image.js'

const { BSON } = mongoose.mongo
const driverDefaults = { promoteLongs: true, promoteValues: true, promoteBuffers: false, ignoreUndefined: false, bsonRegExp: false, raw: false, fieldsAsRaw: {} }

describe('storedImagesFor', () => {
  it('gives the document as the driver would read it back, key in Store form', () => {
    const images = storedImagesFor({ collection: { bsonOptions: driverDefaults } }, BSON)!
    const _id = new mongoose.Types.ObjectId()
    const row = images.of({ _id, n: new BSON.Int32(3), blob: Buffer.from('hi'), tags: new Map([['a', 1]]), gone: undefined }, undefined, '_id')
    expect(row._id).toBe(_id.toHexString())
    expect(row.n).toBe(3)
    expect(row.blob).toBeInstanceOf(BSON.Binary) // not the Buffer Mongoose sent
    expect(row.tags).toEqual({ a: 1 })
    expect(row).toHaveProperty('gone', null)
    const ignoring = images.of({ _id, gone: undefined }, { ignoreUndefined: true }, '_id')
    expect(ignoring).not.toHaveProperty('gone')
  })

  it('claims no exact image for collections that decode raw', () => {
    expect(storedImagesFor({ collection: { bsonOptions: { ...driverDefaults, raw: true } } }, BSON)).toBeUndefined()
    expect(storedImagesFor({}, BSON)).toBeUndefined()
  })
})
