export { type KeyCodec } from './keys.js'
export { MongooseModelStore, type MongooseModelStoreOptions } from './store/model-store.js'
export { cutoverPlugin, cutoverPlugin as cutover, type CutoverPluginOptions, type ModelMigration } from './plugin.js'
export { type FilterNode, type NewStoreReader, type SortKey, type TranslatedQuery } from './read/query-translation.js'
