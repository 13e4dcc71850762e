export { type KeyCodec } from './keys.js'
export { MongooseModelStore, type MongooseModelStoreOptions } from './model-store.js'
