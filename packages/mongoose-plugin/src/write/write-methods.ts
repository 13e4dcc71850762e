/**
 * The driver collection methods through which every Mongoose write reaches MongoDB. The plugin
 * mirrors at these calls, and counts calls it did not make itself as unmirrored.
 */
export const QUERY_WRITE_METHODS = [
  'updateOne',
  'updateMany',
  'replaceOne',
  'deleteOne',
  'deleteMany',
  'findOneAndUpdate',
  'findOneAndReplace',
  'findOneAndDelete',
] as const

export const COLLECTION_WRITE_METHODS: ReadonlySet<string> = new Set([...QUERY_WRITE_METHODS, 'insertOne', 'insertMany', 'bulkWrite'])
